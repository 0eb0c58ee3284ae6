import { SealError } from "../errors.js";
import type { Logger } from "../log.js";
import { equalBytes, hex, Tpm, type TpmObject } from "../../native/tpm2/index.js";
import { peekSealedKek } from "./reseal.js";
import type { Sealer, SealerInfo, SealerInit } from "./sealer.js";
import { decodeTpm2Blob, encodeTpm2Blob, type Tpm2Blob } from "./tpm2-blob.js";
import { pcrChangedError, sealErrorFromTpm } from "./tpm2-errors.js";

/**
 * `seal.type: tpm2`: the KEK is a sealed data object (fixedTPM|fixedParent) under
 * the TPM's storage root key, optionally bound to sha256 PCR values
 * (`seal.pcrs`). The connection is opened per operation and closed after, so the
 * daemon holds no TPM resources while it serves.
 */
export function create(init: SealerInit): Sealer {
  const core = new TpmSealCore({ tcti: init.seal.tcti, pcrs: init.seal.pcrs, logger: init.logger });
  return {
    type: "tpm2",
    seal: (kek) => core.seal(kek),
    unseal: (blob) => core.unseal(blob),
    async describe(): Promise<SealerInfo> {
      const peek = peekSealedKek(init.dataDir);
      const r = await core.inspect(peek?.type === "tpm2" ? peek.blob : undefined);
      return { type: "tpm2", ...r };
    },
    close: () => core.close(),
  };
}

export interface TpmSealOptions {
  readonly tcti: string;
  readonly pcrs: readonly number[];
  readonly logger: Logger;
}

/** What tpm2 and tpm2+host share: seal bytes to the TPM and open them again, one operation at a time. */
export class TpmSealCore {
  readonly #tcti: string;
  readonly #pcrs: readonly number[];
  readonly #log: Logger;
  #queue: Promise<unknown> = Promise.resolve();

  constructor(opts: TpmSealOptions) {
    this.#tcti = opts.tcti;
    this.#pcrs = [...new Set(opts.pcrs)].sort((a, b) => a - b);
    this.#log = opts.logger;
  }

  /** Seals `data` to the TPM and the current values of the configured PCRs (this is also how a reseal is done). */
  async seal(data: Uint8Array): Promise<Uint8Array> {
    return this.#exclusive("sealing the cache key to the TPM", async (tpm) => {
      const srk = await tpm.createPrimary();
      try {
        this.#log.debug({ tcti: this.#tcti, pcrs: this.#pcrs, srk: srk.persistent ? `persistent 0x81000001 (${srk.alg})` : srk.alg }, "sealing to the TPM");
        const sealed = await tpm.seal(srk, data, { pcrs: this.#pcrs });
        return encodeTpm2Blob({ srkName: srk.name, pcrs: sealed.pcrs, pcrValues: sealed.pcrValues, public: sealed.public, private: sealed.private });
      } finally {
        await tpm.flush(srk);
      }
    });
  }

  async unseal(blob: Uint8Array): Promise<Uint8Array> {
    const b = decodeTpm2Blob(blob);
    return this.#exclusive("unsealing the cache key", async (tpm) => {
      const srk = await this.#srkFor(tpm, b);
      try {
        await this.#checkPcrs(tpm, b);
        this.#log.debug({ tcti: this.#tcti, pcrs: b.pcrs }, "unsealing with the TPM");
        try {
          return await tpm.unseal(srk, b, { pcrs: b.pcrs });
        } catch (e) {
          // The values matched a moment ago: they changed in between, or the blob's record is wrong.
          if ((e as { kind?: string }).kind === "policy") await this.#checkPcrs(tpm, b);
          throw e;
        }
      } finally {
        await tpm.flush(srk);
      }
    });
  }

  /** For status/doctor: does the TPM answer, who made it, is it in lockout, would `blob` still unseal? Never unseals. */
  async inspect(blob: Uint8Array | undefined): Promise<{ ok: boolean; detail: string; warnings: string[] }> {
    const warnings: string[] = [];
    try {
      return await this.#exclusive("inspecting the TPM", async (tpm) => {
        const info = await tpm.info();
        const parts = [`TPM ${[info.manufacturer, info.vendor].filter(Boolean).join(" ")} (firmware ${info.firmware}) via ${this.#tcti}`];
        const lockout = info.inLockout
          ? `the TPM is in dictionary-attack lockout (${info.lockoutCounter}/${info.maxAuthFail} failures; it recovers one failure every ` +
            `${info.lockoutRecoverySeconds} s, or clear it with tpm2_dictionarylockout --clear-lockout)`
          : undefined;
        let ok = true;
        if (blob) {
          const v = await this.#verdict(tpm, blob);
          ok = v.ok;
          parts.push(v.detail);
          if (lockout && v.daProtectedSrk) {
            ok = false;
            parts.push(`${lockout}, and the storage root key at 0x81000001 is subject to it: unsealing is refused until then`);
          } else if (lockout) {
            warnings.push(`${lockout}; sealcache's keys are exempt (noDA), other users of the TPM are not`);
          }
          if (v.pcrs && v.pcrs.join(",") !== this.#pcrs.join(",")) {
            warnings.push(
              `the cache key is sealed to PCR [${v.pcrs.join(", ")}] but seal.pcrs is [${this.#pcrs.join(", ")}]; the config applies at the next reseal`,
            );
          }
        } else {
          parts.push(this.#pcrs.length > 0 ? `seals to sha256 PCR ${this.#pcrs.join(", ")}` : "no PCR policy (seal.pcrs is empty)");
          if (lockout) warnings.push(lockout);
        }
        return { ok, detail: parts.join("; "), warnings };
      });
    } catch (e) {
      return { ok: false, detail: (e as Error).message, warnings };
    }
  }

  /** Waits for the operation in progress; nothing is held open between operations. */
  async close(): Promise<void> {
    await this.#queue.catch(() => undefined);
  }

  async #verdict(tpm: Tpm, blob: Uint8Array): Promise<{ ok: boolean; detail: string; pcrs?: readonly number[]; daProtectedSrk?: boolean }> {
    let b: Tpm2Blob;
    try {
      b = decodeTpm2Blob(blob);
    } catch (e) {
      return { ok: false, detail: (e as Error).message };
    }
    let daProtectedSrk: boolean;
    try {
      const srk = await this.#srkFor(tpm, b);
      daProtectedSrk = srk.daProtected;
      await tpm.flush(srk);
    } catch (e) {
      return { ok: false, detail: (e as Error).message, pcrs: b.pcrs };
    }
    const base = { pcrs: b.pcrs, daProtectedSrk };
    if (b.pcrs.length === 0) return { ...base, ok: true, detail: "the sealed cache key belongs to this TPM (no PCR policy)" };
    try {
      await this.#checkPcrs(tpm, b);
    } catch (e) {
      return { ...base, ok: false, detail: (e as Error).message };
    }
    return { ...base, ok: true, detail: `the sealed cache key belongs to this TPM and its PCR policy (sha256 PCR ${b.pcrs.join(", ")}) still matches` };
  }

  /** The SRK the blob was sealed under: the persistent one or the one derived from the template, by name. */
  async #srkFor(tpm: Tpm, b: Tpm2Blob): Promise<TpmObject> {
    const first = await tpm.createPrimary();
    if (equalBytes(first.name, b.srkName)) return first;
    await tpm.flush(first);
    if (first.persistent) {
      const derived = await tpm.createPrimary({ persistent: false });
      if (equalBytes(derived.name, b.srkName)) return derived;
      await tpm.flush(derived);
    }
    throw new SealError(
      `the cache key was sealed by another TPM, or this TPM was cleared since: it is sealed under storage root key ${short(b.srkName)} but the TPM ` +
        `at ${this.#tcti} has ${short(first.name)}. ` +
        `A sealed key never moves between TPMs: restore data_dir on its original device, or open the cache with the recovery key and reseal`,
    );
  }

  async #checkPcrs(tpm: Tpm, b: Tpm2Blob): Promise<void> {
    if (b.pcrs.length === 0) return;
    const now = await tpm.pcrRead(b.pcrs);
    const changed = b.pcrs
      .map((pcr) => ({ pcr, sealed: b.pcrValues.get(pcr)!, now: now.get(pcr) ?? new Uint8Array(0) }))
      .filter((c) => !equalBytes(c.sealed, c.now));
    if (changed.length > 0) throw pcrChangedError(changed, b.pcrs);
  }

  /** One operation at a time, each on its own connection that is closed (and flushed) after. */
  #exclusive<T>(what: string, fn: (tpm: Tpm) => Promise<T>): Promise<T> {
    const run = this.#queue.then(async () => {
      try {
        return await Tpm.with(this.#tcti, fn);
      } catch (e) {
        throw sealErrorFromTpm(e, what, this.#tcti);
      }
    });
    this.#queue = run.catch(() => undefined);
    return run;
  }
}

function short(name: Uint8Array): string {
  const h = hex(name);
  return `${h.slice(0, 12)}…${h.slice(-8)}`;
}
