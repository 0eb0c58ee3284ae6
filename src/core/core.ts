// About 300 lines: one method per operation of sealcache (see docs/architecture.md);
// each only checks, asks Access, calls its part and records the audit entry.
import { SealcacheError } from "../errors.js";
import type { Logger } from "../log.js";
import type { SealerInfo } from "../seal/sealer.js";
import type { AuditEntry, AuditEntryJson } from "../store/audit.js";
import type { SecretStore } from "../store/store.js";
import type { SyncEngine } from "../sync/engine.js";
import type { Access } from "./access.js";
import { buildGauges, buildHealth, type Gauge } from "./health.js";
import { IMPORTED_ORIGIN } from "../sync/catalog.js";
import { auditIdentity, describePrincipal, type Principal } from "./principal.js";
import type { Lookup, SecretReader, SecretStatus } from "./reader.js";
import { IMPORT_MAX_BYTES, checkName, watchArgs, type WatchQuery } from "./requests.js";
import { WatchHub } from "./watch.js";
import { AuditSink } from "./audit-sink.js";

/** What exists once the cache is open: the parts the operations run over. */
export interface Serving {
  readonly reader: SecretReader;
  readonly sync: SyncEngine;
  readonly store: SecretStore;
  /** rotate-kek on the open cache (one at a time; lookups go on meanwhile). */
  rotateKek(): Promise<{ rewrapped: number; seal: string }>;
}

/** unsealing (the first attempt) → sealed (it failed; retried) or serving → stopping. */
export type CoreState = "unsealing" | "sealed" | "serving" | "stopping";

export interface CoreOptions {
  readonly access: Access;
  readonly logger: Logger;
  readonly version: string;
  /** `metrics.secret_names`: whether health and metrics may name secrets. */
  readonly secretNames: boolean;
}

/**
 * The operations of sealcache, one place for every channel: the socket's routes,
 * the CLI (through the socket, or on the cache directly with the daemon stopped)
 * and fleet commands call these and only map what they return or throw. Each
 * takes the principal asking; policy decides for it (Access) and the audit trail
 * records it. Errors are SealcacheErrors with the stable codes of the socket API.
 */
export class Core {
  readonly #o: CoreOptions;
  readonly #watch = new WatchHub();
  readonly #audit = new AuditSink(() => this.#serving?.store.audit);
  readonly #started = performance.now();
  #state: CoreState = "unsealing";
  #serving: Serving | undefined;
  #sealedReason = "unsealing the cache key";
  #sealer: SealerInfo | undefined;
  readonly #listeners = new Set<() => void>();
  readonly #sections = new Map<string, () => unknown>();

  constructor(o: CoreOptions) {
    this.#o = o;
  }

  /**
   * Calls `fn` whenever what health shows may have changed (a state change, a value
   * change, a sync batch landing); returns the unsubscribe. Used by: the fleet
   * channel's retained status.
   */
  onChange(fn: () => void): () => void {
    this.#listeners.add(fn);
    return () => this.#listeners.delete(fn);
  }

  /** Something health shows may have changed. */
  changed(): void {
    for (const fn of this.#listeners) fn();
  }

  /** A part's own state in /v1/health under `key` (the fleet channel: `mqtt`). */
  describe(key: string, fn: () => unknown): void {
    this.#sections.set(key, fn);
  }

  /** Every name list shows, for the fleet status (which gives names only with metrics.secret_names). */
  listNames(): string[] | undefined {
    return this.#serving?.reader.configuredNames();
  }

  get state(): CoreState {
    return this.#state;
  }

  get access(): Access {
    return this.#o.access;
  }

  /** The cache is open: operations run over it from now on; its changes wake watchers. */
  serve(s: Serving, sealer: SealerInfo): void {
    this.#serving = s;
    this.#sealer = sealer;
    this.#state = "serving";
    s.store.onChange((names) => {
      this.#watch.notify(names);
      this.changed();
    });
    this.changed();
  }

  /** The cache could not be opened (yet): operations answer `sealed` with this reason. */
  sealed(reason: string, sealer: SealerInfo | undefined): void {
    this.#state = "sealed";
    this.#sealedReason = reason;
    this.#sealer = sealer ?? this.#sealer;
    this.changed();
  }

  /** Shutdown has begun: operations answer `sealed` (stopping) and watchers are woken. */
  stopping(): void {
    this.#state = "stopping";
    this.#sealedReason = "the daemon is stopping";
    this.#serving = undefined;
    this.#watch.close();
  }

  #open(): Serving {
    const s = this.#serving;
    if (!s) throw new SealcacheError("sealed", `the cache is sealed: ${this.#sealedReason}`, { retryAfter: this.#state === "stopping" ? 5 : 30 });
    return s;
  }

  /**
   * One secret's value and freshness. The caller zeroes `value` once written out.
   * Used by: GET /v1/secrets/{name} (`sealcache get`, `exec`, `render`).
   */
  get(p: Principal, name: string): Lookup {
    checkName(name);
    // Checked before the lookup, so a request that will be refused never decrypts the value.
    this.#o.access.mayRead(p, name);
    const r = this.#open().reader;
    return r.lookup(name, r.now());
  }

  /**
   * The names (with state, never values) the principal may read under `prefix`.
   * Used by: GET /v1/secrets (`sealcache list`, `status`).
   */
  list(p: Principal, prefix: string): SecretStatus[] {
    if (prefix.length > 256) throw new SealcacheError("bad_request", "prefix is longer than 256 bytes");
    const { reader } = this.#open();
    const now = reader.now();
    const may = (n: string) => this.#o.access.canRead(p, n);
    // A hierarchy's own row (its state and errors, never a value) is shown to a principal
    // allowed its name, anything directly under it (app/prod/* or app/prod/**: the
    // globs are tested against "app/prod/"), or one of the parameters it holds.
    const visible = (n: string) => may(n) || (reader.hierarchyOf(n) === n && (may(`${n}/`) || [...reader.membersOf(n)].some(may)));
    return reader
      .configuredNames()
      .filter((n) => n.startsWith(prefix) && visible(n))
      .map((n) => reader.status(n, now));
  }

  /**
   * Waits until one of the named secrets changes after revision `since` (or the
   * timeout): the changed names, or undefined on timeout. Used by: GET /v1/watch
   * (`exec --on-change`, `render --watch`).
   */
  async watch(p: Principal, q: WatchQuery, gone: AbortSignal): Promise<{ revision: number; changed: string[] } | undefined> {
    const { names, since, timeoutMs } = watchArgs(q, (n) => this.#o.access.mayRead(p, n));
    const { reader, store } = this.#open();
    for (const n of names) {
      if (reader.hierarchyOf(n) === n)
        throw new SealcacheError("not_found", `${JSON.stringify(n)} is a hierarchy, not a secret: watch the parameters under it by name (${n}/NAME)`);
      if (!reader.isConfigured(n)) throw new SealcacheError("not_found", `no secret named ${JSON.stringify(n)} is configured`);
    }
    const answer = (changed: string[]) => ({ revision: store.revision, changed });
    if (since === undefined) return answer([]);
    // A revision from the future means the store was reset (quarantined): everything changed.
    if (since > store.revision) return answer([...names]);
    const already = names.filter((n) => (store.meta(n)?.changedRev ?? 0) > since);
    if (already.length > 0) return answer(already);
    const changed = await this.#watch.wait(new Set(names), timeoutMs, gone);
    return changed.length > 0 ? answer(changed) : undefined;
  }

  /**
   * Makes the named secret (a hierarchy, or any name under one, refreshes the whole
   * hierarchy; a parameter may have been created since the last walk), or every
   * secret, due now. Used by: POST /v1/refresh (`sealcache refresh`), the fleet
   * command `refresh`.
   */
  refresh(p: Principal, names: readonly string[] | "all"): { queued: string[] } {
    this.#o.access.mayAdmin(p, "refresh");
    const { reader, sync } = this.#open();
    if (names !== "all") {
      for (const n of names) {
        checkName(n);
        // An imported value has no source to fetch from: saying so beats "not configured", which it is not.
        if (sync.catalog.kind(n)?.kind === "imported")
          throw new SealcacheError("not_found", `${n} is an imported secret: no provider fetches it; import it again to change it`);
        if (!reader.isRefreshable(n)) throw new SealcacheError("not_found", `no secret named ${JSON.stringify(n)} is configured`);
      }
    }
    return { queued: sync.trigger(names === "all" ? [] : names) };
  }

  /**
   * Crypto-shreds the named secrets (a hierarchy: every parameter under it), or all:
   * their values, data keys and older versions are deleted from cache.db and its
   * WAL, and each answers `410 revoked` until it is fetched (or imported) again.
   * `all` also rotates the cache key and advances the anti-rollback counter, so no
   * old copy of the cache opens. Used by: POST /v1/revoke (`sealcache revoke`),
   * the fleet command `revoke`.
   */
  async revoke(p: Principal, names: readonly string[] | "all"): Promise<{ revoked: string[] }> {
    this.#o.access.mayAdmin(p, "revoke");
    const s = this.#open();
    const targets =
      names === "all"
        ? [...new Set([...s.reader.configuredNames().filter((n) => s.reader.hierarchyOf(n) !== n), ...[...s.store.metas()].map((m) => m.name)])]
        : this.#revocable(s, names);
    const reason = `by ${describePrincipal(p)} at ${new Date().toISOString()}`;
    const { marked } = s.store.revoke(targets, { all: names === "all", at: Date.now(), reason });
    for (const n of marked) s.sync.catalog.setImported(n, false);
    if (names === "all") await s.rotateKek();
    this.#o.logger.warn({ revoked: marked.length, all: names === "all", by: p.kind }, "secrets revoked (crypto-shredded)");
    return { revoked: marked.sort() };
  }

  #revocable(s: Serving, names: readonly string[]): string[] {
    const out = new Set<string>();
    for (const n of names) {
      checkName(n);
      if (s.reader.hierarchyOf(n) === n) {
        for (const m of s.reader.membersOf(n)) out.add(m);
        continue;
      }
      if (!s.reader.isConfigured(n) && !s.store.meta(n)) throw new SealcacheError("not_found", `no secret named ${JSON.stringify(n)} is configured or cached`);
      out.add(n);
    }
    return [...out];
  }

  /**
   * Stores a value given by an admin (a bootstrap token, a one-time credential):
   * sealed like every value, listed with provider `imported`, never refreshed,
   * kept (across restarts) until revoked. A name a provider serves is refused.
   * Used by: PUT /v1/secrets/{name} (`sealcache import`).
   */
  importSecret(p: Principal, name: string, value: Uint8Array): { name: string; version: number } {
    this.#o.access.mayAdmin(p, "import");
    checkName(name);
    if (value.length === 0) throw new SealcacheError("bad_request", `the value for ${JSON.stringify(name)} is empty; there is nothing to import`);
    if (value.length > IMPORT_MAX_BYTES)
      throw new SealcacheError(
        "bad_request",
        `the value for ${JSON.stringify(name)} is ${value.length} bytes; an imported secret is at most ${IMPORT_MAX_BYTES} bytes`,
      );
    const s = this.#open();
    const problem = s.sync.catalog.importProblem(name);
    if (problem) throw new SealcacheError("bad_request", `secret name ${JSON.stringify(name)} ${problem}; an imported secret needs a name of its own`);
    s.store.apply([{ name, ok: true, value, sourceVersion: undefined, at: Date.now(), origin: IMPORTED_ORIGIN }]);
    s.sync.catalog.setImported(name, true);
    return { name, version: s.store.meta(name)!.version };
  }

  /** A new cache key, every data key re-wrapped in one transaction. Used by: POST /v1/rotate-kek (`sealcache rotate-kek`). */
  async rotateKek(p: Principal): Promise<{ rewrapped: number; seal: string }> {
    this.#o.access.mayAdmin(p, "rotate-kek");
    return this.#open().rotateKek();
  }

  /** The audit trail, newest `limit` entries, times as ISO 8601; never values. Used by: GET /v1/audit (`sealcache audit`). */
  audit(p: Principal, q: { since: number | undefined; name: string | undefined; limit: number }): AuditEntryJson[] {
    this.#o.access.mayAdmin(p, "audit");
    if (q.name !== undefined) checkName(q.name);
    return this.#open()
      .store.audit.query(q)
      .map((e) => ({ ...e, at: new Date(e.at).toISOString() }));
  }

  /**
   * Records what a principal asked and what it got (the socket records its
   * requests itself, with its own route names). Used by: the fleet channel.
   */
  record(p: Principal, e: { route: string; name: string | null; status: number; code: string }): void {
    this.recordEntry({ at: Date.now(), ...auditIdentity(p), ...e });
  }

  /** An audit entry as a channel built it; held (bounded) while the cache is sealed, written once it opens. */
  recordEntry(e: AuditEntry): void {
    this.#audit.record(e);
  }

  /** Sealed state, per-provider state and counts; never values. Used by: GET /v1/health (`status`, `doctor`). */
  health(): { ok: boolean; body: unknown } {
    const h = buildHealth({
      state: this.#state,
      serving: this.#serving,
      sealedReason: this.#sealedReason,
      sealerInfo: this.#sealer,
      policyWarnings: this.#o.access.warnings,
      started: this.#started,
      version: this.#o.version,
      secretNames: this.#o.secretNames,
    });
    for (const [k, fn] of this.#sections) (h.body as Record<string, unknown>)[k] = fn();
    return h;
  }

  /** The gauges of GET /metrics. */
  gauges(): Gauge[] {
    return buildGauges(this.#serving, this.#o.secretNames);
  }
}
