import type { Socket } from "node:net";

export interface DeadlineOptions {
  /** The header block of a connection's first request must be in within this of connecting. */
  readonly headersMs: number;
  /** A request must be in whole (headers and body) within this of its headers. */
  readonly requestMs: number;
  /** After an answer, the next request's headers must be in within this (the keep-alive idle allowance plus headersMs). */
  readonly nextMs: number;
  /**
   * Called for a connection whose client took too long, with its unanswered
   * requests (the slow one among them when its headers are in); the server
   * answers 408 and closes it.
   */
  readonly onExpired: (socket: Socket, inFlight: number) => void;
  readonly now?: () => number;
  readonly setTimer?: (fn: () => void, ms: number) => unknown;
  readonly clearTimer?: (t: unknown) => void;
}

interface State {
  /** When the client must have sent what is awaited (monotonic ms); 0: nothing awaited from it. */
  deadline: number;
  /** Requests whose answer is not finished yet (pipelined ones included). */
  inFlight: number;
}

/**
 * How long a client may take to send its request, enforced per connection in
 * place of node:http's own check: that one is an interval started at listen()
 * that fires every second for the server's whole life, connections or not, and
 * was an idle gateway's only wakeup. Here a connection holds a deadline only
 * while the daemon waits on its client, and one timer is armed for the earliest
 * (at a second's granularity, so a busy server re-arms it rarely); with nothing
 * awaited — no connection, or only connections waiting on their answer (a watch)
 * — no timer runs at all. A request costs two number assignments.
 */
export class RequestDeadlines {
  readonly #o: DeadlineOptions;
  readonly #now: () => number;
  readonly #conns = new Map<Socket, State>();
  #timer: unknown;
  /** When the armed timer fires; 0 when none is armed. */
  #at = 0;

  constructor(o: DeadlineOptions) {
    this.#o = o;
    this.#now = o.now ?? (() => performance.now());
  }

  /** Whether a timer is armed (for the tests: none while nothing is awaited). */
  get armed(): boolean {
    return this.#at !== 0;
  }

  connected(socket: Socket): void {
    const st: State = { deadline: 0, inFlight: 0 };
    this.#conns.set(socket, st);
    this.#await(st, this.#o.headersMs);
  }

  /** A request's headers are in: the rest of it must follow within requestMs. */
  request(socket: Socket): void {
    const st = this.#conns.get(socket);
    if (!st) return;
    st.inFlight++;
    this.#await(st, this.#o.requestMs);
  }

  /** A request is in whole: nothing is awaited from the client until it is answered. */
  received(socket: Socket): void {
    const st = this.#conns.get(socket);
    if (st) st.deadline = 0;
  }

  /** A request's answer is finished (or abandoned); with none left, the next request is awaited. */
  answered(socket: Socket): void {
    const st = this.#conns.get(socket);
    if (!st) return;
    st.inFlight = Math.max(0, st.inFlight - 1);
    if (st.inFlight === 0 && !socket.destroyed) this.#await(st, this.#o.nextMs);
  }

  closed(socket: Socket): void {
    this.#conns.delete(socket);
    if (this.#conns.size === 0) this.#disarm();
  }

  /** Stops the timer (the server is closing). */
  close(): void {
    this.#conns.clear();
    this.#disarm();
  }

  #await(st: State, ms: number): void {
    st.deadline = this.#now() + ms;
    // An armed timer firing before this deadline (or within a second after it) covers it.
    if (this.#at === 0 || this.#at > st.deadline + 1_000) this.#arm(st.deadline);
  }

  #arm(deadline: number): void {
    this.#disarm();
    const ms = Math.max(0, Math.ceil(deadline - this.#now()));
    this.#at = deadline;
    const t = (this.#o.setTimer ?? setTimeout)(() => this.#fire(), ms);
    (t as { unref?: () => void }).unref?.();
    this.#timer = t;
  }

  #disarm(): void {
    if (this.#at === 0) return;
    (this.#o.clearTimer ?? ((x: unknown) => clearTimeout(x as NodeJS.Timeout)))(this.#timer);
    this.#timer = undefined;
    this.#at = 0;
  }

  #fire(): void {
    this.#at = 0;
    this.#timer = undefined;
    const now = this.#now();
    let next = 0;
    for (const [socket, st] of this.#conns) {
      if (st.deadline === 0) continue;
      if (st.deadline <= now) {
        st.deadline = 0;
        this.#o.onExpired(socket, st.inFlight);
      } else if (next === 0 || st.deadline < next) {
        next = st.deadline;
      }
    }
    if (next !== 0 && this.#at === 0) this.#arm(next);
  }
}
