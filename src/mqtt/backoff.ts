/**
 * When to try the broker again: exponential backoff with full jitter (each delay
 * drawn uniformly from [0, cap], the cap doubling from `minMs` to `maxMs`), as a
 * pure object over the monotonic clock so tests run it with a fake one.
 *
 * Two streaks, because two different things go wrong:
 * - a gateway that cannot get a connection (at start, or after failed attempts)
 *   retries at caps of 1 s, 2 s, 4 s ... 5 min: it is alone in its trouble, and
 *   comes back quickly once the trouble passes;
 * - a connection that had stayed up (`stableMs`) and was lost is most likely lost
 *   by the whole fleet at once (a broker restart, a load balancer failing over),
 *   so the first retry is drawn over `spreadMs` (default 60 s) and the cap doubles
 *   from there. Plain full jitter from 1 s would put every gateway's first retries
 *   in the first few seconds: 1,000 simulated gateways (fake clock, broker back
 *   after 1 s) make 34x the mean attempt rate of the minute after the restart in
 *   its first second; spread over 60 s, 1.6x (`npm run bench -- fleet` measures
 *   both, and with real clients). The price: after a blip, a gateway is back in
 *   30 s on average instead of 0.5 s (commands wait in its session meanwhile).
 * A connection that is lost before `stableMs` (the broker accepts, then drops it)
 * does not reset the streak, so a flapping broker sees growing delays.
 */
export interface BackoffOptions {
  readonly minMs: number;
  readonly maxMs: number;
  /** 0: a lost connection starts over at minMs like any failure. */
  readonly spreadMs: number;
  /** How long a connection must have lasted to count as established. */
  readonly stableMs: number;
  /** Uniform in [0, 1). */
  readonly random?: () => number;
}

export class ReconnectBackoff {
  readonly #o: BackoffOptions;
  readonly #random: () => number;
  #base: number;
  #step = 0;
  #connectedAt: number | undefined;

  constructor(opts: BackoffOptions) {
    this.#o = opts;
    this.#random = opts.random ?? Math.random;
    this.#base = opts.minMs;
  }

  /** The attempt got a CONNACK. */
  connected(nowMono: number): void {
    this.#connectedAt = nowMono;
  }

  /** The attempt failed, or the connection closed: the delay (ms) before the next attempt. */
  closed(nowMono: number): number {
    const upFor = this.#connectedAt === undefined ? undefined : nowMono - this.#connectedAt;
    this.#connectedAt = undefined;
    if (upFor !== undefined && upFor >= this.#o.stableMs) {
      this.#base = this.#o.spreadMs > 0 ? this.#o.spreadMs : this.#o.minMs;
      this.#step = 0;
    }
    const cap = this.cap();
    this.#step = Math.min(this.#step + 1, 40);
    return Math.floor(this.#random() * cap);
  }

  /** The cap the next delay is drawn under. */
  cap(): number {
    return Math.min(this.#o.maxMs, this.#base * 2 ** this.#step);
  }
}
