import type { SyncConfig } from "../config/schema.js";
import { backoffDelay, overdueSpread, refreshDelay, resumeDelay, resumeLeaseDue } from "./timing.js";

/** Backoff state of one provider, on the monotonic clock. */
interface Backoff {
  failures: number;
  /** Not tried again before this (unless a refresh forces it). */
  nextAttempt: number;
  /** When it last failed; undefined when it has not in this process. */
  failedAt: number | undefined;
}

/**
 * When each configured entry is fetched next: every timing rule of sealcache,
 * with no timer, clock or I/O of its own (times are monotonic ms, passed in), so
 * each rule is unit-tested with plain numbers (test/unit/sync/scheduler.test.ts).
 * The engine asks what is due, dispatches it, and reports how each fetch ended.
 */
export class Scheduler {
  readonly #sync: SyncConfig;
  readonly #rand: () => number;
  readonly #refreshOf: (entry: string) => number;
  readonly #due = new Map<string, number>();
  readonly #inFlight = new Set<string>();
  /** Refreshes asked for (past any backoff); one asked while a fetch is in flight survives its end. */
  readonly #forced = new Set<string>();
  readonly #backoff = new Map<string, Backoff>();
  /** Batches in a row the cache could not record (data_dir full): their own backoff. */
  #writeFailures = 0;

  constructor(o: { sync: SyncConfig; random: () => number; refreshOf: (entry: string) => number }) {
    this.#sync = o.sync;
    this.#rand = o.random;
    this.#refreshOf = o.refreshOf;
  }

  /** A provider's backoff as recorded before a restart: its failure count carries on, its wait does not. */
  inherit(provider: string, failures: number): void {
    this.#backoff.set(provider, { failures, nextAttempt: 0, failedAt: undefined });
  }

  /**
   * At start: on schedule from the recorded fetch (`age` ms ago); at once, spread,
   * when it is overdue or its age is unknown; at once when never fetched. A value
   * whose usability ends (`expires`, a lease) keeps that schedule: renewed at 2/3
   * of what is left, replaced at once if it ran out meanwhile.
   */
  resume(entry: string, now: number, fetched: boolean, age: number | undefined, expires?: number): void {
    let at = fetched ? now + resumeDelay(age, this.#refreshOf(entry), this.#sync.jitter, this.#rand) : now;
    if (expires !== undefined) at = resumeLeaseDue(at, now, expires);
    this.#due.set(entry, at);
  }

  /** Makes entries due now, past any backoff. */
  trigger(entries: readonly string[], now: number): void {
    for (const e of entries) {
      this.#due.set(e, now);
      this.#forced.add(e);
    }
  }

  /**
   * Entries due at `now`, grouped by provider and marked in flight; those whose
   * provider is backing off (and that nobody forced) move to its next attempt.
   */
  take(now: number, providerOf: (entry: string) => string): Map<string, string[]> {
    const out = new Map<string, string[]>();
    for (const [entry, at] of this.#due) {
      if (at > now || this.#inFlight.has(entry)) continue;
      const provider = providerOf(entry);
      const b = this.#backoff.get(provider);
      if (!this.#forced.has(entry) && b && b.nextAttempt > now) {
        this.#due.set(entry, b.nextAttempt);
        continue;
      }
      const list = out.get(provider) ?? [];
      list.push(entry);
      out.set(provider, list);
    }
    for (const list of out.values()) {
      for (const e of list) {
        this.#inFlight.add(e);
        this.#forced.delete(e);
      }
    }
    return out;
  }

  /**
   * Whether a batch queued at `queuedAt` should not go out now: its provider failed
   * while it waited for a slot, so it waits for the same retry instead of hitting a
   * backend that is down (or throttling) once more. Reschedules it then.
   */
  holdBack(provider: string, entries: readonly string[], queuedAt: number, now: number): boolean {
    const b = this.#backoff.get(provider);
    if (!b || b.failures === 0 || b.failedAt === undefined || b.failedAt < queuedAt || b.nextAttempt <= now) return false;
    for (const e of entries) this.#after(e, b.nextAttempt);
    return true;
  }

  /** The fetch of these entries ended (however): no longer in flight. */
  landed(entries: readonly string[]): void {
    for (const e of entries) this.#inFlight.delete(e);
  }

  /** The batch was fetched and recorded: the provider's backoff is over; each entry is next due on its interval (or its lease). */
  succeeded(provider: string, entries: readonly string[], now: number, expiresOf: (entry: string) => number | undefined): void {
    this.#writeFailures = 0;
    this.#backoff.set(provider, { failures: 0, nextAttempt: 0, failedAt: undefined });
    for (const e of entries) this.#after(e, now + refreshDelay(this.#refreshOf(e), this.#sync.jitter, this.#rand, now, expiresOf(e)));
  }

  /** The provider failed as a whole: backoff (at least `retryAfterMs`, as the backend asked). Returns its failure count and next attempt. */
  failed(provider: string, entries: readonly string[], now: number, retryAfterMs = 0): { failures: number; nextAttempt: number } {
    const b = this.#backoff.get(provider) ?? { failures: 0, nextAttempt: 0, failedAt: undefined };
    b.failures += 1;
    b.failedAt = now;
    b.nextAttempt = now + Math.max(retryAfterMs, backoffDelay(b.failures, this.#sync.backoff_min, this.#sync.backoff_max, this.#rand));
    this.#backoff.set(provider, b);
    for (const e of entries) this.#after(e, b.nextAttempt);
    return { failures: b.failures, nextAttempt: b.nextAttempt };
  }

  /** Fetched, but the cache could not record it (data_dir full): tried again with a backoff of its own; the provider is not blamed. */
  notRecorded(entries: readonly string[], now: number): void {
    this.#writeFailures++;
    const at = now + backoffDelay(this.#writeFailures, this.#sync.backoff_min, this.#sync.backoff_max, this.#rand);
    for (const e of entries) this.#after(e, at);
  }

  /** Entries of a provider that is not active: looked at again after an interval. */
  later(entries: readonly string[], now: number): void {
    for (const e of entries) this.#due.set(e, now + this.#sync.interval);
  }

  /** After a wall-clock step: every entry not in flight is due within the overdue window (never later than it was). */
  respread(entries: readonly string[], now: number): void {
    for (const e of entries) {
      if (this.#inFlight.has(e)) continue;
      const at = now + overdueSpread(this.#refreshOf(e), this.#sync.jitter, this.#rand);
      this.#due.set(e, Math.min(this.#due.get(e) ?? at, at));
    }
  }

  /** Milliseconds until the earliest entry not in flight is due (capped: a wall-clock step is noticed within a minute); undefined: nothing is. */
  nextWake(now: number): number | undefined {
    let next = Number.POSITIVE_INFINITY;
    for (const [e, at] of this.#due) if (!this.#inFlight.has(e) && at < next) next = at;
    return next === Number.POSITIVE_INFINITY ? undefined : Math.min(Math.max(0, next - now), 60_000);
  }

  /** A provider's backoff, for health: consecutive failures and (while failing) the next attempt. */
  backoff(provider: string): { failures: number; nextAttempt: number | undefined } {
    const b = this.#backoff.get(provider);
    return { failures: b?.failures ?? 0, nextAttempt: b && b.failures > 0 ? b.nextAttempt : undefined };
  }

  /** When the entry is next due, for tests and status; undefined when not scheduled. */
  dueAt(entry: string): number | undefined {
    return this.#due.get(entry);
  }

  /**
   * The next fetch of an entry whose fetch just ended, unless a refresh was asked for
   * while it was in flight: that request wants a value fetched after it was made, so
   * the entry stays due now.
   */
  #after(entry: string, at: number): void {
    if (!this.#forced.has(entry)) this.#due.set(entry, at);
  }
}
