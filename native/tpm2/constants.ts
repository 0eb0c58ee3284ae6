// TPM 2.0 and tpm2-tss constants used by the bindings (TPM 2.0 Part 2, tss2_tpm2_types.h,
// tss2_esys.h). Only what sealcache needs; values are the same on every architecture.

export const ALG = {
  RSA: 0x0001,
  AES: 0x0006,
  KEYEDHASH: 0x0008,
  SHA256: 0x000b,
  NULL: 0x0010,
  ECC: 0x0023,
  CFB: 0x0043,
} as const;

export const ECC_NIST_P256 = 0x0003;

/** TPM2_CC values that matter for checks on captures. */
export const CC = {
  Create: 0x00000153,
  PolicyPCR: 0x0000017f,
  Unseal: 0x0000015e,
} as const;

export const OBJECT = {
  fixedTPM: 0x00000002,
  fixedParent: 0x00000010,
  sensitiveDataOrigin: 0x00000020,
  userWithAuth: 0x00000040,
  noDA: 0x00000400,
  restricted: 0x00010000,
  decrypt: 0x00020000,
} as const;

export const SESSION = {
  continueSession: 0x01,
  decrypt: 0x20,
  encrypt: 0x40,
} as const;

export const SE = { HMAC: 0x00, POLICY: 0x01 } as const;

export const ESYS_TR = {
  NONE: 0xfff,
  PASSWORD: 0x0ff,
  RH_OWNER: 0x101,
  RH_PLATFORM: 0x10c,
  PCR0: 0,
} as const;

export const CAP = {
  ALGS: 0x00000000,
  HANDLES: 0x00000001,
  PCRS: 0x00000005,
  TPM_PROPERTIES: 0x00000006,
  ECC_CURVES: 0x00000008,
} as const;

export const HT = {
  TRANSIENT: 0x80000000,
  PERSISTENT: 0x81000000,
  NV_INDEX: 0x01000000,
  LOADED_SESSION: 0x02000000,
  SAVED_SESSION: 0x03000000,
} as const;

export const PT = {
  MANUFACTURER: 0x105,
  VENDOR_STRING_1: 0x106,
  FIRMWARE_VERSION_1: 0x10b,
  PERMANENT: 0x200,
  LOCKOUT_COUNTER: 0x20e,
  MAX_AUTH_FAIL: 0x20f,
  LOCKOUT_RECOVERY: 0x211,
} as const;

/** TPMA_NV bits (TPM 2.0 Part 2, TPMA_NV); the index type TPM2_NT sits in bits 4..7. */
export const NV = {
  PPWRITE: 0x00000001,
  OWNERWRITE: 0x00000002,
  AUTHWRITE: 0x00000004,
  POLICYWRITE: 0x00000008,
  POLICY_DELETE: 0x00000400,
  WRITELOCKED: 0x00000800,
  WRITEALL: 0x00001000,
  WRITEDEFINE: 0x00002000,
  WRITE_STCLEAR: 0x00004000,
  GLOBALLOCK: 0x00008000,
  PPREAD: 0x00010000,
  OWNERREAD: 0x00020000,
  AUTHREAD: 0x00040000,
  POLICYREAD: 0x00080000,
  NO_DA: 0x02000000,
  ORDERLY: 0x04000000,
  CLEAR_STCLEAR: 0x08000000,
  READLOCKED: 0x10000000,
  WRITTEN: 0x20000000,
  PLATFORMCREATE: 0x40000000,
  READ_STCLEAR: 0x80000000,
} as const;

/** TPM2_NT: the type of an NV index, `(attributes & NV_TYPE_MASK) >>> NV_TYPE_SHIFT`. */
export const NT = { ORDINARY: 0x0, COUNTER: 0x1, BITS: 0x2, EXTEND: 0x4, PIN_FAIL: 0x8, PIN_PASS: 0x9 } as const;
export const NV_TYPE_SHIFT = 4;
export const NV_TYPE_MASK = 0x000000f0;

/** NV index handles (TPM2_HT_NV_INDEX) and the part of them TCG's handle registry gives the owner. */
export const NV_INDEX_FIRST = 0x01000000;
export const NV_INDEX_LAST = 0x01ffffff;
export const NV_OWNER_FIRST = 0x01000000;
export const NV_OWNER_LAST = 0x013fffff;

/** TPMA_PERMANENT.inLockout */
export const PERMANENT_IN_LOCKOUT = 0x00000200;

/** The TCG provisioning guidance's handle for the storage root key. */
export const SRK_PERSISTENT_HANDLE = 0x81000001;

/** Largest payload a sealed data object holds (MAX_SYM_DATA). */
export const MAX_SEALED_DATA = 128;
