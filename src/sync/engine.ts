import type { SecretConfig, SyncConfig } from "../config/schema.js";
import { describeError } from "../errors.js";
import type { Logger } from "../log.js";
import { ProviderError, isProviderError, type FetchResult, type HierarchyResult, type LeaseState, type Provider, type SecretRef } from "../providers/provider.js";
import type { BatchItem, ProviderState, SecretStore, StoredLease } from "../store/store.js";
import { isStoreWriteError } from "../store/disk.js";
import { Catalog } from "./catalog.js";
import { StepDetector, readClocks, systemClock, type Clock, type Now } from "./clock.js";
import { Freshness } from "./freshness.js";
import { expandWalk, type Outcome } from "./hierarchy.js";
import { Semaphore } from "./semaphore.js";
import { backoffDelay, refreshDelay, resumeDelay, resumeLeaseDue, overdueSpread } from "./timing.js";

/** A configured provider instance: loaded, or with the reason it is not active. */
export interface ProviderHandle {
  readonly name: string;
  readonly type: string;
  readonly provider: Provider | undefined;
  readonly inactive: string | undefined;
}

export interface ProviderHealth {
  readonly name: string;
  readonly type: string;
  readonly active: boolean;
  readonly online: boolean;
  readonly last_success: string | null;
  readonly last_error: string | null;
  readonly last_error_kind: string | null;
  readonly last_error_at: string | null;
  readonly failures: number;
  readonly next_attempt: string | null;
}

export interface SyncEngineOptions {
  readonly store: SecretStore;
  readonly secrets: Readonly<Record<string, SecretConfig>>;
  readonly providers: ReadonlyMap<string, ProviderHandle>;
  readonly sync: SyncConfig;
  readonly logger: Logger;
  readonly random?: () => number;
  /** Monotonic and wall clocks (tests pass fakes). */
  readonly clock?: Clock;
  /** Called when a wave of batches has finished (the daemon returns freed memory to the OS). */
  readonly onIdle?: () => void;
}

interface ProviderRuntime extends ProviderState {
  /** Monotonic time before which the provider is not tried again (backoff). */
  nextAttempt: number;
}


/**
 * Decides when each secret is fetched and applies what comes back. One timer for
 * the earliest due secret; due secrets are grouped per provider into batches that
 * run under a global concurrency bound; each batch lands in one transaction.
 * A failure never removes a cached value: it only marks the provider offline,
 * pushes its next attempt out with backoff, and makes its values stale.
 */
export class SyncEngine {
  readonly #o: SyncEngineOptions;
  readonly #log: Logger;
  readonly #rand: () => number;
  readonly #clock: Clock;
  readonly #steps = new StepDetector();
  readonly #fresh: Freshness;
  readonly #sem: Semaphore;
  /** When each entry is next due (monotonic ms). */
  readonly #due = new Map<string, number>();
  readonly #inFlight = new Set<string>();
  readonly #forced = new Set<string>();
  readonly #state = new Map<string, ProviderRuntime>();
  readonly #running = new Set<Promise<void>>();
  readonly #aborts = new Set<AbortController>();
  /** Post-commit calls to providers (lease revocations), awaited at stop. */
  readonly #after = new Set<Promise<void>>();
  readonly #catalog: Catalog;
  #timer: NodeJS.Timeout | undefined;
  #stopped = false;
  /** Batches in a row the store could not record (data_dir full): their backoff. */
  #writeFailures = 0;

  constructor(opts: SyncEngineOptions) {
    this.#o = opts;
    this.#log = opts.logger;
    this.#rand = opts.random ?? Math.random;
    this.#clock = opts.clock ?? systemClock;
    this.#sem = new Semaphore(opts.sync.concurrency);
    const loaded = (p: string) => opts.providers.get(p)?.provider;
    this.#catalog = new Catalog({ secrets: opts.secrets, isHierarchy: (sc) => loaded(sc.provider)?.expands?.(sc.path) === true, backend: (p) => loaded(p)?.backend ?? "" });
    this.#fresh = new Freshness({ catalog: this.#catalog, store: opts.store, sync: opts.sync });
    if (this.#catalog.hasHierarchies) {
      this.#catalog.adopt(opts.store.metas());
      for (const m of opts.store.metas()) {
        const k = this.#catalog.kind(m.name);
        if (k?.kind === "member") this.#fresh.inheritWalk(k.entry, m.fetchedAt);
      }
    }
    const saved = opts.store.providerStates.load();
    for (const name of opts.providers.keys()) {
      const s = saved.get(name);
      this.#state.set(name, { lastSuccess: s?.lastSuccess ?? null, lastError: s?.lastError ?? null, lastErrorKind: s?.lastErrorKind ?? null, lastErrorAt: s?.lastErrorAt ?? null, failures: s?.failures ?? 0, nextAttempt: 0 });
      if (s && s.failures > 0) this.#fresh.providerFailed(name, { wall: s.lastErrorAt ?? 0 });
    }
  }

  start(): void {
    const now = this.#now();
    this.#steps.check(now);
    const { interval, jitter } = this.#o.sync;
    for (const name of this.#catalog.entries()) {
      const sc = this.#catalog.entry(name)!;
      // On schedule from the recorded fetch; at once (spread) when it is overdue, never
      // fetched, or recorded "in the future" by a clock that is now behind.
      let due = this.#fresh.has(name) ? now.mono + resumeDelay(this.#fresh.age(name, now), sc.refresh ?? interval, jitter, this.#rand) : now.mono;
      // A value held under a lease (recorded with it in the cache) keeps the lease's
      // schedule across the restart: renewed at 2/3 of what is left, replaced at once
      // if it ran out meanwhile; and it is stale from its expiry on, as before.
      const lease = this.#o.store.meta(name)?.leased && this.#trustedVersion(name) !== undefined ? this.#cachedLease(name) : undefined;
      if (lease) {
        const expires = now.mono + (lease.expiresAt - now.wall);
        this.#fresh.setExpiry(name, expires);
        due = resumeLeaseDue(due, now.mono, expires);
      }
      this.#due.set(name, due);
    }
    this.#schedule();
  }

  /** How fresh each name is (the read model behind lookups, list, status, health and metrics). */
  get freshness(): Freshness {
    return this.#fresh;
  }

  #now(): Now {
    return readClocks(this.#clock);
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    clearTimeout(this.#timer);
    for (const a of this.#aborts) a.abort();
    await Promise.allSettled([...this.#running]);
    await Promise.allSettled([...this.#after]);
  }

  /** The configured secrets, hierarchies and the parameters found under them. */
  get catalog(): Catalog {
    return this.#catalog;
  }

  /**
   * Makes the named entries due now, past any backoff (all when empty); a name
   * under a hierarchy (held or not: it may have been created since) queues its
   * hierarchy. Returns the entries queued.
   */
  trigger(names: readonly string[] = []): string[] {
    const list = names.length > 0 ? [...new Set(names.map((n) => this.#catalog.owner(n)).filter((e): e is string => e !== undefined))] : this.#catalog.entries();
    const now = this.#clock.mono();
    for (const n of list) {
      this.#due.set(n, now);
      this.#forced.add(n);
    }
    this.#schedule();
    return list;
  }

  providerHealth(): ProviderHealth[] {
    const now = this.#now();
    return [...this.#o.providers.values()].map((h) => {
      const s = this.#state.get(h.name)!;
      const iso = (t: number | null) => (t ? new Date(t).toISOString() : null);
      return {
        name: h.name,
        type: h.type,
        active: h.provider !== undefined,
        online: h.provider !== undefined && s.failures === 0 && s.lastSuccess !== null,
        last_success: iso(s.lastSuccess),
        last_error: h.inactive ?? s.lastError,
        last_error_kind: h.inactive ? "inactive" : s.lastErrorKind,
        last_error_at: iso(s.lastErrorAt),
        failures: s.failures,
        next_attempt: s.failures > 0 ? iso(now.wall + Math.max(0, s.nextAttempt - now.mono)) : null,
      };
    });
  }

  #schedule(): void {
    if (this.#stopped) return;
    clearTimeout(this.#timer);
    let next = Infinity;
    for (const [n, at] of this.#due) if (!this.#inFlight.has(n) && at < next) next = at;
    if (next === Infinity) return;
    // Capped so a wall-clock step is noticed (and logged) within a minute.
    const delay = Math.min(Math.max(0, next - this.#clock.mono()), 60_000);
    this.#timer = setTimeout(() => this.#tick(), delay);
  }

  #tick(): void {
    if (this.#stopped) return;
    const clocks = this.#now();
    const step = this.#steps.check(clocks);
    if (step !== undefined) this.#stepped(step, clocks.mono);
    const now = clocks.mono;
    const byProvider = new Map<string, string[]>();
    for (const [name, at] of this.#due) {
      if (at > now || this.#inFlight.has(name)) continue;
      const provider = this.#catalog.entry(name)!.provider;
      const st = this.#state.get(provider)!;
      if (!this.#forced.has(name) && st.nextAttempt > now) {
        this.#due.set(name, st.nextAttempt);
        continue;
      }
      const list = byProvider.get(provider) ?? [];
      list.push(name);
      byProvider.set(provider, list);
    }
    for (const [provider, names] of byProvider) {
      const handle = this.#o.providers.get(provider)!;
      if (!handle.provider) {
        this.#recordInactive(handle, names, now);
        continue;
      }
      names.sort();
      for (let i = 0; i < names.length; i += handle.provider.maxBatch) {
        this.#dispatch(handle, handle.provider, names.slice(i, i + handle.provider.maxBatch));
      }
    }
    this.#schedule();
  }

  /**
   * The wall clock was stepped. Nothing here runs on it, but whatever was fetched
   * or decided with a clock that was wrong (most often: a board that booted at
   * 1970 and has just had NTP) deserves a fresh look: every entry is refreshed
   * soon, spread over the jitter window so a fleet's NTP sync is no stampede.
   */
  #stepped(ms: number, now: number): void {
    this.#log.warn({ step_s: Math.round(ms / 1000) }, "wall clock stepped; schedules and ages run on the monotonic clock, refreshing every secret within the jitter window");
    const { interval, jitter } = this.#o.sync;
    for (const name of this.#catalog.entries()) {
      if (this.#inFlight.has(name)) continue;
      const at = now + overdueSpread(this.#catalog.entry(name)!.refresh ?? interval, jitter, this.#rand);
      this.#due.set(name, Math.min(this.#due.get(name) ?? at, at));
    }
  }

  #dispatch(handle: ProviderHandle, provider: Provider, names: string[]): void {
    for (const n of names) {
      this.#inFlight.add(n);
      this.#forced.delete(n);
    }
    const queuedAt = this.#clock.mono();
    const p = this.#sem
      .run(() => this.#runBatch(handle, provider, names, queuedAt))
      .catch((e) => this.#log.error({ provider: handle.name, err: describeError(e) }, "sync batch failed unexpectedly"))
      .finally(() => {
        for (const n of names) this.#inFlight.delete(n);
        this.#running.delete(p);
        if (this.#running.size === 0) this.#o.onIdle?.();
        this.#schedule();
      });
    this.#running.add(p);
  }

  async #runBatch(handle: ProviderHandle, provider: Provider, names: string[], queuedAt: number): Promise<void> {
    if (this.#stopped) return;
    // The provider failed while this batch waited for a slot: it waits for the same
    // retry instead of hitting a backend that is down (or throttling) once more.
    const st0 = this.#state.get(handle.name)!;
    if (st0.failures > 0 && this.#fresh.providerFailedSince(handle.name, queuedAt) && st0.nextAttempt > this.#clock.mono()) {
      for (const n of names) this.#reschedule(n, st0.nextAttempt);
      return;
    }
    const refs: SecretRef[] = names.map((name) => {
      const sc = this.#catalog.entry(name)!;
      const cachedVersion = this.#trustedVersion(name);
      const cachedLease = cachedVersion !== undefined ? this.#cachedLease(name) : undefined;
      return { name, path: sc.path, key: sc.key, version: sc.version, cachedVersion, cachedLease };
    });
    const ac = new AbortController();
    this.#aborts.add(ac);
    const timer = setTimeout(() => ac.abort(), this.#o.sync.timeout);
    const started = this.#clock.mono();
    let results: FetchResult[];
    try {
      this.#log.debug({ provider: handle.name, count: refs.length }, "sync batch start");
      results = await Promise.race([provider.fetch(refs, ac.signal), aborted(ac.signal, this.#o.sync.timeout)]);
    } catch (e) {
      this.#providerFailed(handle, names, e);
      return;
    } finally {
      clearTimeout(timer);
      this.#aborts.delete(ac);
    }
    if (this.#stopped) return;
    const clocks = this.#now();
    const now = clocks.mono;
    // Items carry the wall clock: fetched_at is what the cache records for after a restart.
    const out = this.#toOutcome(handle, names, results, clocks.wall);
    const { items, expiry } = out;
    const held = new Map<string, string | undefined>();
    // A lease's end as the provider computed it (wall), on the monotonic clock from here on.
    const expiresMono = (n: string) => {
      const e = expiry.get(n);
      return e === undefined ? undefined : now + (e - clocks.wall);
    };
    try {
      const changed = this.#o.store.apply(items, { removed: out.removed, cleared: out.cleared });
      for (const [entry, members] of out.walks) {
        this.#catalog.setMembers(entry, members);
        this.#fresh.confirm(entry, now);
      }
      for (const n of out.removed) this.#fresh.forget(n);
      for (const it of items) {
        if (!it.ok) continue;
        this.#fresh.confirm(it.name, now);
        if (it.origin !== undefined) continue;
        held.set(it.name, it.sourceVersion);
        this.#fresh.setExpiry(it.name, expiresMono(it.name));
      }
      for (const it of items) if (!it.ok) this.#fresh.noteError(it.name, now);
      if (out.removed.length > 0) this.#log.info({ provider: handle.name, removed: out.removed }, "parameters no longer in their hierarchy in the backend; no longer served");
      this.#log.info({ provider: handle.name, fetched: names.length, changed: changed.length, failed: items.filter((i) => !i.ok).length, ms: Math.round(now - started) }, "sync batch applied");
    } catch (e) {
      if (isStoreWriteError(e)) this.#notRecorded(names, now);
      else this.#providerFailed(handle, names, e);
      return;
    } finally {
      for (const it of items) if (it.ok) it.value.fill(0);
    }
    if (held.size > 0 && provider.committed) this.#afterCommit(handle, provider, held);
    this.#writeFailures = 0;
    const st = this.#state.get(handle.name)!;
    const wasOffline = st.failures > 0;
    Object.assign(st, { lastSuccess: clocks.wall, failures: 0, nextAttempt: 0 });
    this.#fresh.providerRecovered(handle.name);
    this.#saveProviderState(handle.name, st);
    if (wasOffline) this.#log.info({ provider: handle.name }, "provider back online");
    const { interval, jitter } = this.#o.sync;
    for (const n of names) this.#reschedule(n, now + refreshDelay(this.#catalog.entry(n)!.refresh ?? interval, jitter, this.#rand, now, expiresMono(n)));
  }

  /**
   * The next fetch of a name whose fetch just ended, unless a refresh was asked for
   * while it was in flight: that request wants a value fetched after it was made,
   * so the name stays due now.
   */
  #reschedule(name: string, at: number): void {
    if (!this.#forced.has(name)) this.#due.set(name, at);
  }

  /**
   * The backend version the cache holds for `name`, if it may be trusted: only as
   * recorded under this same config (the fingerprint is bound into the row's MAC,
   * so the file cannot forge it).
   */
  #trustedVersion(name: string): string | undefined {
    const meta = this.#o.store.meta(name);
    return meta && meta.held === this.#catalog.fingerprint(name) ? (meta.sourceVersion ?? undefined) : undefined;
  }

  /**
   * The lease recorded with the cached value of `name` (Vault dynamic secrets), so a
   * restart renews the credentials held instead of minting new ones. One that does
   * not open has quarantined the cache (the store logs why): the secret is read anew.
   */
  #cachedLease(name: string): StoredLease | undefined {
    if (!this.#o.store.meta(name)?.leased) return undefined;
    try {
      return this.#o.store.lease(name);
    } catch (e) {
      this.#log.warn({ secret: name, err: describeError(e) }, "cached lease unreadable; the secret will be read again");
      return undefined;
    }
  }

  /** Runs the provider's post-commit step (lease revocations) without holding the batch up; bounded by sync.timeout. */
  #afterCommit(handle: ProviderHandle, provider: Provider, held: ReadonlyMap<string, string | undefined>): void {
    const ac = new AbortController();
    this.#aborts.add(ac);
    const timer = setTimeout(() => ac.abort(), this.#o.sync.timeout);
    const p = Promise.resolve()
      .then(() => provider.committed!(held, ac.signal))
      .catch((e: unknown) => this.#log.warn({ provider: handle.name, err: describeError(e) }, "post-sync step failed; ignored"))
      .finally(() => {
        clearTimeout(timer);
        this.#aborts.delete(ac);
        this.#after.delete(p);
      });
    this.#after.add(p);
  }

  /** Matches results to the batch; anything missing, duplicated or malformed is an error, not a value. */
  #toOutcome(handle: ProviderHandle, names: string[], results: FetchResult[], at: number): Outcome {
    const out: Outcome = { items: [], removed: [], cleared: [], walks: new Map(), expiry: new Map() };
    const wanted = new Set(names);
    const byName = new Map<string, FetchResult>();
    for (const r of Array.isArray(results) ? results : []) {
      if (r && typeof r.name === "string" && wanted.has(r.name) && !byName.has(r.name)) byName.set(r.name, r);
    }
    for (const name of names) {
      const r = byName.get(name);
      const tree = this.#catalog.isHierarchy(name);
      if (!r) {
        out.items.push({ name, ok: false, kind: "permanent", message: `provider ${handle.name} returned no result for this secret`, at });
        continue;
      }
      if (tree && r.ok && Array.isArray(r.members)) {
        const skipped = expandWalk(this.#catalog, handle.name, name, r as HierarchyResult, at, out);
        if (skipped > 0) this.#log.warn({ provider: handle.name, secret: name, skipped }, "parameters under a hierarchy not served (see its error)");
        continue;
      }
      if (!tree && r.ok && r.members === undefined) {
        if (typeof r.expiresAt === "number" && Number.isFinite(r.expiresAt)) out.expiry.set(name, r.expiresAt);
        const lease = leaseOf(r.lease);
        if (r.unchanged === true) {
          out.items.push(this.#unchanged(handle, name, r.version, at, lease));
          continue;
        }
        if (r.value instanceof Uint8Array && r.value.length === 0 && this.#catalog.entry(name)!.allow_empty !== true) {
          // One rule for every provider: an empty value is far more often a file caught
          // between truncate and write, or a half-provisioned backend, than a real secret.
          this.#log.warn({ provider: handle.name, secret: name }, "secret not refreshed: empty value; cached value kept");
          out.items.push({ name, ok: false, kind: "transient", message: `provider ${handle.name} returned an empty value; the cached value is kept (set allow_empty: true on the secret if empty is valid)`, at });
          continue;
        }
        if (r.value instanceof Uint8Array) {
          out.items.push({ name, ok: true, value: r.value, sourceVersion: r.version, at, held: this.#catalog.fingerprint(name), lease });
          continue;
        }
      }
      const err = !r.ok ? r.error : undefined;
      const kind = isProviderError(err) ? err.kind : "permanent";
      const message = isProviderError(err) ? err.message : `provider ${handle.name} returned a malformed result`;
      // The cause: provider messages name paths, keys and backend codes, never a value (as every error message here).
      this.#log.warn({ provider: handle.name, secret: name, kind, err: message }, "secret not refreshed; cached value kept");
      out.items.push({ name, ok: false, kind, message, at });
    }
    return out;
  }

  /**
   * The backend confirmed the version held: the cached value is confirmed again
   * (read back and re-applied, so the store only moves `fetched_at`).
   */
  #unchanged(handle: ProviderHandle, name: string, version: string | undefined, at: number, lease: StoredLease | undefined): BatchItem {
    let held: ReturnType<SecretStore["read"]>;
    try {
      held = this.#o.store.read(name);
    } catch (e) {
      held = undefined;
      this.#log.warn({ provider: handle.name, secret: name, err: describeError(e) }, "cached value unreadable after a version check");
    }
    const fp = this.#catalog.fingerprint(name);
    if (!held || held.meta.sourceVersion !== version || held.meta.held !== fp) {
      if (held) held.value.fill(0);
      return { name, ok: false, kind: "transient", message: `provider ${handle.name} reported version ${String(version)} unchanged, but the cache holds another; fetching in full next time`, at };
    }
    return { name, ok: true, value: held.value, sourceVersion: version, at, held: fp, lease };
  }

  #providerFailed(handle: ProviderHandle, names: string[], e: unknown): void {
    const { mono: now, wall } = this.#now();
    const st = this.#state.get(handle.name)!;
    const kind = isProviderError(e) ? e.kind : "transient";
    const message = isProviderError(e) ? e.message : `unexpected error from provider ${handle.name}: ${describeError(e)}`;
    st.failures += 1;
    const { backoff_min: min, backoff_max: max } = this.#o.sync;
    const retryAfter = isProviderError(e) && e.retryAfter ? e.retryAfter * 1000 : 0;
    st.nextAttempt = now + Math.max(retryAfter, backoffDelay(st.failures, min, max, this.#rand));
    Object.assign(st, { lastError: message, lastErrorKind: kind, lastErrorAt: wall });
    this.#fresh.providerFailed(handle.name, { mono: now });
    this.#saveProviderState(handle.name, st);
    for (const n of names) this.#reschedule(n, st.nextAttempt);
    this.#log.warn({ provider: handle.name, kind, err: message, failures: st.failures, retry_in_ms: Math.round(st.nextAttempt - now) }, "provider unreachable; serving cached values as stale");
  }

  /** Persisted for after a restart; a disk that takes no writes (the store says so itself) costs nothing here. */
  #saveProviderState(name: string, st: ProviderState): void {
    try {
      this.#o.store.providerStates.save(name, st);
    } catch (err) {
      if (!isStoreWriteError(err)) this.#log.error({ provider: name, err: describeError(err) }, "could not record provider state");
    }
  }

  /**
   * The backend answered but the cache could not record it (data_dir full or
   * read-only; the store logs that once): the provider is fine and stays online,
   * cached values keep being served, and the names are tried again with backoff,
   * so writes resume on their own once there is space.
   */
  #notRecorded(names: string[], now: number): void {
    this.#writeFailures++;
    const { backoff_min: min, backoff_max: max } = this.#o.sync;
    const at = now + backoffDelay(this.#writeFailures, min, max, this.#rand);
    for (const n of names) this.#reschedule(n, at);
  }

  #recordInactive(handle: ProviderHandle, names: string[], now: number): void {
    for (const n of names) this.#due.set(n, now + this.#o.sync.interval);
    this.#log.warn({ provider: handle.name, type: handle.type, secrets: names.length }, handle.inactive ?? "provider not active");
  }
}

/** A provider's lease as the store records it; anything malformed is not recorded (the value then simply has no lease). */
function leaseOf(l: LeaseState | undefined): StoredLease | undefined {
  if (!l || typeof l !== "object") return undefined;
  const time = (v: unknown) => typeof v === "number" && Number.isFinite(v) && v >= 0;
  if (typeof l.id !== "string" || l.id === "" || !time(l.duration) || !time(l.expiresAt) || typeof l.renewable !== "boolean") return undefined;
  return { id: l.id, duration: l.duration, expiresAt: l.expiresAt, renewable: l.renewable };
}

function aborted(signal: AbortSignal, ms: number): Promise<never> {
  return new Promise((_, reject) => {
    const fail = () => reject(new ProviderError("transient", `no answer within sync.timeout (${ms} ms)`));
    if (signal.aborted) fail();
    else signal.addEventListener("abort", fail, { once: true });
  });
}
