import { clip } from "../config/quote.js";
import { describeError, isSealcacheError } from "../errors.js";
import type { FleetCommand } from "../fleet/command.js";
import { ReplayGuard, type JtiStore } from "../fleet/jti-store.js";
import { TokenBucket } from "../fleet/rate.js";
import { FleetRefusal, isFleetRefusal } from "../fleet/refusal.js";
import type { TrustKeys } from "../fleet/trust.js";
import { peekClaims, verifyCommand } from "../fleet/verify.js";
import type { Logger } from "../log.js";
import type { Clock } from "../sync/clock.js";
import type { FleetAuditEntry, FleetCore, FleetPrincipal } from "./core.js";

/** What is published on `{prefix}/{device}/result` for every command, done or refused. */
export interface CommandResult {
  /** The command's jti: verified, or as the refused message claimed it (clipped); null when it had none. */
  readonly jti: string | null;
  readonly ok: boolean;
  readonly code: string;
  readonly message: string;
}

/**
 * Intake limits. Commands are rare (an operator's revoke, a rotation pushed
 * now): 20 at once and 5 a second are far above any real use, and far below
 * what would keep the daemon from serving its socket. Messages past the rate
 * are answered `rate_limited` (themselves bounded: past 1,000 answers in a burst,
 * 100 a second, excess messages are dropped unanswered and counted in the log).
 */
export const INTAKE_RATE = { perSecond: 5, burst: 20 } as const;
export const ANSWER_RATE = { perSecond: 100, burst: 1_000 } as const;
/** Admitted commands waiting to be carried out, at most (one runs at a time). */
export const MAX_QUEUED = 64;

export interface IntakeOptions {
  readonly deviceId: string;
  readonly trust: TrustKeys;
  readonly maxLifetimeMs: number;
  readonly core: FleetCore;
  readonly jtis: JtiStore;
  readonly clock: Clock;
  readonly logger: Logger;
  readonly secretNames: boolean;
  readonly rate?: { readonly perSecond: number; readonly burst: number };
  publishResult(result: CommandResult): void;
}

interface Queued {
  readonly topic: string;
  readonly payload: Uint8Array;
}

/**
 * The one request chain for inbound commands (CONVENTIONS #7): admit (rate,
 * queue bound), identify (signature, kid), bounds (claims, names), replay, route
 * (refresh / revoke to the core), with one place that turns an outcome into a
 * result message and an audit entry. Commands are carried out one at a time, in
 * arrival order. receive() never throws and never waits.
 *
 * A jti is remembered once its command has been carried out, not before: a
 * command the core could not carry out (sealed, a backend down) may be sent
 * again as it is. A duplicate delivery (QoS 1 may deliver twice, and a command
 * may be sent to both the device and the fleet topic) is refused as `replayed`.
 */
export class CommandIntake {
  readonly #o: IntakeOptions;
  readonly #bucket: TokenBucket;
  readonly #answers = new TokenBucket(ANSWER_RATE);
  readonly #replay: ReplayGuard;
  readonly #queue: Queued[] = [];
  #running: Promise<void> | undefined;
  #dropped = 0;
  #droppedLoggedAt = -Infinity;
  /** Rate-limited messages: answered and audited each, but logged as a count every 10 s (a flood must not flood the journal). */
  #limited = 0;
  #limitedLoggedAt = -Infinity;

  constructor(opts: IntakeOptions) {
    this.#o = opts;
    this.#bucket = new TokenBucket(opts.rate ?? INTAKE_RATE);
    this.#replay = new ReplayGuard({ store: opts.jtis });
  }

  receive(topic: string, payload: Uint8Array): void {
    const now = this.#o.clock.mono();
    if (!this.#bucket.take(now) || this.#queue.length >= MAX_QUEUED) {
      if (!this.#answers.take(now)) return this.#drop(now);
      const wait = Math.max(1, Math.ceil(this.#bucket.wait(now) / 1000));
      this.#limited++;
      return this.#refused(
        topic,
        payload,
        new FleetRefusal(
          "rate_limited",
          `more commands arrived than this gateway takes (${this.#rateText()}); this one was not read: send it again in ${wait} s or later`,
        ),
      );
    }
    this.#queue.push({ topic, payload });
    this.#running ??= this.#drain().finally(() => (this.#running = undefined));
  }

  /** Resolves once every admitted command has been carried out or refused. */
  async idle(): Promise<void> {
    while (this.#running) await this.#running;
  }

  async #drain(): Promise<void> {
    for (let next = this.#queue.shift(); next; next = this.#queue.shift()) {
      try {
        await this.#handle(next);
      } catch (e) {
        // #handle answers every outcome itself; this is a bug's last line of defence.
        this.#o.logger.error({ err: describeError(e) }, "fleet command: unexpected failure");
      }
    }
  }

  async #handle({ topic, payload }: Queued): Promise<void> {
    let cmd: FleetCommand;
    try {
      cmd = await verifyCommand(
        payload,
        { deviceId: this.#o.deviceId, keys: this.#o.trust.keys, keyProblems: this.#o.trust.problems, maxLifetimeMs: this.#o.maxLifetimeMs },
        this.#o.clock.wall(),
      );
    } catch (e) {
      if (!isFleetRefusal(e)) throw e;
      return this.#refused(topic, payload, e);
    }
    const principal: FleetPrincipal = { kind: "fleet", issuer: cmd.kid, jti: cmd.jti };
    // Before the replay check: the replay memory is in the cache, unknown until it is open.
    await this.#o.core.ready?.();
    try {
      this.#replay.check(cmd, this.#o.clock.wall());
    } catch (e) {
      if (!isFleetRefusal(e)) throw e;
      return this.#refused(topic, payload, e, principal, cmd);
    }
    let outcome: { code: string; message: string; ok: boolean };
    try {
      if (cmd.cmd === "refresh") {
        const r = await this.#o.core.refresh(principal, cmd.target);
        outcome = { ok: true, code: "ok", message: `a sync of ${count(r.queued.length)} is queued${this.#names(r.queued)}` };
      } else {
        const r = await this.#o.core.revoke(principal, cmd.target);
        outcome = { ok: true, code: "ok", message: `revoked ${count(r.revoked.length)}${this.#names(r.revoked)}` };
      }
    } catch (e) {
      const code = isSealcacheError(e) ? e.code : "internal";
      outcome = { ok: false, code, message: `${cmd.cmd} failed: ${clip(describeError(e)).slice(0, 200)}` };
      if (code === "internal") this.#o.logger.error({ err: describeError(e), jti: cmd.jti, cmd: cmd.cmd }, "fleet command failed");
    }
    if (outcome.ok) {
      try {
        this.#replay.remember(cmd, this.#o.clock.wall());
      } catch (e) {
        // Carried out, but not remembered: it could be carried out again if resent (refresh and revoke are idempotent).
        this.#o.logger.error({ err: describeError(e), jti: cmd.jti }, "fleet command: its jti could not be remembered");
      }
    }
    this.#o.logger.info(
      {
        jti: cmd.jti,
        kid: cmd.kid,
        cmd: cmd.cmd,
        all: "all" in cmd.target,
        names: "names" in cmd.target ? cmd.target.names.length : undefined,
        ok: outcome.ok,
        code: outcome.code,
      },
      "fleet command",
    );
    this.#answer({ principal, cmd: cmd.cmd, target: cmd.target, topic, ...outcome }, cmd.jti);
  }

  #refused(topic: string, payload: Uint8Array, e: FleetRefusal, principal: FleetPrincipal | null = null, cmd?: FleetCommand): void {
    const claimed = principal ? {} : peekClaims(payload);
    if (e.code === "rate_limited") this.#logLimited();
    else
      this.#o.logger.warn(
        { code: e.code, topic, kid: principal?.issuer ?? claimed.kid, jti: principal?.jti ?? claimed.jti, bytes: payload.length },
        `fleet command refused: ${e.message}`,
      );
    const entry: FleetAuditEntry = {
      principal,
      ...(principal ? {} : { claimed }),
      cmd: cmd?.cmd ?? null,
      target: cmd?.target ?? null,
      topic,
      ok: false,
      code: e.code,
      message: e.message,
    };
    this.#answer(entry, principal?.jti ?? claimed.jti ?? null);
  }

  #answer(entry: FleetAuditEntry, jti: string | null): void {
    try {
      this.#o.core.audit(entry);
    } catch (e) {
      this.#o.logger.error({ err: describeError(e) }, "fleet command: the audit entry could not be written");
    }
    try {
      this.#o.publishResult({ jti, ok: entry.ok, code: entry.code, message: entry.message });
    } catch (e) {
      this.#o.logger.warn({ err: describeError(e) }, "fleet command: the result could not be published");
    }
  }

  #logLimited(): void {
    const now = this.#o.clock.mono();
    if (now - this.#limitedLoggedAt < 10_000) return;
    this.#limitedLoggedAt = now;
    this.#o.logger.warn(
      { rate_limited: this.#limited, limit: this.#rateText() },
      "fleet commands arrive faster than the intake admits: each excess one is answered rate_limited (count since start)",
    );
  }

  #drop(now: number): void {
    this.#dropped++;
    if (now - this.#droppedLoggedAt < 10_000) return;
    this.#droppedLoggedAt = now;
    this.#o.logger.warn(
      { dropped: this.#dropped },
      "fleet commands arrive faster than they can be answered: excess ones are dropped unanswered and unaudited (count since start)",
    );
  }

  #names(names: readonly string[]): string {
    if (!this.#o.secretNames || names.length === 0) return "";
    const shown = names.slice(0, 10).map(clip).join(", ");
    return `: ${shown}${names.length > 10 ? ` and ${names.length - 10} more` : ""}`;
  }

  #rateText(): string {
    const r = this.#o.rate ?? INTAKE_RATE;
    return `${r.burst} at once or ${r.perSecond} a second`;
  }
}

function count(n: number): string {
  return n === 1 ? "1 secret" : `${n} secrets`;
}
