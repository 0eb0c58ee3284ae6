import { ReconnectBackoff, type BackoffOptions } from "../src/mqtt/backoff.js";

/** A seeded PRNG (mulberry32), so a simulation is the same on every run. */
export function seeded(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export interface SimResult {
  /** Attempts per second over the window, second by second. */
  readonly perSecond: number[];
  readonly peakOverMean: number;
  /** Clients connected again by the end of the window. */
  readonly reconnected: number;
}

/**
 * `clients` gateways, each with its own ReconnectBackoff on a fake monotonic
 * clock, lose an established connection at t = 0 (a broker restart); the broker
 * accepts again from `downMs`. Counts each client's connection attempts, per
 * second, over the first `windowMs`: the figure `npm run bench -- fleet` prints
 * for the scheduler.
 */
export function simulateRestart(opts: {
  clients: number;
  downMs: number;
  windowMs?: number;
  backoff: Omit<BackoffOptions, "random">;
  seed?: number;
}): SimResult {
  const windowMs = opts.windowMs ?? 60_000;
  const random = seeded(opts.seed ?? 1);
  const perSecond = new Array<number>(Math.ceil(windowMs / 1000)).fill(0);
  let reconnected = 0;
  for (let i = 0; i < opts.clients; i++) {
    const b = new ReconnectBackoff({ ...opts.backoff, random });
    b.connected(-opts.backoff.stableMs - 1);
    let t = b.closed(0);
    while (t < windowMs) {
      perSecond[Math.floor(t / 1000)]!++;
      if (t >= opts.downMs) {
        reconnected++;
        break;
      }
      t += b.closed(t);
    }
  }
  return { perSecond, peakOverMean: peakOverMean(perSecond), reconnected };
}

export function peakOverMean(perSecond: readonly number[]): number {
  const mean = perSecond.reduce((a, b) => a + b, 0) / perSecond.length;
  return mean === 0 ? 0 : Math.max(...perSecond) / mean;
}
