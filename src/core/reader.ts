import type { Config } from "../config/schema.js";
import { SealcacheError, isIntegrityError } from "../errors.js";
import type { SecretStore, SecretMeta } from "../store/store.js";
import type { Catalog } from "../sync/catalog.js";
import { readClocks, systemClock, type Clock, type Now } from "../sync/clock.js";
import type { SyncEngine } from "../sync/engine.js";
import type { Freshness } from "../sync/freshness.js";

export type SecretStateName = "ok" | "stale" | "expired" | "not_synced" | "revoked";

export interface SecretStatus {
  readonly name: string;
  readonly state: SecretStateName;
  readonly provider: string;
  readonly version: number | null;
  readonly source_version: string | null;
  readonly fetched_at: string | null;
  readonly age_s: number | null;
  readonly stale: boolean;
  readonly error: string | null;
  /** `hierarchy` for an entry whose path names a hierarchy (its parameters are listed as their own names). */
  readonly kind: "secret" | "hierarchy";
  /** For a parameter found under a hierarchy: the hierarchy's name. */
  readonly parent: string | null;
  /** For a hierarchy: how many parameters its last walk found. */
  readonly members: number | null;
}

export interface Lookup {
  readonly meta: SecretMeta;
  readonly value: Uint8Array;
  readonly stale: boolean;
  /** Whole seconds since the last confirmation; null when it cannot be known (see Freshness). */
  readonly ageS: number | null;
  /** When it was last confirmed, in today's wall clock. */
  readonly fetchedAt: number;
}

/**
 * The read side of the cache: what a secret's state is and whether it may be
 * served. Knows nothing of HTTP; errors carry the stable codes of the socket API (README).
 * Which names exist comes from the sync engine's catalog: the configured secrets
 * and, for a hierarchy, the parameters its last walk found.
 */
export class SecretReader {
  readonly #store: SecretStore;
  readonly #sync: SyncEngine;
  readonly #catalog: Catalog;
  readonly #fresh: Freshness;
  readonly #clock: Clock;
  readonly #maxStale: number;

  constructor(opts: { store: SecretStore; sync: SyncEngine; secrets?: Config["secrets"]; maxStale: number; clock?: Clock }) {
    this.#store = opts.store;
    this.#sync = opts.sync;
    this.#catalog = opts.sync.catalog;
    this.#fresh = opts.sync.freshness;
    this.#clock = opts.clock ?? systemClock;
    this.#maxStale = opts.maxStale;
  }

  /** Both clocks, read once for a request or a listing (see src/sync/clock.ts). */
  now(): Now {
    return readClocks(this.#clock);
  }

  /**
   * A name that holds (or will hold) a value: a configured secret, a parameter
   * found under a hierarchy, or a name under a hierarchy not walked yet.
   */
  isConfigured(name: string): boolean {
    return this.#catalog.isServable(name);
  }

  /** Every name `list` shows: secrets, hierarchies and the parameters under them. */
  configuredNames(): string[] {
    return this.#catalog.listed();
  }

  /** Whether a refresh of `name` queues anything: a configured entry, or a name under a hierarchy. */
  isRefreshable(name: string): boolean {
    return this.#catalog.owner(name) !== undefined;
  }

  /** The hierarchy a listed name is, or belongs to. */
  hierarchyOf(name: string): string | undefined {
    const k = this.#catalog.kind(name);
    return k && (k.kind === "hierarchy" || k.kind === "member") ? k.entry : undefined;
  }

  /** Parameters a hierarchy's last walk found. */
  membersOf(entry: string): ReadonlySet<string> {
    return this.#catalog.members(entry);
  }

  /** Returns the plaintext, which the caller must zero once written out. */
  lookup(name: string, now: Now): Lookup {
    const k = this.#catalog.kind(name);
    const meta = this.#store.meta(name);
    const revoked = meta ? undefined : this.#revoked(name);
    if (revoked)
      throw new SealcacheError(
        "revoked",
        `secret ${JSON.stringify(name)} was revoked (${revoked.message}); it is served again once it has been fetched (or imported) anew`,
      );
    if (!k) throw new SealcacheError("not_found", `no secret named ${JSON.stringify(name)} is configured${this.#underWalked(name)}`);
    if (k.kind === "hierarchy") {
      throw new SealcacheError(
        "not_found",
        `${JSON.stringify(name)} is a hierarchy, not a secret: each parameter under it is served as ${name}/NAME (sealcache list --prefix ${name}/)`,
      );
    }
    if (k.kind === "pending") throw this.#notSynced(name, k.entry);
    if (!meta) throw this.#notSynced(name, k.entry);
    const stale = this.#fresh.isStale(name, now);
    const age = this.#fresh.age(name, now);
    if (this.#expired(stale, age)) {
      throw new SealcacheError(
        "expired",
        `secret ${JSON.stringify(name)} could not be refreshed for ${Math.floor(age! / 1000)} s, past sync.max_stale (${this.#maxStale / 1000} s)`,
      );
    }
    let read: ReturnType<SecretStore["read"]>;
    try {
      read = this.#store.read(name);
    } catch (e) {
      if (!isIntegrityError(e)) throw e;
      // The store has quarantined itself; fetch everything again.
      this.#sync.trigger();
      throw new SealcacheError("not_synced", `secret ${JSON.stringify(name)} failed its integrity check; the cache was quarantined and is being refetched`, {
        retryAfter: 5,
      });
    }
    if (!read) throw this.#notSynced(name, k.entry);
    return { meta: read.meta, value: read.value, stale, ageS: seconds(age), fetchedAt: this.#fresh.confirmedAt(name, now) ?? meta.fetchedAt };
  }

  status(name: string, now: Now): SecretStatus {
    // One object literal, no spreads: health and metrics call this for every name
    // on every poll, and spreading a shared base cost ~12x the rest of it.
    const k = this.#catalog.kind(name);
    const entry = k?.entry ?? name;
    const provider = k?.kind === "imported" ? "imported" : (this.#catalog.entry(entry)?.provider ?? "");
    const hierarchy = k?.kind === "hierarchy";
    const kind = hierarchy ? "hierarchy" : "secret";
    const parent = k?.kind === "member" ? entry : null;
    const members = hierarchy ? this.#catalog.members(entry).size : null;
    const fetchedAt = this.#fresh.confirmedAt(name, now);
    const err = this.#store.secretError(name);
    if (fetchedAt === undefined || (err?.kind === "revoked" && !this.#store.meta(name))) {
      const revoked = err?.kind === "revoked";
      // A revocation is no failure: the state says it, and it is not counted among the failing.
      return {
        name,
        state: revoked ? "revoked" : "not_synced",
        provider,
        version: null,
        source_version: null,
        fetched_at: null,
        age_s: null,
        stale: false,
        error: revoked ? null : (err?.message ?? null),
        kind,
        parent,
        members,
      };
    }
    // A parameter also shows its hierarchy's error when the last walk failed after it was fetched.
    const meta = hierarchy ? undefined : this.#store.meta(name);
    const stale = this.#fresh.isStale(name, now);
    const age = this.#fresh.age(name, now);
    const state: SecretStateName = !stale ? "ok" : this.#expired(stale, age) ? "expired" : "stale";
    const walkErr = parent !== null && this.#fresh.errorAfter(entry, name, true) ? this.#store.secretError(entry) : undefined;
    const error = err && this.#fresh.errorAfter(name, name, false) ? err.message : walkErr ? walkErr.message : null;
    return {
      name,
      state,
      provider,
      version: meta?.version ?? null,
      source_version: meta?.sourceVersion ?? null,
      fetched_at: new Date(fetchedAt).toISOString(),
      age_s: seconds(age),
      stale,
      error,
      kind,
      parent,
      members,
    };
  }

  /** The revocation recorded against a name that holds no value now. */
  #revoked(name: string): { message: string } | undefined {
    const e = this.#store.secretError(name);
    return e?.kind === "revoked" ? e : undefined;
  }

  /**
   * Expired: could not be refreshed and older than sync.max_stale (0 = never). One
   * rule for lookups and listings. An age that cannot be known is stale, not
   * expired: refusing every value on a gateway that booted without a clock would
   * stop its pipelines for what is a clock problem (README "Clocks").
   */
  #expired(stale: boolean, ageMs: number | undefined): boolean {
    return stale && this.#maxStale > 0 && ageMs !== undefined && ageMs > this.#maxStale;
  }

  /** For a name under a walked hierarchy that is not one of its parameters: say so. */
  #underWalked(name: string): string {
    for (let i = name.lastIndexOf("/"); i > 0; i = name.lastIndexOf("/", i - 1)) {
      const up = name.slice(0, i);
      if (this.#catalog.isHierarchy(up)) return ` (the hierarchy ${up} holds no parameter of that name at its last walk)`;
    }
    return "";
  }

  #notSynced(name: string, entry: string): SealcacheError {
    const err = this.#store.secretError(name) ?? (entry !== name ? this.#store.secretError(entry) : undefined);
    const why = err ? `: last attempt failed (${err.message})` : "";
    const what = entry !== name ? `is under the hierarchy ${entry}, which has not been read yet` : "is configured but has not been fetched yet";
    const { offline, retryAfter } = this.#providerDown(entry);
    return new SealcacheError("not_synced", `secret ${JSON.stringify(name)} ${what}${why}${offline}`, { retryAfter });
  }

  /**
   * Why a never-fetched secret cannot be had right now, when its provider is the
   * reason (the same facts `status` shows), and when to ask again: the provider's
   * next attempt rather than a fixed 5 s, so a client does not poll through a backoff.
   */
  #providerDown(entry: string): { offline: string; retryAfter: number } {
    const name = this.#catalog.entry(entry)?.provider;
    const p = name === undefined ? undefined : this.#sync.providerHealth().find((h) => h.name === name);
    if (!p) return { offline: "", retryAfter: 5 };
    if (!p.active) return { offline: `; ${p.last_error ?? `provider ${p.name} is not active`}`, retryAfter: 60 };
    if (p.failures === 0) return { offline: "", retryAfter: 5 };
    const since = p.last_success ? `offline since its last success at ${p.last_success}` : "offline: no fetch has succeeded yet";
    const attempts = `${p.failures} failed ${p.failures === 1 ? "attempt" : "attempts"}${p.last_error_at ? `, the last at ${p.last_error_at}` : ""}`;
    const next = p.next_attempt ? Date.parse(p.next_attempt) - Date.now() : 5_000;
    return {
      offline: `; provider ${p.name} is ${since} (${attempts}): ${p.last_error ?? "unknown error"}`,
      retryAfter: Math.min(300, Math.max(1, Math.ceil(next / 1000))),
    };
  }
}

function seconds(ms: number | undefined): number | null {
  return ms === undefined ? null : Math.max(0, Math.floor(ms / 1000));
}
