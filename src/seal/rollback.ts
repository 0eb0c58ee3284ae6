// Longer than 300 lines on purpose: the anti-rollback counter whole — the verdict
// (ok, one ahead after a crash, rolled back), defining, reading, bumping and
// advancing the NV index, and the TPM's refusals each turned into a specific error —
// in one place, so no case is handled twice or not at all.
import { SealError } from "../errors.js";
import type { Logger } from "../log.js";
import {
  hex32,
  isSealcacheCounter,
  isTpmError,
  isTpmRc,
  NV_OWNER_FIRST,
  NV_OWNER_LAST,
  nvPublicText,
  Tpm,
  TPM_RC,
  COUNTER_ATTRIBUTES,
  nvAttributesText,
  type NvPublic,
  type TpmObject,
} from "../../native/tpm2/index.js";
import { sealErrorFromTpm } from "./tpm2-errors.js";

/**
 * The anti-rollback counter (seal types tpm2 and tpm2+host): a monotonic TPM NV
 * counter that `rotate-kek` and `revoke` increment and whose value the cache
 * records under the KEK. A database that records less than the TPM holds is an
 * older copy (restored to bring back a revoked secret or a rotated-out key) and
 * is refused at start.
 *
 * Protocol (the store keeps `recorded` authenticated under the KEK):
 * - At start, after unsealing the KEK and before serving:
 *   `{ value, created } = await counter.ensure()`. If `created` while the
 *   database records a value, refuse (`rolledBackError({ created: true, … })`):
 *   the counter was removed or the TPM cleared. Otherwise, by
 *   `checkRollback(recorded, value)`: `ok` → go on; `advance` → record `value`
 *   when nothing was recorded, else `advanceTo(recorded)` and record its result
 *   when it differs; `rolled_back` → refuse with `rolledBackError`.
 * - `rotate-kek` and `revoke`: `v = await counter.read()`; record `v + 1` in the
 *   same transaction as the change; commit; then `w = await counter.bump()`, and
 *   record `w` if it is not `v + 1` (something else incremented the counter).
 *   The database is written first so that a crash in between leaves it one
 *   ahead of the TPM, which the next start repairs (`advance`), never behind,
 *   which would be refused. Until the bump, the copy from before the change is
 *   still accepted.
 *
 * Where the counter lives and why its attributes are what they are:
 * native/tpm2/nv.ts (COUNTER_ATTRIBUTES). Increments take owner authorization,
 * which sealcache expects to be empty, as on most gateways: any process that can
 * use the TPM can then increment the counter too, which makes the cache refuse
 * to start (a denial of service, like TPM2_Clear with an empty lockout
 * authorization), never accept an old copy. Removing the counter does not reset
 * it: a counter defined again starts above every value any counter had.
 */

/** `seal.counter_index` default: owner NV range (0x01000000–0x013fffff), "SC" in the low bytes, away from the low indexes tools hand out first. */
export const DEFAULT_COUNTER_INDEX = 0x01005343;

/** advanceTo() refuses to increment more than this many times in one go. */
export const DEFAULT_MAX_ADVANCE = 256;

/** Seal types whose KEK lives in a TPM, and so have an anti-rollback counter. */
export function usesRollbackCounter(sealType: string): boolean {
  return sealType === "tpm2" || sealType === "tpm2+host";
}

export type RollbackVerdict = "ok" | "advance" | "rolled_back";

/**
 * What to do at start, given the value the database records (`recorded`,
 * undefined when it records none) and the TPM counter's value:
 * - `ok`: they match.
 * - `advance`: nothing recorded yet (record `tpmValue`), or the database is ahead
 *   (a crash after the database recorded the next value, before the TPM was
 *   incremented): increment the TPM up to `recorded` with advanceTo().
 * - `rolled_back`: the database is older than the counter: refuse to start
 *   (rolledBackError()).
 *
 * "Nothing recorded" is trusted as a first run; the caller decides whether it is
 * one (an empty database, or one from before this feature), see rollback.md.
 */
export function checkRollback(recorded: number | undefined, tpmValue: number): RollbackVerdict {
  checkValue(tpmValue, "the TPM counter value");
  if (recorded === undefined) return "advance";
  checkValue(recorded, "the recorded counter value");
  if (recorded === tpmValue) return "ok";
  return recorded > tpmValue ? "advance" : "rolled_back";
}

export interface RolledBackDetails {
  readonly index: number;
  /** The value the database records. */
  readonly recorded: number;
  /** The TPM counter's value. */
  readonly tpm: number;
  /** data_dir, to name the files in the advice. */
  readonly dataDir?: string;
  /** The counter did not exist and was defined at this start (ensure().created). */
  readonly created?: boolean;
}

/** The refusal for a database older than the TPM counter: both values, and what to do. */
export function rolledBackMessage(d: RolledBackDetails): string {
  const db = d.dataDir ? `${d.dataDir.replace(/\/+$/u, "")}/cache.db` : "cache.db";
  const what = d.created
    ? `the cache records anti-rollback value ${d.recorded}, but the TPM counter it was checked against (NV index ${hex32(d.index)}) was missing ` +
      `and has been defined again, at ${d.tpm}: the TPM was cleared, or the index was removed (tpm2_nvundefine). A new counter starts above every ` +
      `earlier one, so no database can match it; this is also what removing the counter to get an old copy of the cache accepted looks like`
    : `the cache is older than this device's TPM anti-rollback counter: ${db} records value ${d.recorded}, the counter (NV index ` +
      `${hex32(d.index)}) is at ${d.tpm}. An older copy of the database was restored — the way a revoked secret or a rotated-out key is brought ` +
      `back — or something else incremented the counter (any program with the TPM's owner authorization can)`;
  return (
    `refusing to open the cache: ${what}. ` +
    `To go on: restore the newest copy of ${db} (it records ${d.tpm} or more), or move ${db} and its -wal and -shm files aside to start with an ` +
    `empty cache that sync fills again from the backends (secrets imported with sealcache import must be imported again). ` +
    `If nobody restored a copy, treat the device as tampered with.`
  );
}

export function rolledBackError(d: RolledBackDetails): SealError {
  return new SealError(rolledBackMessage(d));
}

export interface RollbackInfo {
  readonly ok: boolean;
  readonly detail: string;
  /** The counter's value, when it could be read. */
  readonly value?: number;
}

export interface RollbackCounter {
  readonly index: number;
  /** The counter's value, defining the index first (and incrementing it once) when it does not exist. `created` says it had to. */
  ensure(): Promise<{ value: number; created: boolean }>;
  /** The counter's value; SealError when the index does not exist or is not a sealcache counter. */
  read(): Promise<number>;
  /** Increments the counter (defining it when missing) and resolves with its new value. */
  bump(): Promise<number>;
  /** Increments the counter until it reaches `target` (at most `maxAdvance` steps); resolves with its value, which can end above `target` (record it then). */
  advanceTo(target: number): Promise<number>;
  /** For status and doctor; never defines or increments anything. */
  describe(): Promise<RollbackInfo>;
  /** Waits for the operation in progress; nothing is held open between operations. */
  close(): Promise<void>;
}

export interface RollbackCounterOptions {
  readonly tcti: string;
  /** `seal.counter_index`, in the owner NV range 0x01000000–0x013fffff. */
  readonly index: number;
  readonly logger: Logger;
  readonly maxAdvance?: number;
}

/**
 * The anti-rollback counter at `index` on the TPM reached through `tcti`. Nothing
 * happens until a method is called; each call opens its own TPM connection and
 * closes it after, like the sealer, so the daemon holds no TPM resources.
 */
export function openRollbackCounter(opts: RollbackCounterOptions): RollbackCounter {
  checkIndex(opts.index);
  return new TpmRollbackCounter(opts);
}

class TpmRollbackCounter implements RollbackCounter {
  readonly index: number;
  readonly #tcti: string;
  readonly #log: Logger;
  readonly #maxAdvance: number;
  #queue: Promise<unknown> = Promise.resolve();

  constructor(opts: RollbackCounterOptions) {
    this.index = opts.index;
    this.#tcti = opts.tcti;
    this.#log = opts.logger;
    this.#maxAdvance = opts.maxAdvance ?? DEFAULT_MAX_ADVANCE;
  }

  ensure(): Promise<{ value: number; created: boolean }> {
    return this.#run("opening the anti-rollback counter", async (tpm, srk) => {
      const pub = await tpm.nvReadPublic(this.index);
      if (pub === undefined) return { value: await this.#define(tpm, srk), created: true };
      this.#checkPublic(pub);
      if (!pub.written) {
        // Defined by an earlier start that stopped before the first increment.
        const value = toNumber(await tpm.nvIncrement(this.index, { salt: srk }), this.index);
        this.#log.info({ index: hex32(this.index), value }, "anti-rollback counter incremented for the first time");
        return { value, created: true };
      }
      return { value: toNumber(await readCounter(tpm, this.index, srk), this.index), created: false };
    });
  }

  read(): Promise<number> {
    return this.#run("reading the anti-rollback counter", async (tpm, srk) => {
      const pub = await tpm.nvReadPublic(this.index);
      if (pub === undefined) throw this.#missing();
      this.#checkPublic(pub);
      if (!pub.written)
        throw new SealError(
          `the anti-rollback counter (TPM NV index ${hex32(this.index)}) is defined but was never incremented; the daemon increments it at start`,
        );
      return toNumber(await readCounter(tpm, this.index, srk), this.index);
    });
  }

  bump(): Promise<number> {
    return this.#run("incrementing the anti-rollback counter", async (tpm, srk) => {
      const pub = await tpm.nvReadPublic(this.index);
      if (pub === undefined) return this.#define(tpm, srk);
      this.#checkPublic(pub);
      const value = toNumber(await tpm.nvIncrement(this.index, { salt: srk }), this.index);
      this.#log.info({ index: hex32(this.index), value }, "anti-rollback counter incremented");
      return value;
    });
  }

  advanceTo(target: number): Promise<number> {
    checkValue(target, "the target counter value");
    return this.#run("advancing the anti-rollback counter", async (tpm, srk) => {
      const pub = await tpm.nvReadPublic(this.index);
      if (pub === undefined) throw this.#missing();
      this.#checkPublic(pub);
      let value = pub.written ? toNumber(await readCounter(tpm, this.index, srk), this.index) : 0;
      if (value >= target) return value;
      const steps = target - value;
      if (steps > this.#maxAdvance) {
        throw new SealError(
          `the cache records anti-rollback value ${target} but the TPM counter (NV index ${hex32(this.index)}) is at ${value}: ${steps} increments ` +
            `behind, more than the ${this.#maxAdvance} sealcache makes in one go (after a crash it is one). ` +
            `Was seal.counter_index changed, or the cache copied from another device? Set seal.counter_index back to the index this cache was made ` +
            `with, or move cache.db aside to start with an empty cache`,
        );
      }
      this.#log.warn(
        { index: hex32(this.index), from: value, to: target },
        "the cache is ahead of the TPM anti-rollback counter (an interrupted rotate-kek or revoke); advancing the counter",
      );
      while (value < target) value = toNumber(await tpm.nvIncrement(this.index, { salt: srk }), this.index);
      return value;
    });
  }

  async describe(): Promise<RollbackInfo> {
    try {
      return await this.#run("inspecting the anti-rollback counter", async (tpm, srk) => {
        const pub = await tpm.nvReadPublic(this.index);
        if (pub === undefined)
          return { ok: true, detail: `anti-rollback counter: TPM NV index ${hex32(this.index)} is not defined yet; the daemon defines it at start` };
        this.#checkPublic(pub);
        if (!pub.written)
          return {
            ok: true,
            detail: `anti-rollback counter: TPM NV index ${hex32(this.index)} is defined, not yet incremented; the daemon increments it at start`,
          };
        const value = toNumber(await readCounter(tpm, this.index, srk), this.index);
        return { ok: true, value, detail: `anti-rollback counter: TPM NV index ${hex32(this.index)} is at ${value}` };
      });
    } catch (e) {
      return { ok: false, detail: (e as Error).message };
    }
  }

  async close(): Promise<void> {
    await this.#queue.catch(() => undefined);
  }

  async #define(tpm: Tpm, srk: TpmObject): Promise<number> {
    let first: bigint;
    try {
      first = await tpm.nvDefineCounter(this.index, { salt: srk });
    } catch (e) {
      // Another process defined it between our look and our define: use theirs if it is a counter like ours.
      if (!isTpmError(e) || !isTpmRc(e.rc, TPM_RC.NV_DEFINED)) throw e;
      const pub = await tpm.nvReadPublic(this.index);
      if (pub === undefined) throw e;
      this.#checkPublic(pub);
      first = pub.written ? await readCounter(tpm, this.index, srk) : await tpm.nvIncrement(this.index, { salt: srk });
    }
    const value = toNumber(first, this.index);
    this.#log.info({ index: hex32(this.index), value }, "anti-rollback counter defined in the TPM");
    return value;
  }

  #checkPublic(pub: NvPublic): void {
    if (isSealcacheCounter(pub)) return;
    const idx = hex32(this.index);
    throw new SealError(
      `TPM NV index ${idx} (seal.counter_index) is in use by something else: it holds ${nvPublicText(pub)}, while sealcache's anti-rollback ` +
        `counter is ${nvAttributesText(COUNTER_ATTRIBUTES)}, 8 bytes. ` +
        `Set seal.counter_index to a free index in ${hex32(NV_OWNER_FIRST)}–${hex32(NV_OWNER_LAST)} (tpm2_getcap handles-nv-index lists those in ` +
        `use), or, if nothing uses ${idx}, remove it with tpm2_nvundefine ${idx} -C o`,
    );
  }

  #missing(): SealError {
    return new SealError(
      `the anti-rollback counter (TPM NV index ${hex32(this.index)}) does not exist: the TPM was cleared, or the index was removed. The daemon ` +
        `defines it at start`,
    );
  }

  /** One operation at a time, each on its own connection, with one SRK to salt its sessions to. */
  #run<T>(what: string, fn: (tpm: Tpm, srk: TpmObject) => Promise<T>): Promise<T> {
    const run = this.#queue.then(async () => {
      try {
        return await Tpm.with(this.#tcti, async (tpm) => {
          const srk = await tpm.createPrimary();
          try {
            return await fn(tpm, srk);
          } finally {
            await tpm.flush(srk);
          }
        });
      } catch (e) {
        throw counterError(e, what, this.index, this.#tcti);
      }
    });
    this.#queue = run.catch(() => undefined);
    return run;
  }
}

/** Reads a counter that is known to exist (it cannot vanish within one connection but by another process). */
async function readCounter(tpm: Tpm, index: number, srk: TpmObject): Promise<bigint> {
  const v = await tpm.nvReadCounter(index, { salt: srk });
  if (v === undefined) throw new SealError(`the anti-rollback counter (TPM NV index ${hex32(index)}) was removed while sealcache was reading it`);
  return v;
}

function counterError(e: unknown, what: string, index: number, tcti: string): SealError {
  if (e instanceof SealError) return e;
  if (!isTpmError(e)) return sealErrorFromTpm(e, what, tcti);
  const idx = hex32(index);
  const at = `${what} (TPM NV index ${idx}, ${tcti})`;
  if (e.kind === "auth" && /TPM2_NV_Read\)/u.test(e.message)) {
    return new SealError(
      `${at}: the TPM refused to read the counter with an empty authorization: the index has an authorization value, so it is not sealcache's. Set ` +
        `seal.counter_index to a free index (${e.message})`,
      { cause: e },
    );
  }
  if (e.kind === "auth") {
    return new SealError(
      `${at}: the TPM refused the owner authorization. sealcache defines and increments its counter with the owner hierarchy's authorization, ` +
        `which must be empty (the default, and how most gateways are provisioned); this TPM's owner hierarchy has a password: clear it ` +
        `(tpm2_changeauth -c o -p OLD_PASSWORD, no new password) (${e.message})`,
      { cause: e },
    );
  }
  if (isTpmRc(e.rc, TPM_RC.NV_SPACE))
    return new SealError(
      `${at}: the TPM has no NV space left for the counter; remove indexes nothing uses (tpm2_getcap handles-nv-index, tpm2_nvundefine) (${e.message})`,
      { cause: e },
    );
  if (isTpmRc(e.rc, TPM_RC.HIERARCHY))
    return new SealError(`${at}: the TPM's owner hierarchy is disabled; enable it in the firmware setup (${e.message})`, { cause: e });
  if (isTpmRc(e.rc, TPM_RC.NV_RATE) || isTpmRc(e.rc, TPM_RC.NV_UNAVAILABLE))
    return new SealError(`${at}: the TPM is not accepting NV writes right now (rate limit); retry in a minute (${e.message})`, { cause: e });
  switch (e.kind) {
    case "library-missing":
    case "tcti-missing":
    case "no-device":
    case "permission":
    case "unreachable":
    case "lockout":
    case "tampered":
    case "memory":
      return sealErrorFromTpm(e, what, tcti);
    default:
      return new SealError(`${at}: the TPM refused: ${e.message}`, { cause: e });
  }
}

function checkIndex(index: number): void {
  if (!Number.isInteger(index) || index < NV_OWNER_FIRST || index > NV_OWNER_LAST) {
    const shown = Number.isInteger(index) && index >= 0 ? hex32(index) : String(index);
    throw new SealError(
      `seal.counter_index ${shown} is not in the owner NV index range ${hex32(NV_OWNER_FIRST)}–${hex32(NV_OWNER_LAST)} (TCG handle registry); pick ` +
        `a free index there (tpm2_getcap handles-nv-index lists those in use)`,
    );
  }
}

function checkValue(v: number, what: string): void {
  if (!Number.isSafeInteger(v) || v < 0) throw new RangeError(`${what} must be a non-negative safe integer, not ${String(v)}`);
}

function toNumber(v: bigint, index: number): number {
  if (v > BigInt(Number.MAX_SAFE_INTEGER)) {
    throw new SealError(
      `the anti-rollback counter (TPM NV index ${hex32(index)}) is at ${v}, beyond what sealcache can record (2^53 - 1); this TPM's counters ` +
        `cannot serve as sealcache's anti-rollback counter`,
    );
  }
  return Number(v);
}
