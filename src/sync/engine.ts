// Longer than 300 lines on purpose: the batch loop (schedule, fetch, apply, back off)
// and its bookkeeping per provider read as one piece; the decisions are pure and
// elsewhere (scheduler.ts, outcome.ts, leases.ts, freshness.ts).
import type { SecretConfig, SyncConfig } from "../config/schema.js";
import { describeError } from "../errors.js";
import type { Logger } from "../log.js";
import { ProviderError, isProviderError, type FetchResult, type Provider, type SecretRef } from "../providers/provider.js";
import { isStoreWriteError } from "../store/disk.js";
import type { ProviderState, SecretStore } from "../store/store.js";
import { Catalog } from "./catalog.js";
import { StepDetector, readClocks, systemClock, type Clock, type Now } from "./clock.js";
import { Freshness } from "./freshness.js";
import type { Outcome } from "./hierarchy.js";
import { cachedLease, trustedVersion } from "./leases.js";
import { buildOutcome } from "./outcome.js";
import { Scheduler } from "./scheduler.js";
import { Semaphore } from "./semaphore.js";

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
  /** Called after each batch, however it ended (provider health may have moved). */
  readonly onBatch?: () => void;
}

/**
 * Runs the sync: one timer for the earliest due entry (the Scheduler decides
 * which), due entries grouped per provider into batches under a global
 * concurrency bound, each batch's answers turned into one store transaction
 * (buildOutcome), and what happened told to the Freshness read model. A failure
 * never removes a cached value: it only marks the provider offline, pushes its
 * next attempt out with backoff, and makes its values stale.
 */
export class SyncEngine {
  readonly #o: SyncEngineOptions;
  readonly #log: Logger;
  readonly #clock: Clock;
  readonly #steps = new StepDetector();
  readonly #catalog: Catalog;
  readonly #fresh: Freshness;
  readonly #plan: Scheduler;
  readonly #sem: Semaphore;
  /** What each provider's health says (persisted across restarts). */
  readonly #state = new Map<string, ProviderState>();
  readonly #running = new Set<Promise<void>>();
  readonly #aborts = new Set<AbortController>();
  /** Post-commit calls to providers (lease revocations), awaited at stop. */
  readonly #after = new Set<Promise<void>>();
  #timer: NodeJS.Timeout | undefined;
  #stopped = false;

  constructor(opts: SyncEngineOptions) {
    this.#o = opts;
    this.#log = opts.logger;
    this.#clock = opts.clock ?? systemClock;
    this.#sem = new Semaphore(opts.sync.concurrency);
    const loaded = (p: string) => opts.providers.get(p)?.provider;
    this.#catalog = new Catalog({
      secrets: opts.secrets,
      isHierarchy: (sc) => loaded(sc.provider)?.expands?.(sc.path) === true,
      backend: (p) => loaded(p)?.backend ?? "",
    });
    this.#fresh = new Freshness({ catalog: this.#catalog, store: opts.store, sync: opts.sync });
    this.#plan = new Scheduler({
      sync: opts.sync,
      random: opts.random ?? Math.random,
      refreshOf: (e) => this.#catalog.entry(e)?.refresh ?? opts.sync.interval,
    });
    this.#catalog.adopt(opts.store.metas());
    if (this.#catalog.hasHierarchies) {
      for (const m of opts.store.metas()) {
        const k = this.#catalog.kind(m.name);
        if (k?.kind === "member") this.#fresh.inheritWalk(k.entry, m.fetchedAt);
      }
    }
    const saved = opts.store.providerStates.load();
    for (const name of opts.providers.keys()) {
      const s = saved.get(name);
      this.#state.set(name, {
        lastSuccess: s?.lastSuccess ?? null,
        lastError: s?.lastError ?? null,
        lastErrorKind: s?.lastErrorKind ?? null,
        lastErrorAt: s?.lastErrorAt ?? null,
        failures: s?.failures ?? 0,
      });
      this.#plan.inherit(name, s?.failures ?? 0);
      if (s && s.failures > 0) this.#fresh.providerFailed(name, { wall: s.lastErrorAt ?? 0 });
    }
  }

  /** Schedules every entry from what the cache recorded, and starts the timer. */
  start(): void {
    const now = this.#now();
    this.#steps.check(now);
    for (const name of this.#catalog.entries()) {
      // A value held under a lease (recorded with it in the cache) keeps the lease's
      // schedule across the restart, and is stale from its expiry on, as before.
      const lease = cachedLease(this.#o.store, this.#catalog, name, this.#log);
      const expires = lease ? now.mono + (lease.expiresAt - now.wall) : undefined;
      if (expires !== undefined) this.#fresh.setExpiry(name, expires);
      // A revoked secret holds no value, which would make it due at once: a restart would
      // undo the revoke within seconds. It keeps the running daemon's rule instead: fetched
      // again at its next interval (counted from the revocation) or by an explicit refresh.
      const revoked = this.#o.store.meta(name) ? undefined : this.#o.store.secretError(name);
      if (revoked?.kind === "revoked") {
        this.#plan.resume(name, now.mono, true, Math.max(0, now.wall - revoked.at), undefined);
        continue;
      }
      this.#plan.resume(name, now.mono, this.#fresh.has(name), this.#fresh.age(name, now), expires);
    }
    this.#schedule();
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

  /** How fresh each name is (the read model behind lookups, list, status, health and metrics). */
  get freshness(): Freshness {
    return this.#fresh;
  }

  /**
   * Makes the named entries due now, past any backoff (all when empty); a name
   * under a hierarchy (held or not: it may have been created since) queues its
   * hierarchy. Returns the entries queued.
   */
  trigger(names: readonly string[] = []): string[] {
    const list =
      names.length > 0 ? [...new Set(names.map((n) => this.#catalog.owner(n)).filter((e): e is string => e !== undefined))] : this.#catalog.entries();
    this.#plan.trigger(list, this.#clock.mono());
    this.#schedule();
    return list;
  }

  providerHealth(): ProviderHealth[] {
    const now = this.#now();
    const iso = (t: number | null | undefined) => (t ? new Date(t).toISOString() : null);
    return [...this.#o.providers.values()].map((h) => {
      const s = this.#state.get(h.name)!;
      const next = this.#plan.backoff(h.name).nextAttempt;
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
        next_attempt: s.failures > 0 && next !== undefined ? iso(now.wall + Math.max(0, next - now.mono)) : null,
      };
    });
  }

  #now(): Now {
    return readClocks(this.#clock);
  }

  #schedule(): void {
    if (this.#stopped) return;
    clearTimeout(this.#timer);
    const delay = this.#plan.nextWake(this.#clock.mono());
    if (delay !== undefined) this.#timer = setTimeout(() => this.#tick(), delay);
  }

  #tick(): void {
    if (this.#stopped) return;
    const clocks = this.#now();
    const step = this.#steps.check(clocks);
    if (step !== undefined) this.#stepped(step, clocks.mono);
    const due = this.#plan.take(clocks.mono, (e) => this.#catalog.entry(e)!.provider);
    for (const [provider, names] of due) {
      const handle = this.#o.providers.get(provider)!;
      if (!handle.provider) {
        this.#plan.landed(names);
        this.#plan.later(names, clocks.mono);
        this.#log.warn({ provider: handle.name, type: handle.type, secrets: names.length }, handle.inactive ?? "provider not active");
        continue;
      }
      names.sort();
      for (let i = 0; i < names.length; i += handle.provider.maxBatch) this.#dispatch(handle, handle.provider, names.slice(i, i + handle.provider.maxBatch));
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
    this.#log.warn(
      { step_s: Math.round(ms / 1000) },
      "wall clock stepped; schedules and ages run on the monotonic clock, refreshing every secret within the jitter window",
    );
    this.#plan.respread(this.#catalog.entries(), now);
  }

  #dispatch(handle: ProviderHandle, provider: Provider, names: string[]): void {
    const queuedAt = this.#clock.mono();
    const p = this.#sem
      .run(() => this.#runBatch(handle, provider, names, queuedAt))
      .catch((e) => this.#log.error({ provider: handle.name, err: describeError(e) }, "sync batch failed unexpectedly"))
      .finally(() => {
        this.#plan.landed(names);
        this.#running.delete(p);
        this.#o.onBatch?.();
        if (this.#running.size === 0) this.#o.onIdle?.();
        this.#schedule();
      });
    this.#running.add(p);
  }

  async #runBatch(handle: ProviderHandle, provider: Provider, names: string[], queuedAt: number): Promise<void> {
    if (this.#stopped || this.#plan.holdBack(handle.name, names, queuedAt, this.#clock.mono())) return;
    const store = this.#o.store;
    const refs: SecretRef[] = names.map((name) => {
      const sc = this.#catalog.entry(name)!;
      return {
        name,
        path: sc.path,
        key: sc.key,
        version: sc.version,
        cachedVersion: trustedVersion(store, this.#catalog, name),
        cachedLease: cachedLease(store, this.#catalog, name, this.#log),
      };
    });
    const started = this.#clock.mono();
    const revokes = store.revokeCount;
    let results: FetchResult[];
    try {
      this.#log.debug({ provider: handle.name, count: refs.length }, "sync batch start");
      results = await this.#bounded((signal) => provider.fetch(refs, signal));
    } catch (e) {
      this.#providerFailed(handle, names, e);
      return;
    }
    if (this.#stopped) return;
    const clocks = this.#now();
    // Items carry the wall clock: fetched_at is what the cache records for after a restart.
    const out = buildOutcome({ catalog: this.#catalog, store, provider: handle.name, names, results, at: clocks.wall, log: this.#log });
    // A revoke that landed while this batch was in flight wins: what was fetched before it is
    // dropped (a refresh asked for after the revoke fetches again, as the scheduler keeps it due).
    const late = out.items.filter((it) => it.ok && store.revokedSince(it.name, revokes));
    if (late.length > 0) {
      for (const it of late) if (it.ok) it.value.fill(0);
      out.items.splice(0, out.items.length, ...out.items.filter((it) => !late.includes(it)));
      this.#log.info({ provider: handle.name, secrets: late.length }, "fetched before a revoke that landed meanwhile; dropped");
    }
    // A lease's end as the provider computed it (wall), on the monotonic clock from here on.
    const expires = (n: string) => {
      const e = out.expiry.get(n);
      return e === undefined ? undefined : clocks.mono + (e - clocks.wall);
    };
    let changed: string[];
    try {
      changed = store.apply(out.items, { removed: out.removed, cleared: out.cleared });
    } catch (e) {
      if (isStoreWriteError(e)) this.#plan.notRecorded(names, clocks.mono);
      else this.#providerFailed(handle, names, e);
      return;
    } finally {
      for (const it of out.items) if (it.ok) it.value.fill(0);
    }
    const held = this.#landed(out, clocks.mono, expires);
    if (out.removed.length > 0)
      this.#log.info({ provider: handle.name, removed: out.removed }, "parameters no longer in their hierarchy in the backend; no longer served");
    this.#log.info(
      {
        provider: handle.name,
        fetched: names.length,
        changed: changed.length,
        failed: out.items.filter((i) => !i.ok).length,
        ms: Math.round(clocks.mono - started),
      },
      "sync batch applied",
    );
    if (held.size > 0 && provider.committed) this.#afterCommit(handle, provider, held);
    const st = this.#state.get(handle.name)!;
    const wasOffline = st.failures > 0;
    Object.assign(st, { lastSuccess: clocks.wall, failures: 0 });
    this.#fresh.providerRecovered(handle.name);
    this.#saveProviderState(handle.name, st);
    if (wasOffline) this.#log.info({ provider: handle.name }, "provider back online");
    this.#plan.succeeded(handle.name, names, clocks.mono, expires);
  }

  /** What a committed batch tells the read model; returns the backend version now held per secret (for the provider's post-commit step). */
  #landed(out: Outcome, now: number, expires: (n: string) => number | undefined): Map<string, string | undefined> {
    const held = new Map<string, string | undefined>();
    for (const [entry, members] of out.walks) {
      this.#catalog.setMembers(entry, members);
      this.#fresh.confirm(entry, now);
    }
    for (const n of out.removed) this.#fresh.forget(n);
    for (const it of out.items) {
      if (!it.ok) continue;
      this.#fresh.confirm(it.name, now);
      if (it.origin !== undefined) continue;
      held.set(it.name, it.sourceVersion);
      this.#fresh.setExpiry(it.name, expires(it.name));
    }
    for (const it of out.items) if (!it.ok) this.#fresh.noteError(it.name, now);
    return held;
  }

  /** Runs a provider call bounded by sync.timeout (and by stop): its signal aborts, and the call is abandoned, at the bound. */
  async #bounded<T>(call: (signal: AbortSignal) => Promise<T>): Promise<T> {
    const ac = new AbortController();
    this.#aborts.add(ac);
    const timer = setTimeout(() => ac.abort(), this.#o.sync.timeout);
    try {
      return await Promise.race([call(ac.signal), aborted(ac.signal, this.#o.sync.timeout)]);
    } finally {
      clearTimeout(timer);
      this.#aborts.delete(ac);
    }
  }

  /** Runs the provider's post-commit step (lease revocations) without holding the batch up; bounded by sync.timeout. */
  #afterCommit(handle: ProviderHandle, provider: Provider, held: ReadonlyMap<string, string | undefined>): void {
    const p = this.#bounded((signal) => provider.committed!(held, signal))
      .catch((e: unknown) => this.#log.warn({ provider: handle.name, err: describeError(e) }, "post-sync step failed; ignored"))
      .finally(() => this.#after.delete(p));
    this.#after.add(p);
  }

  #providerFailed(handle: ProviderHandle, names: string[], e: unknown): void {
    const { mono: now, wall } = this.#now();
    const st = this.#state.get(handle.name)!;
    const kind = isProviderError(e) ? e.kind : "transient";
    const message = isProviderError(e) ? e.message : `unexpected error from provider ${handle.name}: ${describeError(e)}`;
    const retryAfter = isProviderError(e) && e.retryAfter ? e.retryAfter * 1000 : 0;
    const { failures, nextAttempt } = this.#plan.failed(handle.name, names, now, retryAfter);
    Object.assign(st, { failures, lastError: message, lastErrorKind: kind, lastErrorAt: wall });
    this.#fresh.providerFailed(handle.name, { mono: now });
    this.#saveProviderState(handle.name, st);
    this.#log.warn(
      { provider: handle.name, kind, err: message, failures, retry_in_ms: Math.round(nextAttempt - now) },
      "provider unreachable; serving cached values as stale",
    );
  }

  /** Persisted for after a restart; a disk that takes no writes (the store says so itself) costs nothing here. */
  #saveProviderState(name: string, st: ProviderState): void {
    try {
      this.#o.store.providerStates.save(name, st);
    } catch (err) {
      if (!isStoreWriteError(err)) this.#log.error({ provider: name, err: describeError(err) }, "could not record provider state");
    }
  }
}

function aborted(signal: AbortSignal, ms: number): Promise<never> {
  return new Promise((_, reject) => {
    const fail = () => reject(new ProviderError("transient", `no answer within sync.timeout (${ms} ms)`));
    if (signal.aborted) fail();
    else signal.addEventListener("abort", fail, { once: true });
  });
}
