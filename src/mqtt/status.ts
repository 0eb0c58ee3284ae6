import type { Logger } from "../log.js";
import { describeError } from "../errors.js";
import type { Clock } from "../sync/clock.js";
import type { FleetCore } from "./core.js";

/** At most one status publish per this long (README "Fleet channel": at most every 5 s). */
export const STATUS_MIN_INTERVAL_MS = 5_000;

export interface StatusOptions {
  readonly core: FleetCore;
  readonly clock: Clock;
  readonly logger: Logger;
  /** `metrics.secret_names`: whether the status may carry names. */
  readonly secretNames: boolean;
  readonly minIntervalMs?: number;
  /** Publishes the retained status; called only while connected. */
  publish(payload: string): void;
}

/** The will's payload: the broker publishes it, retained, when the gateway drops off. */
export const OFFLINE_STATUS = JSON.stringify({ online: false });

/**
 * The retained status on `{prefix}/{device}/status`: published at every connect,
 * and on a change at most every minIntervalMs (a burst of changes, such as a sync
 * of 1,000 secrets, is one publish at the end of the interval, carrying the
 * latest state). A change that leaves the payload as it was is not published.
 */
export class StatusPublisher {
  readonly #o: StatusOptions;
  readonly #min: number;
  #connected = false;
  #lastAt: number | undefined;
  #last: string | undefined;
  #timer: NodeJS.Timeout | undefined;

  constructor(opts: StatusOptions) {
    this.#o = opts;
    this.#min = opts.minIntervalMs ?? STATUS_MIN_INTERVAL_MS;
  }

  /** A connection is up: publish now, whatever was published before (the broker may have lost it). */
  connected(): void {
    this.#connected = true;
    this.#clear();
    this.#publish(true);
  }

  disconnected(): void {
    this.#connected = false;
    this.#clear();
  }

  /** status() may have changed. */
  changed(): void {
    if (!this.#connected || this.#timer) return;
    const since = this.#lastAt === undefined ? Infinity : this.#o.clock.mono() - this.#lastAt;
    if (since >= this.#min) return this.#publish(false);
    this.#timer = setTimeout(() => {
      this.#timer = undefined;
      if (this.#connected) this.#publish(false);
    }, this.#min - since);
    this.#timer.unref();
  }

  /** The status as published now (`online: false` for a clean stop: the same shape as when up). */
  payload(online: boolean): string {
    return this.#stamp(this.#body(online));
  }

  /** The status without its time, as JSON: what is compared to tell a change. */
  #body(online: boolean): string {
    const s = this.#o.core.status();
    const body: Record<string, unknown> = {
      online,
      sealed: s.sealed,
      secrets: s.secrets,
      stale: s.stale,
      providers: s.providers,
      revision: s.revision,
      version: s.version,
    };
    if (this.#o.secretNames && s.names) body.names = s.names;
    return JSON.stringify(body);
  }

  #stamp(body: string): string {
    return `${body.slice(0, -1)},"at":${JSON.stringify(new Date(this.#o.clock.wall()).toISOString())}}`;
  }

  #publish(force: boolean): void {
    let body: string;
    try {
      body = this.#body(true);
    } catch (e) {
      this.#o.logger.warn({ err: describeError(e) }, "status: the core could not say its status; not published");
      return;
    }
    if (body === this.#last && !force) return;
    this.#last = body;
    this.#lastAt = this.#o.clock.mono();
    this.#o.publish(this.#stamp(body));
  }

  #clear(): void {
    if (this.#timer) clearTimeout(this.#timer);
    this.#timer = undefined;
  }
}
