/**
 * Per-uid limits on the socket: a token bucket per uid for requests, and a
 * once-per-window reporter so a flood is logged and audited as a summary rather
 * than line by line (which would let one account push everyone else's entries out
 * of the audit trail's retention).
 */

const MAX_BUCKETS = 4096;

/** The message of a 429 for a uid over its request rate: the same at accept and per request. */
export function overRateMessage(uid: number | undefined, rate: { readonly per_uid_rps: number; readonly burst: number }, wait: number): string {
  return `uid ${uid ?? "(unknown)"} is over its request rate (server.rate: ${rate.per_uid_rps}/s, burst ${rate.burst}); retry after ${wait} s`;
}

export class RateLimiter {
  readonly #rps: number;
  readonly #burst: number;
  readonly #now: () => number;
  readonly #buckets = new Map<number, { tokens: number; at: number }>();

  constructor(o: { rps: number; burst: number; now?: () => number }) {
    this.#rps = o.rps;
    this.#burst = o.burst;
    this.#now = o.now ?? (() => performance.now());
  }

  /** Takes one token for `key`: 0 if the request may go ahead, else whole seconds until one is available. */
  take(key: number): number {
    const b = this.#refilled(key);
    if (b.tokens >= 1) {
      b.tokens -= 1;
      return 0;
    }
    return this.#retryAfter(b);
  }

  /**
   * What take() would answer, without taking: 0 while `key` has a token, else whole
   * seconds until it has one. Asked at accept, so a uid over its rate is refused
   * before anything it sends is read or parsed.
   */
  wait(key: number): number {
    const b = this.#refilled(key);
    return b.tokens >= 1 ? 0 : this.#retryAfter(b);
  }

  /** The bucket of `key`, topped up to now (a new one is full). */
  #refilled(key: number): { tokens: number; at: number } {
    const t = this.#now();
    let b = this.#buckets.get(key);
    if (!b) {
      if (this.#buckets.size >= MAX_BUCKETS) this.#sweep(t);
      b = { tokens: this.#burst, at: t };
      this.#buckets.set(key, b);
    } else {
      b.tokens = Math.min(this.#burst, b.tokens + ((t - b.at) * this.#rps) / 1000);
      b.at = t;
    }
    return b;
  }

  #retryAfter(b: { tokens: number }): number {
    return Math.max(1, Math.ceil((1 - b.tokens) / this.#rps));
  }

  /** Forgets buckets that have refilled: they behave exactly like new ones. */
  #sweep(t: number): void {
    for (const [k, b] of this.#buckets) {
      if (b.tokens + ((t - b.at) * this.#rps) / 1000 >= this.#burst) this.#buckets.delete(k);
    }
  }
}

/**
 * Says when an event for a key is due to be reported: the first one at once, then
 * at most one per window, carrying how many were held back since the last.
 */
export class Throttle {
  readonly #windowMs: number;
  readonly #now: () => number;
  readonly #last = new Map<string, { at: number; held: number }>();

  constructor(o: { windowMs: number; now?: () => number }) {
    this.#windowMs = o.windowMs;
    this.#now = o.now ?? (() => Date.now());
  }

  /** The number of events held back since the last report when this one is to be reported; undefined to hold it back. */
  due(key: string): number | undefined {
    const t = this.#now();
    const e = this.#last.get(key);
    if (e && t - e.at < this.#windowMs) {
      e.held++;
      return undefined;
    }
    if (this.#last.size >= MAX_BUCKETS) {
      for (const [k, v] of this.#last) if (t - v.at >= this.#windowMs) this.#last.delete(k);
    }
    this.#last.set(key, { at: t, held: 0 });
    return e?.held ?? 0;
  }
}

/** Open connections per uid, for the per-uid cap. */
export class ConnectionCounts {
  readonly #byUid = new Map<number, number>();
  #total = 0;

  get total(): number {
    return this.#total;
  }

  of(uid: number): number {
    return this.#byUid.get(uid) ?? 0;
  }

  add(uid: number | undefined): void {
    this.#total++;
    if (uid !== undefined) this.#byUid.set(uid, this.of(uid) + 1);
  }

  remove(uid: number | undefined): void {
    this.#total--;
    if (uid === undefined) return;
    const n = this.of(uid) - 1;
    if (n > 0) this.#byUid.set(uid, n);
    else this.#byUid.delete(uid);
  }
}
