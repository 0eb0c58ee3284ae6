// Errors from the TPM stack, classified so callers can tell an operator what to do.

export type TpmErrorKind =
  /** A tpm2-tss library is not installed. */
  | "library-missing"
  /** The TCTI named in the config has no library. */
  | "tcti-missing"
  /** The TPM device node does not exist. */
  | "no-device"
  /** The device exists but this user may not open it. */
  | "permission"
  /** The TCTI could not reach the TPM (simulator or broker down, I/O error). */
  | "unreachable"
  /** TPM_RC_LOCKOUT: dictionary-attack lockout. */
  | "lockout"
  /** The policy (PCR values) of the object is not satisfied. */
  | "policy"
  /** The object does not belong under this parent / TPM, or was altered. */
  | "integrity"
  /** Hierarchy or object authorization failed. */
  | "auth"
  /** A response HMAC failed: something between us and the TPM altered the traffic. */
  | "tampered"
  /** Out of object or session slots. */
  | "memory"
  /** Input the TPM or the marshaller refused (corrupt blob). */
  | "format"
  /** Anything else. */
  | "tpm";

export class TpmError extends Error {
  readonly kind: TpmErrorKind;
  /** The TSS2_RC, when the error came from the stack. */
  readonly rc: number | undefined;

  constructor(kind: TpmErrorKind, message: string, opts: { rc?: number; cause?: unknown } = {}) {
    super(message, opts.cause === undefined ? undefined : { cause: opts.cause });
    this.name = "TpmError";
    this.kind = kind;
    this.rc = opts.rc;
  }
}

export function isTpmError(e: unknown): e is TpmError {
  return e instanceof TpmError;
}

const LAYER_TPM = 0;
const LAYER_ESYS = 7;
const LAYER_MU = 9;
const LAYER_TCTI = 10;
const LAYER_RESMGR_TPM = 12;

const BASE_RC = {
  NO_CONNECTION: 8,
  IO_ERROR: 10,
  BAD_VALUE: 11,
  INSUFFICIENT_BUFFER: 6,
  BAD_SIZE: 16,
  MALFORMED_RESPONSE: 17,
  RSP_AUTH_FAILED: 27,
} as const;

/** The TPM response code without handle/session/parameter numbers. */
export function tpmBase(rc: number): number {
  const r = rc & 0xffff;
  if (r & 0x80) return 0x80 | (r & 0x3f); // format 1
  return r & 0x97f; // format 0: keep VER1 (0x100) and warning (0x800)
}

export const TPM_RC = {
  INITIALIZE: 0x100,
  PCR_CHANGED: 0x128,
  OBJECT_MEMORY: 0x902,
  SESSION_MEMORY: 0x903,
  LOCKOUT: 0x921,
  AUTH_FAIL: 0x08e,
  BAD_AUTH: 0x0a2,
  POLICY_FAIL: 0x09d,
  INTEGRITY: 0x09f,
  VALUE: 0x084,
  SIZE: 0x095,
  ATTRIBUTES: 0x082,
  HIERARCHY: 0x085,
  HANDLE: 0x08b,
  NV_RANGE: 0x146,
  NV_SIZE: 0x147,
  NV_LOCKED: 0x148,
  NV_AUTHORIZATION: 0x149,
  NV_UNINITIALIZED: 0x14a,
  NV_SPACE: 0x14b,
  NV_DEFINED: 0x14c,
  NV_RATE: 0x920,
  NV_UNAVAILABLE: 0x923,
} as const;

/** True when `rc` is the TPM (or its resource manager) answering `base` (a TPM_RC value above). */
export function isTpmRc(rc: number | undefined, base: number): boolean {
  if (rc === undefined) return false;
  const layer = (rc >>> 16) & 0xff;
  return (layer === LAYER_TPM || layer === LAYER_RESMGR_TPM) && tpmBase(rc) === base;
}

export function classify(rc: number): TpmErrorKind {
  const layer = (rc >>> 16) & 0xff;
  const base = rc & 0xffff;
  if (layer === LAYER_TPM || layer === LAYER_RESMGR_TPM) {
    const b = tpmBase(rc);
    if (b === TPM_RC.LOCKOUT) return "lockout";
    if (b === TPM_RC.POLICY_FAIL || b === TPM_RC.PCR_CHANGED) return "policy";
    if (b === TPM_RC.INTEGRITY) return "integrity";
    if (b === TPM_RC.AUTH_FAIL || b === TPM_RC.BAD_AUTH) return "auth";
    if (b === TPM_RC.OBJECT_MEMORY || b === TPM_RC.SESSION_MEMORY) return "memory";
    if (rc & 0x80) return "format"; // a format-1 code names a bad handle, session or parameter
    return "tpm";
  }
  if (layer === LAYER_TCTI && (base === BASE_RC.IO_ERROR || base === BASE_RC.NO_CONNECTION)) return "unreachable";
  if (layer === LAYER_ESYS && base === BASE_RC.RSP_AUTH_FAILED) return "tampered";
  if (layer === LAYER_MU) return "format";
  return "tpm";
}
