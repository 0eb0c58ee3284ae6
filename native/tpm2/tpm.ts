// Longer than 300 lines on purpose: every ESYS call sealcache makes, each with its
// flush-on-every-path discipline next to it; the marshalling, templates, NV parsing
// and error texts are in their own files beside this one.
// A TPM 2.0 reached through tpm2-tss ESYS. Every ESYS call runs on koffi's worker
// thread (a real TPM can take seconds) and one at a time per context; every
// transient object and session is flushed on every path, and every ESYS buffer freed.
import { ALG, CAP, ECC_NIST_P256, ESYS_TR, HT, MAX_SEALED_DATA, OBJECT, PERMANENT_IN_LOCKOUT, PT, SE, SESSION, SRK_PERSISTENT_HANDLE } from "./constants.js";
import { classify, isTpmRc, TPM_RC, TpmError } from "./errors.js";
import { callAsync, tss } from "./lib.js";
import { freeEsys, freeSecret, fromEsys, toC, wipe } from "./mu.js";
import { checkNvIndex, COUNTER_SIZE, counterPublic, counterValue, hex32, parseNvPublic, type NvPublic } from "./nv.js";
import { rcText } from "./rc.js";
import { preflight, reachHint } from "./tcti.js";
import { aes128cfb, policyPcrDigest, sealedObjectTemplate, sensitiveCreate, srkTemplate } from "./templates.js";
import { parsePcrSelection, pcrSelection, Reader, Writer } from "./wire.js";

const { NONE, PASSWORD } = ESYS_TR;

/** A loaded key: the ESYS_TR handle plus its TPM name (nameAlg ‖ digest of the public area). */
export interface TpmObject {
  readonly handle: number;
  readonly name: Uint8Array;
  /** Taken from persistent handle 0x81000001 rather than created. */
  readonly persistent: boolean;
  readonly alg: "ecc" | "rsa" | "other";
  /** Subject to dictionary-attack lockout (no noDA attribute): in lockout, nothing loads under it. */
  readonly daProtected: boolean;
}

/** A sealed data object as TPM2B_PUBLIC and TPM2B_PRIVATE wire bytes. */
export interface SealedObject {
  readonly public: Uint8Array;
  readonly private: Uint8Array;
}

export interface SealedWithPolicy extends SealedObject {
  /** The sha256 PCRs the policy binds (ascending) and their values at seal time. */
  readonly pcrs: readonly number[];
  readonly pcrValues: ReadonlyMap<number, Uint8Array>;
}

export interface TpmInfo {
  readonly manufacturer: string;
  readonly vendor: string;
  readonly firmware: string;
  readonly inLockout: boolean;
  readonly lockoutCounter: number;
  readonly maxAuthFail: number;
  readonly lockoutRecoverySeconds: number;
}

/** Options of the NV commands. */
export interface NvOptions {
  /** A loaded key to salt the session to; by default the SRK is derived (or taken from 0x81000001) for the call. */
  readonly salt?: TpmObject;
}

type Ptr = unknown;

export class Tpm {
  readonly tcti: string;
  #ctx: Ptr;
  #tctiCtx: Ptr;
  #queue: Promise<unknown> = Promise.resolve();
  readonly #transients = new Set<number>();
  readonly #sessions = new Set<number>();
  /** ESYS_TRs of persistent objects and NV indexes: closed, never flushed. */
  readonly #persistent = new Set<number>();
  #closing: Promise<void> | undefined;

  private constructor(tcti: string, ctx: Ptr, tctiCtx: Ptr) {
    this.tcti = tcti;
    this.#ctx = ctx;
    this.#tctiCtx = tctiCtx;
  }

  /** Connects through a TCTI string such as `device:/dev/tpmrm0`, `swtpm:host=127.0.0.1,port=2321`, `tabrmd`, `pcap:swtpm:…`. */
  static async open(tcti: string): Promise<Tpm> {
    const lib = tss();
    preflight(tcti);
    const tctiOut: Ptr[] = [null];
    const rc = await callAsync(lib.tctildr.Initialize, tcti, tctiOut);
    if (rc !== 0) {
      const kind = classify(rc);
      throw new TpmError(
        kind === "tpm" ? "unreachable" : kind,
        `cannot reach the TPM through TCTI ${JSON.stringify(tcti)}: ${rcText(rc)}; ${reachHint(tcti)}`,
        { rc },
      );
    }
    const ctxOut: Ptr[] = [null];
    const rc2 = await callAsync(lib.esys.Initialize, ctxOut, tctiOut[0], null);
    if (rc2 !== 0) {
      lib.tctildr.Finalize(tctiOut);
      throw new TpmError(classify(rc2), `ESYS could not be initialised on TCTI ${JSON.stringify(tcti)}: ${rcText(rc2)}`, { rc: rc2 });
    }
    return new Tpm(tcti, ctxOut[0], tctiOut[0]);
  }

  /** Opens, runs `fn`, and closes (flushing whatever `fn` left loaded) whatever happens. */
  static async with<T>(tcti: string, fn: (tpm: Tpm) => Promise<T>): Promise<T> {
    const tpm = await Tpm.open(tcti);
    try {
      return await fn(tpm);
    } finally {
      await tpm.close();
    }
  }

  /**
   * The storage root key: the persistent key at 0x81000001 when there is one
   * (unless `persistent: false`), else created from the provisioning-guidance
   * template (ECC P-256, or RSA 2048 when the TPM lacks P-256). Flush it after use.
   */
  createPrimary(opts: { persistent?: boolean } = {}): Promise<TpmObject> {
    return this.#exclusive(() => this.#primary(opts));
  }

  /**
   * Seals `data` (at most 128 bytes) as a keyedhash data object under `parent`,
   * bound to the current values of the sha256 `pcrs` (or to `pcrValues` given).
   * The data travels encrypted: Create runs in a session salted to `parent` with
   * TPMA_SESSION_DECRYPT (AES-128-CFB).
   */
  seal(parent: TpmObject, data: Uint8Array, opts: { pcrs?: readonly number[]; pcrValues?: ReadonlyMap<number, Uint8Array> } = {}): Promise<SealedWithPolicy> {
    if (data.length === 0 || data.length > MAX_SEALED_DATA) throw new RangeError(`a sealed data object holds 1..${MAX_SEALED_DATA} bytes, not ${data.length}`);
    const pcrs = normalisePcrs(opts.pcrs ?? []);
    return this.#exclusive(async () => {
      const pcrValues = pcrs.length === 0 ? new Map<number, Uint8Array>() : (opts.pcrValues ?? (await this.#pcrRead(pcrs)));
      const policy = pcrs.length === 0 ? new Uint8Array(0) : policyPcrDigest(pcrs, pcrValues);
      const inPublic = toC("TPM2B_PUBLIC", sealedObjectTemplate(policy));
      const wire = sensitiveCreate(data);
      let inSensitive: Buffer;
      try {
        inSensitive = toC("TPM2B_SENSITIVE_CREATE", wire);
      } finally {
        wipe(wire);
      }
      const privOut: Ptr[] = [null];
      const pubOut: Ptr[] = [null];
      let session: number | undefined;
      try {
        session = await this.#startSession(parent.handle, SE.HMAC, SESSION.decrypt);
        const rc = await callAsync(
          tss().esys.Create,
          this.#ctx,
          parent.handle,
          session,
          NONE,
          NONE,
          inSensitive,
          inPublic,
          emptyData(),
          noPcrs(),
          privOut,
          pubOut,
          null,
          null,
          null,
        );
        if (rc !== 0) throw this.#error(rc, "sealing (TPM2_Create)");
        const priv = fromEsys("TPM2B_PRIVATE", privOut.splice(0, 1, null)[0]);
        const pub = fromEsys("TPM2B_PUBLIC", pubOut.splice(0, 1, null)[0]);
        return { public: pub, private: priv, pcrs, pcrValues };
      } finally {
        wipe(inSensitive);
        freeEsys(privOut[0]);
        freeEsys(pubOut[0]);
        if (session !== undefined) await this.#flush(session);
      }
    });
  }

  /**
   * Loads a sealed object under `parent` and returns its data. With `pcrs` the
   * object is opened through a PolicyPCR session; the data comes back encrypted
   * (session salted to `parent`, TPMA_SESSION_ENCRYPT, AES-128-CFB).
   */
  unseal(parent: TpmObject, sealed: SealedObject, opts: { pcrs?: readonly number[] } = {}): Promise<Uint8Array> {
    const pcrs = normalisePcrs(opts.pcrs ?? []);
    return this.#exclusive(async () => {
      const inPrivate = toC("TPM2B_PRIVATE", sealed.private);
      const inPublic = toC("TPM2B_PUBLIC", sealed.public);
      const objOut = [0];
      const rc = await callAsync(tss().esys.Load, this.#ctx, parent.handle, PASSWORD, NONE, NONE, inPrivate, inPublic, objOut);
      if (rc !== 0) throw this.#error(rc, "loading the sealed object (TPM2_Load)");
      const obj = objOut[0]!;
      this.#transients.add(obj);
      let session: number | undefined;
      const dataOut: Ptr[] = [null];
      try {
        if (pcrs.length > 0) {
          session = await this.#startSession(parent.handle, SE.POLICY, SESSION.encrypt);
          const prc = await callAsync(
            tss().esys.PolicyPCR,
            this.#ctx,
            session,
            NONE,
            NONE,
            NONE,
            toC("TPM2B_DIGEST", new Uint8Array(2)),
            toC("TPML_PCR_SELECTION", pcrSelection(pcrs)),
          );
          if (prc !== 0) throw this.#error(prc, "TPM2_PolicyPCR");
        } else {
          session = await this.#startSession(parent.handle, SE.HMAC, SESSION.encrypt);
        }
        const urc = await callAsync(tss().esys.Unseal, this.#ctx, obj, session, NONE, NONE, dataOut);
        if (urc !== 0) throw this.#error(urc, "unsealing (TPM2_Unseal)");
        const wire = fromEsys("TPM2B_SENSITIVE_DATA", dataOut.splice(0, 1, null)[0], { secret: true });
        try {
          return new Reader(wire).tpm2b().slice();
        } finally {
          wipe(wire);
        }
      } finally {
        freeSecret("TPM2B_SENSITIVE_DATA", dataOut[0]);
        if (session !== undefined) await this.#flush(session);
        await this.#flush(obj);
      }
    });
  }

  /** Current values of sha256 PCRs. */
  pcrRead(pcrs: readonly number[]): Promise<Map<number, Uint8Array>> {
    const sorted = normalisePcrs(pcrs);
    return this.#exclusive(() => this.#pcrRead(sorted));
  }

  /** Extends a sha256 PCR with a 32-byte digest (tests, and measuring into a debug PCR). */
  pcrExtend(pcr: number, digest: Uint8Array): Promise<void> {
    if (digest.length !== 32) throw new RangeError("a sha256 digest has 32 bytes");
    const [p] = normalisePcrs([pcr]);
    return this.#exclusive(async () => {
      const digests = toC("TPML_DIGEST_VALUES", new Writer().u32(1).u16(ALG.SHA256).bytes(digest).done());
      const rc = await callAsync(tss().esys.PCR_Extend, this.#ctx, ESYS_TR.PCR0 + p!, PASSWORD, NONE, NONE, digests);
      if (rc !== 0) throw this.#error(rc, `extending PCR ${p}`);
    });
  }

  /** Handles of transient objects loaded in the TPM (with a resource manager: this connection's). */
  transientHandles(): Promise<number[]> {
    return this.#exclusive(async () => (await this.#handles(HT.TRANSIENT, 64)).filter((h) => h >>> 24 === 0x80));
  }

  /** Handles of loaded and context-saved sessions. */
  sessionHandles(): Promise<number[]> {
    return this.#exclusive(async () => {
      const loaded = (await this.#handles(HT.LOADED_SESSION, 64)).filter((h) => h >>> 24 === 0x02 || h >>> 24 === 0x03);
      const saved = (await this.#handles(HT.SAVED_SESSION, 64)).filter((h) => h >>> 24 === 0x02 || h >>> 24 === 0x03);
      return [...new Set([...loaded, ...saved])];
    });
  }

  /** Manufacturer, vendor, firmware and dictionary-attack state. */
  info(): Promise<TpmInfo> {
    return this.#exclusive(async () => {
      const fixed = await this.#properties(PT.MANUFACTURER, PT.FIRMWARE_VERSION_1 + 2 - PT.MANUFACTURER);
      const vars = await this.#properties(PT.PERMANENT, PT.LOCKOUT_RECOVERY + 1 - PT.PERMANENT);
      const str = (...ps: number[]) =>
        ps
          .map((p) => ascii(fixed.get(p) ?? 0))
          .join("")
          .replace(/[\0\s]+$/u, "")
          .trim();
      const fw1 = fixed.get(PT.FIRMWARE_VERSION_1) ?? 0;
      const fw2 = fixed.get(PT.FIRMWARE_VERSION_1 + 1) ?? 0;
      return {
        manufacturer: str(PT.MANUFACTURER),
        vendor: str(PT.VENDOR_STRING_1, PT.VENDOR_STRING_1 + 1, PT.VENDOR_STRING_1 + 2, PT.VENDOR_STRING_1 + 3),
        firmware: `${fw1 >>> 16}.${fw1 & 0xffff}.${fw2 >>> 16}.${fw2 & 0xffff}`,
        inLockout: ((vars.get(PT.PERMANENT) ?? 0) & PERMANENT_IN_LOCKOUT) !== 0,
        lockoutCounter: vars.get(PT.LOCKOUT_COUNTER) ?? 0,
        maxAuthFail: vars.get(PT.MAX_AUTH_FAIL) ?? 0,
        lockoutRecoverySeconds: vars.get(PT.LOCKOUT_RECOVERY) ?? 0,
      };
    });
  }

  // ---- NV counters (anti-rollback). Commands that take an authorization run in an
  // HMAC session salted to the SRK (or to `opts.salt`): the counter is not secret,
  // but a forged answer would let an old database pass, so commands and responses
  // are authenticated; nothing secret crosses, so there is no parameter encryption.

  /** The public area of NV index `index`, or undefined when no index is defined there. */
  nvReadPublic(index: number): Promise<NvPublic | undefined> {
    checkNvIndex(index);
    return this.#exclusive(async () => {
      const nv = await this.#nvOpen(index);
      if (nv === undefined) return undefined;
      try {
        return await this.#nvPublic(nv, index);
      } finally {
        await this.#flush(nv);
      }
    });
  }

  /**
   * Defines a monotonic counter at `index` (TPM2_NT_COUNTER, 8 bytes, attributes
   * COUNTER_ATTRIBUTES: incremented with owner authorization, read with the empty
   * index authorization, exempt from dictionary-attack lockout), then increments
   * it once, since a counter cannot be read before its first increment. Resolves
   * with its first value, which is not 0 but one more than the highest value any
   * counter on this TPM has had. Owner authorization must be empty. Fails with
   * TPM_RC_NV_DEFINED when the index exists.
   */
  nvDefineCounter(index: number, opts: NvOptions = {}): Promise<bigint> {
    checkNvIndex(index);
    return this.#exclusive(() =>
      this.#nvSession(opts, async (session) => {
        const out = [0];
        const auth = toC("TPM2B_AUTH", new Uint8Array(2));
        const rc = await callAsync(
          tss().esys.NV_DefineSpace,
          this.#ctx,
          ESYS_TR.RH_OWNER,
          session,
          NONE,
          NONE,
          auth,
          toC("TPM2B_NV_PUBLIC", counterPublic(index)),
          out,
        );
        if (rc !== 0) throw this.#nvError(rc, `defining NV counter ${hex32(index)} (TPM2_NV_DefineSpace)`, "owner");
        const nv = out[0]!;
        this.#persistent.add(nv);
        try {
          await this.#nvIncrement(nv, index, session);
          return await this.#nvRead(nv, index, session);
        } finally {
          await this.#flush(nv);
        }
      }),
    );
  }

  /** The value of the counter at `index`, or undefined when no index is defined there. */
  nvReadCounter(index: number, opts: NvOptions = {}): Promise<bigint | undefined> {
    checkNvIndex(index);
    return this.#exclusive(async () => {
      const nv = await this.#nvOpen(index);
      if (nv === undefined) return undefined;
      try {
        return await this.#nvSession(opts, (session) => this.#nvRead(nv, index, session));
      } finally {
        await this.#flush(nv);
      }
    });
  }

  /** Increments the counter at `index` (owner authorization) and resolves with its new value. */
  nvIncrement(index: number, opts: NvOptions = {}): Promise<bigint> {
    checkNvIndex(index);
    return this.#exclusive(async () => {
      const nv = await this.#nvOpen(index);
      if (nv === undefined) throw new TpmError("tpm", `incrementing NV counter ${hex32(index)} failed: no NV index is defined there`, { rc: TPM_RC.HANDLE });
      try {
        return await this.#nvSession(opts, async (session) => {
          await this.#nvIncrement(nv, index, session);
          return this.#nvRead(nv, index, session);
        });
      } finally {
        await this.#flush(nv);
      }
    });
  }

  /**
   * Removes the NV index at `index` (owner authorization); false when none was
   * defined. Removing a counter does not reset the count: the next counter defined
   * on this TPM starts above it.
   */
  nvUndefine(index: number, opts: NvOptions = {}): Promise<boolean> {
    checkNvIndex(index);
    return this.#exclusive(async () => {
      const nv = await this.#nvOpen(index);
      if (nv === undefined) return false;
      try {
        await this.#nvSession(opts, async (session) => {
          const rc = await callAsync(tss().esys.NV_UndefineSpace, this.#ctx, ESYS_TR.RH_OWNER, nv, session, NONE, NONE);
          if (rc !== 0) throw this.#nvError(rc, `removing NV index ${hex32(index)} (TPM2_NV_UndefineSpace)`, "owner");
          this.#persistent.delete(nv); // ESYS closed its handle with the index
        });
        return true;
      } finally {
        await this.#flush(nv);
      }
    });
  }

  /** Flushes a transient object or session, or closes the ESYS handle of a persistent one. */
  flush(obj: TpmObject | number): Promise<void> {
    const handle = typeof obj === "number" ? obj : obj.handle;
    return this.#exclusive(() => this.#flush(handle, true));
  }

  /** Flushes anything still loaded, then frees the ESYS and TCTI contexts. Safe to call twice. */
  close(): Promise<void> {
    this.#closing ??= this.#exclusive(async () => {
      for (const h of [...this.#sessions, ...this.#transients, ...this.#persistent]) await this.#flush(h);
      const lib = tss();
      lib.esys.Finalize([this.#ctx]);
      lib.tctildr.Finalize([this.#tctiCtx]);
      this.#ctx = null;
      this.#tctiCtx = null;
    });
    return this.#closing;
  }

  // ---- internals: called only from inside #exclusive ----

  #exclusive<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.#queue.then(() => {
      if (this.#ctx === null) throw new TpmError("tpm", "the TPM connection is closed");
      return fn();
    });
    this.#queue = run.catch(() => undefined);
    return run;
  }

  #error(rc: number, what: string, hint = ""): TpmError {
    return new TpmError(classify(rc), `${what} failed: ${rcText(rc)}${hint}`, { rc });
  }

  /** The SRK, as createPrimary() describes it; flush it after use. */
  async #primary(opts: { persistent?: boolean }): Promise<TpmObject> {
    if (opts.persistent !== false) {
      const [first] = await this.#handles(SRK_PERSISTENT_HANDLE, 1);
      if (first === SRK_PERSISTENT_HANDLE) return this.#fromPersistent(SRK_PERSISTENT_HANDLE);
    }
    const alg = (await this.#supportsP256()) ? "ecc" : "rsa";
    const inSensitive = toC("TPM2B_SENSITIVE_CREATE", sensitiveCreate(new Uint8Array(0)));
    const inPublic = toC("TPM2B_PUBLIC", srkTemplate(alg));
    const handleOut = [0];
    const pubOut: Ptr[] = [null];
    const rc = await callAsync(
      tss().esys.CreatePrimary,
      this.#ctx,
      ESYS_TR.RH_OWNER,
      PASSWORD,
      NONE,
      NONE,
      inSensitive,
      inPublic,
      emptyData(),
      noPcrs(),
      handleOut,
      pubOut,
      null,
      null,
      null,
    );
    freeEsys(pubOut[0]);
    if (rc !== 0) {
      const hint =
        classify(rc) === "auth"
          ? "; the owner hierarchy has a password: provision a persistent SRK at 0x81000001 instead " +
            "(tpm2_createprimary -C o -c srk.ctx && tpm2_evictcontrol -c srk.ctx 0x81000001)"
          : "";
      throw this.#error(rc, `creating the storage root key (${alg === "ecc" ? "ECC P-256" : "RSA 2048"})`, hint);
    }
    const handle = handleOut[0]!;
    this.#transients.add(handle);
    try {
      return { handle, name: this.#name(handle), persistent: false, alg, daProtected: false };
    } catch (e) {
      await this.#flush(handle);
      throw e;
    }
  }

  /** The ESYS_TR of NV index `index` (closed by #flush), or undefined when it is not defined. */
  async #nvOpen(index: number): Promise<number | undefined> {
    const out = [0];
    const rc = await callAsync(tss().esys.TR_FromTPMPublic, this.#ctx, index, NONE, NONE, NONE, out);
    if (isTpmRc(rc, TPM_RC.HANDLE)) return undefined;
    if (rc !== 0) throw this.#nvError(rc, `looking up NV index ${hex32(index)}`);
    this.#persistent.add(out[0]!);
    return out[0]!;
  }

  async #nvPublic(nv: number, index: number): Promise<NvPublic> {
    const pubOut: Ptr[] = [null];
    const nameOut: Ptr[] = [null];
    const rc = await callAsync(tss().esys.NV_ReadPublic, this.#ctx, nv, NONE, NONE, NONE, pubOut, nameOut);
    freeEsys(nameOut[0]);
    if (rc !== 0) {
      freeEsys(pubOut[0]);
      throw this.#nvError(rc, `reading the public area of NV index ${hex32(index)} (TPM2_NV_ReadPublic)`);
    }
    return parseNvPublic(fromEsys("TPM2B_NV_PUBLIC", pubOut[0]));
  }

  /** Runs `fn` with an HMAC session salted to `opts.salt` or to the SRK (derived for the call); flushes both. */
  async #nvSession<T>(opts: NvOptions, fn: (session: number) => Promise<T>): Promise<T> {
    const own = opts.salt === undefined ? await this.#primary({}) : undefined;
    try {
      const session = await this.#startSession((opts.salt ?? own!).handle, SE.HMAC, 0);
      try {
        return await fn(session);
      } finally {
        await this.#flush(session);
      }
    } finally {
      if (own !== undefined) await this.#flush(own.handle);
    }
  }

  async #nvIncrement(nv: number, index: number, session: number): Promise<void> {
    const rc = await callAsync(tss().esys.NV_Increment, this.#ctx, ESYS_TR.RH_OWNER, nv, session, NONE, NONE);
    if (rc !== 0) throw this.#nvError(rc, `incrementing NV counter ${hex32(index)} (TPM2_NV_Increment)`, "owner");
  }

  /** Reads a counter with the index's own (empty) authorization. */
  async #nvRead(nv: number, index: number, session: number): Promise<bigint> {
    const out: Ptr[] = [null];
    const rc = await callAsync(tss().esys.NV_Read, this.#ctx, nv, nv, session, NONE, NONE, COUNTER_SIZE, 0, out);
    if (rc !== 0) {
      freeEsys(out[0]);
      throw this.#nvError(rc, `reading NV counter ${hex32(index)} (TPM2_NV_Read)`, "index");
    }
    return counterValue(new Reader(fromEsys("TPM2B_MAX_NV_BUFFER", out[0])).tpm2b());
  }

  #nvError(rc: number, what: string, auth?: "owner" | "index"): TpmError {
    let hint = "";
    if (classify(rc) === "auth") {
      hint =
        auth === "owner"
          ? "; the owner hierarchy has an authorization value (sealcache uses empty owner authorization)"
          : "; the index has an authorization value";
    } else if (isTpmRc(rc, TPM_RC.NV_DEFINED)) hint = "; an NV index is already defined there";
    else if (isTpmRc(rc, TPM_RC.NV_SPACE)) hint = "; the TPM has no NV space left for another index";
    else if (isTpmRc(rc, TPM_RC.NV_UNINITIALIZED)) hint = "; the counter has never been incremented";
    else if (isTpmRc(rc, TPM_RC.NV_RATE)) hint = "; the TPM is rate-limiting NV writes, retry later";
    else if (isTpmRc(rc, TPM_RC.HIERARCHY)) hint = "; the owner hierarchy is disabled";
    else if (isTpmRc(rc, TPM_RC.NV_AUTHORIZATION) || isTpmRc(rc, TPM_RC.NV_LOCKED)) hint = "; the index's attributes do not allow this";
    return this.#error(rc, what, hint);
  }

  async #startSession(tpmKey: number, type: number, attrs: number): Promise<number> {
    const out = [0];
    const rc = await callAsync(
      tss().esys.StartAuthSession,
      this.#ctx,
      tpmKey,
      NONE,
      NONE,
      NONE,
      NONE,
      null,
      type,
      toC("TPMT_SYM_DEF", aes128cfb()),
      ALG.SHA256,
      out,
    );
    if (rc !== 0) throw this.#error(rc, "starting a salted session (TPM2_StartAuthSession)");
    const session = out[0]!;
    this.#sessions.add(session);
    const arc = tss().esys.TRSess_SetAttributes(this.#ctx, session, SESSION.continueSession | attrs, 0xff) as number;
    if (arc !== 0) {
      await this.#flush(session);
      throw this.#error(arc, "setting session attributes");
    }
    return session;
  }

  /** Never throws unless `strict`: it runs in finally blocks, where the first error must win. */
  async #flush(handle: number, strict = false): Promise<void> {
    const lib = tss();
    let rc = 0;
    if (this.#persistent.delete(handle)) {
      rc = lib.esys.TR_Close(this.#ctx, [handle]) as number;
    } else if (this.#transients.delete(handle) || this.#sessions.delete(handle) || strict) {
      rc = await callAsync(lib.esys.FlushContext, this.#ctx, handle);
    }
    if (rc !== 0 && strict) throw this.#error(rc, `flushing handle 0x${handle.toString(16)}`);
  }

  async #fromPersistent(tpmHandle: number): Promise<TpmObject> {
    const out = [0];
    const rc = await callAsync(tss().esys.TR_FromTPMPublic, this.#ctx, tpmHandle, NONE, NONE, NONE, out);
    if (rc !== 0) throw this.#error(rc, `reading persistent key 0x${tpmHandle.toString(16)}`);
    const handle = out[0]!;
    this.#persistent.add(handle);
    try {
      const pubOut: Ptr[] = [null];
      const prc = await callAsync(tss().esys.ReadPublic, this.#ctx, handle, NONE, NONE, NONE, pubOut, null, null);
      if (prc !== 0) throw this.#error(prc, `reading the public area of 0x${tpmHandle.toString(16)}`);
      const pub = new Reader(fromEsys("TPM2B_PUBLIC", pubOut[0]));
      pub.u16(); // TPM2B size
      const type = pub.u16();
      pub.u16(); // nameAlg
      const attrs = pub.u32();
      return {
        handle,
        name: this.#name(handle),
        persistent: true,
        alg: type === ALG.ECC ? "ecc" : type === ALG.RSA ? "rsa" : "other",
        daProtected: (attrs & OBJECT.noDA) === 0,
      };
    } catch (e) {
      await this.#flush(handle);
      throw e;
    }
  }

  #name(handle: number): Uint8Array {
    const out: Ptr[] = [null];
    const rc = tss().esys.TR_GetName(this.#ctx, handle, out) as number;
    if (rc !== 0) throw this.#error(rc, "reading an object name");
    return new Reader(fromEsys("TPM2B_NAME", out[0])).tpm2b().slice();
  }

  async #capability(cap: number, property: number, count: number): Promise<{ more: boolean; data: Reader }> {
    const more = [0];
    const out: Ptr[] = [null];
    const rc = await callAsync(tss().esys.GetCapability, this.#ctx, NONE, NONE, NONE, cap, property, count, more, out);
    if (rc !== 0) throw this.#error(rc, `TPM2_GetCapability(0x${cap.toString(16)})`);
    const r = new Reader(fromEsys("TPMS_CAPABILITY_DATA", out[0]));
    if (r.u32() !== cap) throw new TpmError("tpm", "TPM2_GetCapability answered another capability");
    return { more: more[0] !== 0, data: r };
  }

  async #handles(first: number, max: number): Promise<number[]> {
    const out: number[] = [];
    let from = first;
    for (;;) {
      const { more, data } = await this.#capability(CAP.HANDLES, from, max);
      const n = data.u32();
      for (let i = 0; i < n; i++) out.push(data.u32());
      if (!more || n === 0 || out.length >= 4096) return out;
      from = out[out.length - 1]! + 1;
    }
  }

  async #properties(first: number, count: number): Promise<Map<number, number>> {
    const { data } = await this.#capability(CAP.TPM_PROPERTIES, first, count);
    const out = new Map<number, number>();
    const n = data.u32();
    for (let i = 0; i < n; i++) out.set(data.u32(), data.u32());
    return out;
  }

  async #supportsP256(): Promise<boolean> {
    try {
      const { data } = await this.#capability(CAP.ECC_CURVES, ECC_NIST_P256, 1);
      const n = data.u32();
      for (let i = 0; i < n; i++) if (data.u16() === ECC_NIST_P256) return true;
      return false;
    } catch {
      return false; // TPMs without ECC may refuse the capability outright
    }
  }

  /** sha256 PCR values; TPM2_PCR_Read answers at most 8 per call, so it loops. */
  async #pcrRead(pcrs: readonly number[]): Promise<Map<number, Uint8Array>> {
    const out = new Map<number, Uint8Array>();
    let remaining = [...pcrs];
    while (remaining.length > 0) {
      const counter = [0];
      const selOut: Ptr[] = [null];
      const valOut: Ptr[] = [null];
      const rc = await callAsync(tss().esys.PCR_Read, this.#ctx, NONE, NONE, NONE, toC("TPML_PCR_SELECTION", pcrSelection(remaining)), counter, selOut, valOut);
      if (rc !== 0) {
        freeEsys(selOut[0]);
        freeEsys(valOut[0]);
        throw this.#error(rc, `reading PCRs ${remaining.join(",")}`);
      }
      let read: number[];
      let values: Reader;
      try {
        read = parsePcrSelection(new Reader(fromEsys("TPML_PCR_SELECTION", selOut.splice(0, 1, null)[0]))).get(ALG.SHA256) ?? [];
        values = new Reader(fromEsys("TPML_DIGEST", valOut.splice(0, 1, null)[0]));
      } finally {
        freeEsys(selOut[0]);
        freeEsys(valOut[0]);
      }
      const n = values.u32();
      if (read.length === 0 || n !== read.length) {
        throw new TpmError("tpm", `the TPM returned no sha256 value for PCR ${remaining.join(",")}: is the sha256 PCR bank allocated? (tpm2_getcap pcrs)`);
      }
      for (const p of read) out.set(p, values.tpm2b().slice());
      remaining = remaining.filter((p) => !out.has(p));
    }
    return out;
  }
}

function normalisePcrs(pcrs: readonly number[]): number[] {
  for (const p of pcrs) if (!Number.isInteger(p) || p < 0 || p > 23) throw new RangeError(`PCR index ${p} is outside 0..23`);
  return [...new Set(pcrs)].sort((a, b) => a - b);
}

function emptyData(): Buffer {
  return toC("TPM2B_DATA", new Uint8Array(2));
}

function noPcrs(): Buffer {
  return toC("TPML_PCR_SELECTION", pcrSelection([]));
}

function ascii(v: number): string {
  return String.fromCharCode((v >>> 24) & 0xff, (v >>> 16) & 0xff, (v >>> 8) & 0xff, v & 0xff);
}
