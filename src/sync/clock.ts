/**
 * The two clocks (see README "Clocks"). `mono` only moves forward, at one second
 * per second, whatever NTP or an operator does to the wall clock: every schedule,
 * age and timeout inside one process runs on it. `wall` is for display and for
 * what must survive a restart (a value's fetched_at, written to the cache), and
 * may be 1970 on a gateway without a real-time clock until NTP steps it.
 */
export interface Clock {
  /** Milliseconds on a monotonic clock with an arbitrary origin. */
  mono(): number;
  /** Milliseconds since the Unix epoch, as the system says now. */
  wall(): number;
}

export const systemClock: Clock = {
  mono: () => performance.now(),
  wall: () => Date.now(),
};

/** One reading of both clocks, taken together so rules compare like with like. */
export interface Now {
  readonly mono: number;
  readonly wall: number;
}

export function readClocks(c: Clock): Now {
  return { mono: c.mono(), wall: c.wall() };
}

/** How far the wall clock may move against the monotonic one between two readings before it counts as a step. */
export const STEP_THRESHOLD_MS = 2_000;

/**
 * Notices the wall clock being stepped (NTP's first sync on a board that booted
 * at 1970, an operator's `date -s`): the offset between the two clocks stays put
 * but for slewing (at most 0.5 ms/s), so a change past STEP_THRESHOLD_MS between
 * two readings is a step. Returns its size (ms, + forward) once, or undefined.
 */
export class StepDetector {
  #offset: number | undefined;

  check(now: Now): number | undefined {
    const offset = now.wall - now.mono;
    const last = this.#offset;
    this.#offset = offset;
    if (last === undefined || Math.abs(offset - last) <= STEP_THRESHOLD_MS) return undefined;
    return Math.round(offset - last);
  }
}
