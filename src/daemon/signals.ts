import type { Logger } from "../log.js";

const STOP_SIGNALS = ["SIGTERM", "SIGINT"] as const;

/**
 * The daemon's stop signals, caught from the first line of `sealcache daemon` on:
 * a SIGTERM that arrives while the config loads or the key unseals must not kill
 * the process with the default action halfway through opening the cache, and a
 * second Ctrl-C (a terminal sends SIGINT to the whole process group: to `npm run
 * demo` *and* the daemon) must not kill it halfway through closing it. The first
 * signal asks for a stop; every later one is logged and ignored, and the stop
 * itself is bounded by `deadlineMs` (see forceExitAfter).
 */
export class StopSignals {
  #first: NodeJS.Signals | undefined;
  #log: Logger | undefined;
  #wake: ((sig: NodeJS.Signals) => void) | undefined;
  readonly #onSignal = (sig: NodeJS.Signals): void => {
    if (this.#first !== undefined) {
      this.#log?.info({ signal: sig }, "signal received while stopping; ignored (the stop in progress finishes)");
      return;
    }
    this.#first = sig;
    this.#wake?.(sig);
  };
  readonly #onHup = (): void => {
    this.#log?.warn("SIGHUP: configuration reload is not supported; restart the service to apply changes");
  };

  constructor() {
    for (const s of STOP_SIGNALS) process.on(s, this.#onSignal);
    process.on("SIGHUP", this.#onHup);
  }

  /** The logger, once the config has said at which level to log. */
  attach(logger: Logger): void {
    this.#log = logger;
  }

  /** The first stop signal, as soon as it arrives (at once if it already has). */
  next(): Promise<NodeJS.Signals> {
    if (this.#first !== undefined) return Promise.resolve(this.#first);
    return new Promise((resolve) => (this.#wake = resolve));
  }

  /** Whether a stop was asked for already (before the daemon finished starting). */
  get requested(): boolean {
    return this.#first !== undefined;
  }
}

/**
 * Exits with status 1 if a stop has not finished after `ms`: a part that hangs on
 * close (a backend that never answers, a TPM that does not respond) must not keep a
 * gateway's service in "deactivating" until systemd's SIGKILL. Exiting mid-stop is
 * still consistent: every write is a committed SQLite transaction (WAL) or an
 * atomic rename. The timer is unref'd: a prompt stop exits without waiting for it.
 */
export function forceExitAfter(ms: number, logger: Logger): void {
  setTimeout(() => {
    logger.error({ after_ms: ms }, "stop did not finish in time; exiting (the cache on disk is consistent)");
    process.exit(1);
  }, ms).unref();
}
