/**
 * A token bucket on the monotonic clock: `burst` at once, refilled at `perSecond`.
 * Pure (the caller passes the time), so tests drive it with a fake clock.
 */
export class TokenBucket {
  readonly #rate: number;
  readonly #burst: number;
  #tokens: number;
  #at: number | undefined;

  constructor(opts: { perSecond: number; burst: number }) {
    this.#rate = opts.perSecond;
    this.#burst = opts.burst;
    this.#tokens = opts.burst;
  }

  /** Takes one token if there is one; `nowMono` in milliseconds. */
  take(nowMono: number): boolean {
    if (this.#at !== undefined && nowMono > this.#at) this.#tokens = Math.min(this.#burst, this.#tokens + ((nowMono - this.#at) / 1000) * this.#rate);
    this.#at = this.#at === undefined ? nowMono : Math.max(this.#at, nowMono);
    if (this.#tokens < 1) return false;
    this.#tokens -= 1;
    return true;
  }

  /** Milliseconds until a token is available (0 when one is). */
  wait(nowMono: number): number {
    const tokens = this.#at === undefined ? this.#tokens : Math.min(this.#burst, this.#tokens + (Math.max(0, nowMono - this.#at) / 1000) * this.#rate);
    return tokens >= 1 ? 0 : Math.ceil(((1 - tokens) / this.#rate) * 1000);
  }
}
