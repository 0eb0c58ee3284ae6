import type { SecretConfig, SyncConfig } from "../config/schema.js";
import { describeError } from "../errors.js";
import type { Logger } from "../log.js";
import { ProviderError, isProviderError, type FetchResult, type Provider, type SecretRef } from "../providers/provider.js";
import type { BatchItem, ProviderState, SecretStore } from "../store/store.js";
import { Semaphore } from "./semaphore.js";
import { backoffDelay, refreshDelay, resumeDue, staleAfter } from "./timing.js";

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
  /** Called when a wave of batches has finished (the daemon returns freed memory to the OS). */
  readonly onIdle?: () => void;
}

interface ProviderRuntime extends ProviderState {
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
  readonly #sem: Semaphore;
  readonly #due = new Map<string, number>();
  readonly #inFlight = new Set<string>();
  readonly #forced = new Set<string>();
  readonly #state = new Map<string, ProviderRuntime>();
  readonly #running = new Set<Promise<void>>();
  readonly #aborts = new Set<AbortController>();
  /** Source versions fetched as values by this process under the current config (for cheap checks). */
  readonly #confirmed = new Map<string, string>();
  /** When a leased value (Vault lease, STS credentials) stops being usable. */
  readonly #expires = new Map<string, number>();
  #timer: NodeJS.Timeout | undefined;
  #stopped = false;

  constructor(opts: SyncEngineOptions) {
    this.#o = opts;
    this.#log = opts.logger;
    this.#rand = opts.random ?? Math.random;
    this.#sem = new Semaphore(opts.sync.concurrency);
    const saved = opts.store.loadProviderStates();
    for (const name of opts.providers.keys()) {
      const s = saved.get(name);
      this.#state.set(name, { lastSuccess: s?.lastSuccess ?? null, lastError: s?.lastError ?? null, lastErrorKind: s?.lastErrorKind ?? null, lastErrorAt: s?.lastErrorAt ?? null, failures: s?.failures ?? 0, nextAttempt: 0 });
    }
  }

  start(): void {
    const now = Date.now();
    const { interval, jitter } = this.#o.sync;
    for (const [name, sc] of Object.entries(this.#o.secrets)) {
      const meta = this.#o.store.meta(name);
      this.#due.set(name, meta ? resumeDue(meta.fetchedAt, sc.refresh ?? interval, jitter, now, this.#rand) : now);
    }
    this.#schedule();
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    clearTimeout(this.#timer);
    for (const a of this.#aborts) a.abort();
    await Promise.allSettled([...this.#running]);
  }

  /** Makes the named secrets (all when empty) due now, past any backoff. Returns what was queued. */
  trigger(names: readonly string[] = []): string[] {
    const list = names.length > 0 ? names.filter((n) => n in this.#o.secrets) : Object.keys(this.#o.secrets);
    const now = Date.now();
    for (const n of list) {
      this.#due.set(n, now);
      this.#forced.add(n);
    }
    this.#schedule();
    return list;
  }

  isStale(name: string, now: number): boolean {
    const meta = this.#o.store.meta(name);
    const sc = this.#o.secrets[name];
    if (!meta || !sc) return true;
    const { interval, jitter, timeout } = this.#o.sync;
    if (now - meta.fetchedAt > staleAfter(sc.refresh ?? interval, jitter, timeout)) return true;
    const err = this.#o.store.secretError(name);
    if (err && err.at > meta.fetchedAt) return true;
    const exp = this.#expires.get(name);
    if (exp !== undefined && now >= exp) return true;
    const p = this.#state.get(sc.provider);
    return p !== undefined && p.failures > 0 && (p.lastErrorAt ?? 0) > meta.fetchedAt;
  }

  providerHealth(): ProviderHealth[] {
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
        next_attempt: s.failures > 0 ? iso(s.nextAttempt) : null,
      };
    });
  }

  #schedule(): void {
    if (this.#stopped) return;
    clearTimeout(this.#timer);
    let next = Infinity;
    for (const [n, at] of this.#due) if (!this.#inFlight.has(n) && at < next) next = at;
    if (next === Infinity) return;
    // Capped so a clock step or a long sleep is noticed within a minute.
    const delay = Math.min(Math.max(0, next - Date.now()), 60_000);
    this.#timer = setTimeout(() => this.#tick(), delay);
  }

  #tick(): void {
    if (this.#stopped) return;
    const now = Date.now();
    const byProvider = new Map<string, string[]>();
    for (const [name, at] of this.#due) {
      if (at > now || this.#inFlight.has(name)) continue;
      const provider = this.#o.secrets[name]!.provider;
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

  #dispatch(handle: ProviderHandle, provider: Provider, names: string[]): void {
    for (const n of names) {
      this.#inFlight.add(n);
      this.#forced.delete(n);
    }
    const queuedAt = Date.now();
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
    if (st0.failures > 0 && (st0.lastErrorAt ?? 0) >= queuedAt && st0.nextAttempt > Date.now()) {
      for (const n of names) this.#due.set(n, st0.nextAttempt);
      return;
    }
    const refs: SecretRef[] = names.map((name) => {
      const sc = this.#o.secrets[name]!;
      const confirmed = this.#confirmed.get(name);
      const cachedVersion = confirmed !== undefined && this.#o.store.meta(name)?.sourceVersion === confirmed ? confirmed : undefined;
      return { name, path: sc.path, key: sc.key, version: sc.version, cachedVersion };
    });
    const ac = new AbortController();
    this.#aborts.add(ac);
    const timer = setTimeout(() => ac.abort(), this.#o.sync.timeout);
    const started = Date.now();
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
    const now = Date.now();
    const expiry = new Map<string, number>();
    const items = this.#toItems(handle, names, results, now, expiry);
    try {
      const changed = this.#o.store.apply(items);
      for (const it of items) {
        if (!it.ok) continue;
        if (it.sourceVersion !== undefined) this.#confirmed.set(it.name, it.sourceVersion);
        else this.#confirmed.delete(it.name);
        const exp = expiry.get(it.name);
        if (exp !== undefined) this.#expires.set(it.name, exp);
        else this.#expires.delete(it.name);
      }
      this.#log.info({ provider: handle.name, fetched: names.length, changed: changed.length, failed: items.filter((i) => !i.ok).length, ms: now - started }, "sync batch applied");
    } catch (e) {
      this.#providerFailed(handle, names, e);
      return;
    } finally {
      for (const it of items) if (it.ok) it.value.fill(0);
    }
    const st = this.#state.get(handle.name)!;
    const wasOffline = st.failures > 0;
    Object.assign(st, { lastSuccess: now, failures: 0, nextAttempt: 0 });
    this.#o.store.saveProviderState(handle.name, st);
    if (wasOffline) this.#log.info({ provider: handle.name }, "provider back online");
    const { interval, jitter } = this.#o.sync;
    for (const n of names) this.#due.set(n, now + refreshDelay(this.#o.secrets[n]!.refresh ?? interval, jitter, this.#rand, now, expiry.get(n)));
  }

  /** Matches results to the batch; anything missing, duplicated or malformed is an error, not a value. */
  #toItems(handle: ProviderHandle, names: string[], results: FetchResult[], at: number, expiry: Map<string, number>): BatchItem[] {
    const wanted = new Set(names);
    const byName = new Map<string, FetchResult>();
    for (const r of Array.isArray(results) ? results : []) {
      if (r && typeof r.name === "string" && wanted.has(r.name) && !byName.has(r.name)) byName.set(r.name, r);
    }
    return names.map((name): BatchItem => {
      const r = byName.get(name);
      if (!r) return { name, ok: false, kind: "permanent", message: `provider ${handle.name} returned no result for this secret`, at };
      if (r.ok && typeof r.expiresAt === "number" && Number.isFinite(r.expiresAt)) expiry.set(name, r.expiresAt);
      if (r.ok && r.unchanged === true) return this.#unchanged(handle, name, r.version, at);
      if (r.ok && r.value instanceof Uint8Array) return { name, ok: true, value: r.value, sourceVersion: r.version, at };
      const err = !r.ok ? r.error : undefined;
      const kind = isProviderError(err) ? err.kind : "permanent";
      const message = isProviderError(err) ? err.message : `provider ${handle.name} returned a malformed result`;
      this.#log.warn({ provider: handle.name, secret: name, kind }, "secret not refreshed; cached value kept");
      return { name, ok: false, kind, message, at };
    });
  }

  /**
   * The backend confirmed the version held: the cached value is confirmed again
   * (read back and re-applied, so the store only moves `fetched_at`).
   */
  #unchanged(handle: ProviderHandle, name: string, version: string | undefined, at: number): BatchItem {
    let held: ReturnType<SecretStore["read"]>;
    try {
      held = this.#o.store.read(name);
    } catch (e) {
      held = undefined;
      this.#log.warn({ provider: handle.name, secret: name, err: describeError(e) }, "cached value unreadable after a version check");
    }
    if (!held || held.meta.sourceVersion !== version) {
      if (held) held.value.fill(0);
      this.#confirmed.delete(name);
      return { name, ok: false, kind: "transient", message: `provider ${handle.name} reported version ${String(version)} unchanged, but the cache holds another; fetching in full next time`, at };
    }
    return { name, ok: true, value: held.value, sourceVersion: version, at };
  }

  #providerFailed(handle: ProviderHandle, names: string[], e: unknown): void {
    const now = Date.now();
    const st = this.#state.get(handle.name)!;
    const kind = isProviderError(e) ? e.kind : "transient";
    const message = isProviderError(e) ? e.message : `unexpected error from provider ${handle.name}: ${describeError(e)}`;
    st.failures += 1;
    const { backoff_min: min, backoff_max: max } = this.#o.sync;
    const retryAfter = isProviderError(e) && e.retryAfter ? e.retryAfter * 1000 : 0;
    st.nextAttempt = now + Math.max(retryAfter, backoffDelay(st.failures, min, max, this.#rand));
    Object.assign(st, { lastError: message, lastErrorKind: kind, lastErrorAt: now });
    try {
      this.#o.store.saveProviderState(handle.name, st);
    } catch (err) {
      this.#log.error({ provider: handle.name, err: describeError(err) }, "could not record provider state");
    }
    for (const n of names) this.#due.set(n, st.nextAttempt);
    this.#log.warn({ provider: handle.name, kind, err: message, failures: st.failures, retry_in_ms: st.nextAttempt - now }, "provider unreachable; serving cached values as stale");
  }

  #recordInactive(handle: ProviderHandle, names: string[], now: number): void {
    for (const n of names) this.#due.set(n, now + this.#o.sync.interval);
    this.#log.warn({ provider: handle.name, type: handle.type, secrets: names.length }, handle.inactive ?? "provider not active");
  }
}

function aborted(signal: AbortSignal, ms: number): Promise<never> {
  return new Promise((_, reject) => {
    const fail = () => reject(new ProviderError("transient", `no answer within sync.timeout (${ms} ms)`));
    if (signal.aborted) fail();
    else signal.addEventListener("abort", fail, { once: true });
  });
}
