import { quote } from "../config/quote.js";
import type { FleetCommand } from "./command.js";
import { FleetRefusal } from "./refusal.js";

/**
 * Where the jti of every carried-out command is remembered until it expires, so a
 * captured command cannot be sent again. The daemon's store keeps them sealed in
 * the cache (they survive a restart); MemoryJtiStore is for tests and tools.
 * `expMs` and `nowMs` are wall-clock milliseconds (a command's `exp` is a
 * wall-clock claim).
 */
export interface JtiStore {
  has(jti: string): boolean;
  remember(jti: string, expMs: number): void;
  size(): number;
  /** Forgets every jti whose exp is at or before nowMs. */
  prune(nowMs: number): void;
}

/** How many unexpired commands are remembered at most; past it, commands are refused (`replay_store_full`). */
export const MAX_LIVE_JTIS = 10_000;

export class MemoryJtiStore implements JtiStore {
  readonly #exp = new Map<string, number>();

  has(jti: string): boolean {
    return this.#exp.has(jti);
  }

  remember(jti: string, expMs: number): void {
    this.#exp.set(jti, expMs);
  }

  size(): number {
    return this.#exp.size;
  }

  prune(nowMs: number): void {
    for (const [jti, exp] of this.#exp) if (exp <= nowMs) this.#exp.delete(jti);
  }
}

/**
 * The replay rules over a JtiStore: a jti already carried out is refused; a new
 * one is remembered until its exp, up to `max` live ones. Past that the command
 * is refused rather than carried out unremembered (which would make it
 * replayable), and the message says how to get out: wait for commands to
 * expire, or sign with shorter lifetimes.
 */
export class ReplayGuard {
  readonly #store: JtiStore;
  readonly #max: number;

  constructor(opts: { store: JtiStore; max?: number }) {
    this.#store = opts.store;
    this.#max = opts.max ?? MAX_LIVE_JTIS;
  }

  /** Throws `replayed` or `replay_store_full`; otherwise the command may be carried out. */
  check(cmd: FleetCommand, nowWallMs: number): void {
    if (this.#store.has(cmd.jti))
      throw new FleetRefusal("replayed", `jti ${quote(cmd.jti)} was already carried out; every command is carried out once (sign a new one)`);
    if (this.#store.size() >= this.#max) {
      this.#store.prune(nowWallMs);
      if (this.#store.size() >= this.#max) {
        throw new FleetRefusal(
          "replay_store_full",
          `${this.#max} commands are still live (remembered until they expire), the most this gateway keeps; none is accepted until some expire: ` +
            `sign commands with a shorter --ttl`,
        );
      }
    }
  }

  /** Remembers a command that was carried out. */
  remember(cmd: FleetCommand, nowWallMs: number): void {
    this.#store.prune(nowWallMs);
    this.#store.remember(cmd.jti, cmd.exp * 1000);
  }
}
