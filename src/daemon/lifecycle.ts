import { describeError } from "../errors.js";
import type { Logger } from "../log.js";

/**
 * A long-lived part of the daemon: constructed doing nothing, started in order,
 * stopped in reverse (the socket server, the cache, the providers, the sync
 * engine, the fleet channel).
 */
export interface Part {
  readonly name: string;
  start(): Promise<void> | void;
  stop(): Promise<void> | void;
}

/**
 * Starts parts in order and stops the started ones in reverse, logging each
 * failure by the part's name. A part that fails to start is not stopped (it
 * cleaned up after itself); one that fails to stop does not keep the rest from
 * stopping.
 */
export class Parts {
  readonly #log: Logger;
  readonly #started: Part[] = [];

  constructor(logger: Logger) {
    this.#log = logger;
  }

  async start(p: Part): Promise<void> {
    try {
      await p.start();
    } catch (e) {
      this.#log.error({ part: p.name, err: describeError(e) }, "part failed to start");
      throw e;
    }
    this.#started.push(p);
    this.#log.debug({ part: p.name }, "part started");
  }

  /** Stops every started part, last first; resolves false if any failed to stop. */
  async stopAll(): Promise<boolean> {
    let clean = true;
    for (let p = this.#started.pop(); p; p = this.#started.pop()) {
      try {
        await p.stop();
        this.#log.debug({ part: p.name }, "part stopped");
      } catch (e) {
        clean = false;
        this.#log.error({ part: p.name, err: describeError(e) }, "part did not stop cleanly");
      }
    }
    return clean;
  }
}
