import type { Config } from "../config/schema.js";
import { SealcacheError, isIntegrityError } from "../errors.js";
import type { SecretStore, SecretMeta } from "../store/store.js";
import type { SyncEngine } from "../sync/engine.js";

export type SecretStateName = "ok" | "stale" | "expired" | "not_synced";

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
}

export interface Lookup {
  readonly meta: SecretMeta;
  readonly value: Uint8Array;
  readonly stale: boolean;
  readonly ageS: number;
}

/**
 * The read side of the cache: what a secret's state is and whether it may be
 * served. Knows nothing of HTTP; errors carry the stable codes of DESIGN.md.
 */
export class SecretReader {
  readonly #store: SecretStore;
  readonly #sync: SyncEngine;
  readonly #secrets: Config["secrets"];
  readonly #maxStale: number;

  constructor(opts: { store: SecretStore; sync: SyncEngine; secrets: Config["secrets"]; maxStale: number }) {
    this.#store = opts.store;
    this.#sync = opts.sync;
    this.#secrets = opts.secrets;
    this.#maxStale = opts.maxStale;
  }

  isConfigured(name: string): boolean {
    return Object.prototype.hasOwnProperty.call(this.#secrets, name);
  }

  configuredNames(): string[] {
    return Object.keys(this.#secrets).sort();
  }

  /** Returns the plaintext, which the caller must zero once written out. */
  lookup(name: string, now: number): Lookup {
    if (!this.isConfigured(name)) throw new SealcacheError("not_found", `no secret named ${JSON.stringify(name)} is configured`);
    const meta = this.#store.meta(name);
    if (!meta) throw this.#notSynced(name);
    const stale = this.#sync.isStale(name, now);
    const age = now - meta.fetchedAt;
    if (this.#expired(stale, age)) {
      throw new SealcacheError("expired", `secret ${JSON.stringify(name)} could not be refreshed for ${Math.floor(age / 1000)} s, past sync.max_stale (${this.#maxStale / 1000} s)`);
    }
    let read;
    try {
      read = this.#store.read(name);
    } catch (e) {
      if (!isIntegrityError(e)) throw e;
      // The store has quarantined itself; fetch everything again.
      this.#sync.trigger();
      throw new SealcacheError("not_synced", `secret ${JSON.stringify(name)} failed its integrity check; the cache was quarantined and is being refetched`, { retryAfter: 5 });
    }
    if (!read) throw this.#notSynced(name);
    return { meta: read.meta, value: read.value, stale, ageS: Math.max(0, Math.floor(age / 1000)) };
  }

  status(name: string, now: number): SecretStatus {
    const sc = this.#secrets[name]!;
    const meta = this.#store.meta(name);
    const err = this.#store.secretError(name);
    const provider = sc.provider;
    if (!meta) return { name, state: "not_synced", provider, version: null, source_version: null, fetched_at: null, age_s: null, stale: false, error: err?.message ?? null };
    const stale = this.#sync.isStale(name, now);
    const age = now - meta.fetchedAt;
    const state: SecretStateName = !stale ? "ok" : this.#expired(stale, age) ? "expired" : "stale";
    return {
      name,
      state,
      provider,
      version: meta.version,
      source_version: meta.sourceVersion,
      fetched_at: new Date(meta.fetchedAt).toISOString(),
      age_s: Math.max(0, Math.floor(age / 1000)),
      stale,
      error: err && err.at >= meta.fetchedAt ? err.message : null,
    };
  }

  /** Expired: could not be refreshed and older than sync.max_stale (0 = never). One rule for lookups and listings. */
  #expired(stale: boolean, ageMs: number): boolean {
    return stale && this.#maxStale > 0 && ageMs > this.#maxStale;
  }

  #notSynced(name: string): SealcacheError {
    const err = this.#store.secretError(name);
    const why = err ? `: last attempt failed (${err.message})` : "";
    return new SealcacheError("not_synced", `secret ${JSON.stringify(name)} is configured but has not been fetched yet${why}`, { retryAfter: 5 });
  }
}
