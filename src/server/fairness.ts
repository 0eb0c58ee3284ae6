/**
 * Fair turns between uids on the event loop. The rate limiter bounds how much a uid
 * may ask for per second, not how much of it arrives at once: a connection's 64
 * pipelined requests, or the next requests of ten connections whose refusals were
 * all answered by the same timer, reach the server in one read and were handled
 * back to back — up to 40 ms in one stretch, during which another account's lookup
 * waited (measured with bench/contention.ts). Here each uid has one request handled
 * per turn of the event loop; what else it has ready waits, in arrival order, for
 * the following turns, and between two of them the loop reads everyone else's
 * sockets. A uid that sends one request at a time never waits.
 */
export class FairTurns {
  /** The uids that have had their turn in this loop iteration, with the work they have waiting. */
  readonly #ran = new Map<number, (() => void)[]>();
  readonly #onError: (e: unknown) => void;
  #scheduled = false;

  constructor(o: { onError: (e: unknown) => void }) {
    this.#onError = o.onError;
  }

  /** Runs `work` for `key` now if `key` has not had its turn in this loop iteration, else in a later one. */
  run(key: number, work: () => void): void {
    const waiting = this.#ran.get(key);
    if (waiting) {
      waiting.push(work);
      return;
    }
    this.#ran.set(key, []);
    this.#schedule();
    work();
  }

  /** Work waiting for later turns, over all uids (for tests and metrics). */
  get backlog(): number {
    let n = 0;
    for (const w of this.#ran.values()) n += w.length;
    return n;
  }

  #schedule(): void {
    if (this.#scheduled) return;
    this.#scheduled = true;
    // setImmediate runs after the loop has polled for I/O: whatever other sockets
    // had ready in this iteration has been read before the next turn begins.
    setImmediate(this.#turn);
  }

  /** A new turn: every uid with work waiting runs the next piece; the others are free to run at once again. */
  readonly #turn = (): void => {
    this.#scheduled = false;
    // Snapshot: work run below may add uids, which have then had this turn.
    const keys = [...this.#ran.keys()];
    for (const key of keys) {
      const waiting = this.#ran.get(key)!;
      const next = waiting.shift();
      if (next === undefined) {
        this.#ran.delete(key);
        continue;
      }
      this.#schedule();
      try {
        next();
      } catch (e) {
        this.#onError(e);
      }
    }
  };
}
