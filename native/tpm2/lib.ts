// koffi bindings to tpm2-tss (ESYS, the TCTI loader, the marshalling library and
// the RC decoder). Loaded on first use: importing this module opens nothing.
import koffi from "koffi";
import { TpmError } from "./errors.js";

type Fn = koffi.KoffiFunction;

export interface Tss {
  readonly esys: {
    Initialize: Fn;
    Finalize: Fn;
    Free: Fn;
    SetTimeout: Fn;
    CreatePrimary: Fn;
    Create: Fn;
    Load: Fn;
    Unseal: Fn;
    StartAuthSession: Fn;
    TRSess_SetAttributes: Fn;
    PolicyPCR: Fn;
    PCR_Read: Fn;
    PCR_Extend: Fn;
    GetCapability: Fn;
    FlushContext: Fn;
    TR_FromTPMPublic: Fn;
    ReadPublic: Fn;
    TR_GetName: Fn;
    TR_Close: Fn;
    NV_DefineSpace: Fn;
    NV_UndefineSpace: Fn;
    NV_Increment: Fn;
    NV_Read: Fn;
    NV_ReadPublic: Fn;
  };
  readonly tctildr: { Initialize: Fn; Finalize: Fn };
  readonly rc: { Decode: Fn } | undefined;
  readonly mu: Record<MuType, { Marshal: Fn; Unmarshal: Fn }>;
}

/** The structures crossing the ABI, each converted with Tss2_MU_<TYPE>_(Un)marshal. */
export const MU_TYPES = [
  "TPM2B_PUBLIC",
  "TPM2B_PRIVATE",
  "TPM2B_SENSITIVE_CREATE",
  "TPM2B_SENSITIVE_DATA",
  "TPM2B_DATA",
  "TPM2B_DIGEST",
  "TPM2B_NAME",
  "TPML_PCR_SELECTION",
  "TPML_DIGEST",
  "TPML_DIGEST_VALUES",
  "TPMT_SYM_DEF",
  "TPMS_CAPABILITY_DATA",
  "TPM2B_AUTH",
  "TPM2B_NV_PUBLIC",
  "TPM2B_MAX_NV_BUFFER",
] as const;
export type MuType = (typeof MU_TYPES)[number];

/**
 * sizeof() of each C structure is at most this (TPM2B_PRIVATE, the largest, is
 * 1552 bytes with tpm2-tss 3.x/4.x); buffers handed to Unmarshal are this big so a
 * newer library with larger buffers still fits.
 */
export const C_STRUCT_BYTES = 4096;

/** Debian packages (tpm2-tss) for each shared library, for error messages. */
const PACKAGES: Record<string, string> = {
  "libtss2-esys.so.0": "libtss2-esys-3.0.2-0 (libtss2-esys-3.0.2-0t64 on newer releases)",
  "libtss2-tctildr.so.0": "libtss2-tctildr0 (libtss2-tctildr0t64 on newer releases)",
  "libtss2-mu.so.0": "libtss2-mu0 (libtss2-mu-4.0.1-0t64 on newer releases)",
};

let loaded: Tss | undefined;

function open(soname: string): koffi.IKoffiLib {
  try {
    return koffi.load(soname);
  } catch (e) {
    throw new TpmError(
      "library-missing",
      `the TPM software stack library ${soname} cannot be loaded (${(e as Error).message.split("\n")[0]}); install the Debian package ` +
        `${PACKAGES[soname] ?? "of tpm2-tss"}`,
      { cause: e },
    );
  }
}

export function tss(): Tss {
  if (loaded) return loaded;
  // tpm2-tss logs every failed command to stderr; sealcache reports errors itself.
  // An operator's own TSS2_LOG setting wins.
  process.env.TSS2_LOG ??= "all+NONE";
  const esys = open("libtss2-esys.so.0");
  const tctildr = open("libtss2-tctildr.so.0");
  const muLib = open("libtss2-mu.so.0");
  let rcLib: koffi.IKoffiLib | undefined;
  try {
    rcLib = koffi.load("libtss2-rc.so.0");
  } catch {
    rcLib = undefined; // only used for error text
  }
  const R = "uint32_t"; // TSS2_RC, ESYS_TR, TPM handles, TPM2_CAP
  const S = `${R} s1, ${R} s2, ${R} s3`;
  const mu = {} as Record<MuType, { Marshal: Fn; Unmarshal: Fn }>;
  for (const t of MU_TYPES) {
    mu[t] = {
      Marshal: muLib.func(`${R} Tss2_MU_${t}_Marshal(const void *src, uint8_t *buffer, size_t size, _Inout_ size_t *offset)`),
      Unmarshal: muLib.func(`${R} Tss2_MU_${t}_Unmarshal(const uint8_t *buffer, size_t size, _Inout_ size_t *offset, void *dest)`),
    };
  }
  loaded = {
    esys: {
      Initialize: esys.func(`${R} Esys_Initialize(_Out_ void **ctx, void *tcti, void *abi)`),
      Finalize: esys.func("void Esys_Finalize(_Inout_ void **ctx)"),
      Free: esys.func("void Esys_Free(void *ptr)"),
      SetTimeout: esys.func(`${R} Esys_SetTimeout(void *ctx, int32_t timeout)`),
      CreatePrimary: esys.func(
        `${R} Esys_CreatePrimary(void *ctx, ${R} primaryHandle, ${S}, const void *inSensitive, const void *inPublic, const void *outsideInfo, ` +
          `const void *creationPCR, _Out_ uint32_t *objectHandle, _Out_ void **outPublic, void *creationData, void *creationHash, ` +
          `void *creationTicket)`,
      ),
      Create: esys.func(
        `${R} Esys_Create(void *ctx, ${R} parentHandle, ${S}, const void *inSensitive, const void *inPublic, const void *outsideInfo, ` +
          `const void *creationPCR, _Out_ void **outPrivate, _Out_ void **outPublic, void *creationData, void *creationHash, void *creationTicket)`,
      ),
      Load: esys.func(`${R} Esys_Load(void *ctx, ${R} parentHandle, ${S}, const void *inPrivate, const void *inPublic, _Out_ uint32_t *objectHandle)`),
      Unseal: esys.func(`${R} Esys_Unseal(void *ctx, ${R} itemHandle, ${S}, _Out_ void **outData)`),
      StartAuthSession: esys.func(
        `${R} Esys_StartAuthSession(void *ctx, ${R} tpmKey, ${R} bind, ${S}, const void *nonceCaller, uint8_t sessionType, const void *symmetric, ` +
          `uint16_t authHash, _Out_ uint32_t *sessionHandle)`,
      ),
      TRSess_SetAttributes: esys.func(`${R} Esys_TRSess_SetAttributes(void *ctx, ${R} session, uint8_t flags, uint8_t mask)`),
      PolicyPCR: esys.func(`${R} Esys_PolicyPCR(void *ctx, ${R} policySession, ${S}, const void *pcrDigest, const void *pcrs)`),
      PCR_Read: esys.func(
        `${R} Esys_PCR_Read(void *ctx, ${S}, const void *selectionIn, _Out_ uint32_t *updateCounter, _Out_ void **selectionOut, _Out_ void **values)`,
      ),
      PCR_Extend: esys.func(`${R} Esys_PCR_Extend(void *ctx, ${R} pcrHandle, ${S}, const void *digests)`),
      GetCapability: esys.func(
        `${R} Esys_GetCapability(void *ctx, ${S}, ${R} capability, ${R} property, ${R} count, _Out_ uint8_t *moreData, _Out_ void **data)`,
      ),
      FlushContext: esys.func(`${R} Esys_FlushContext(void *ctx, ${R} handle)`),
      TR_FromTPMPublic: esys.func(`${R} Esys_TR_FromTPMPublic(void *ctx, ${R} tpmHandle, ${S}, _Out_ uint32_t *object)`),
      ReadPublic: esys.func(`${R} Esys_ReadPublic(void *ctx, ${R} objectHandle, ${S}, _Out_ void **outPublic, void *name, void *qualifiedName)`),
      TR_GetName: esys.func(`${R} Esys_TR_GetName(void *ctx, ${R} handle, _Out_ void **name)`),
      TR_Close: esys.func(`${R} Esys_TR_Close(void *ctx, _Inout_ uint32_t *handle)`),
      NV_DefineSpace: esys.func(
        `${R} Esys_NV_DefineSpace(void *ctx, ${R} authHandle, ${S}, const void *auth, const void *publicInfo, _Out_ uint32_t *nvHandle)`,
      ),
      NV_UndefineSpace: esys.func(`${R} Esys_NV_UndefineSpace(void *ctx, ${R} authHandle, ${R} nvIndex, ${S})`),
      NV_Increment: esys.func(`${R} Esys_NV_Increment(void *ctx, ${R} authHandle, ${R} nvIndex, ${S})`),
      NV_Read: esys.func(`${R} Esys_NV_Read(void *ctx, ${R} authHandle, ${R} nvIndex, ${S}, uint16_t size, uint16_t offset, _Out_ void **data)`),
      NV_ReadPublic: esys.func(`${R} Esys_NV_ReadPublic(void *ctx, ${R} nvIndex, ${S}, _Out_ void **nvPublic, _Out_ void **nvName)`),
    },
    tctildr: {
      Initialize: tctildr.func(`${R} Tss2_TctiLdr_Initialize(const char *nameConf, _Out_ void **ctx)`),
      Finalize: tctildr.func("void Tss2_TctiLdr_Finalize(_Inout_ void **ctx)"),
    },
    rc: rcLib ? { Decode: rcLib.func(`const char *Tss2_RC_Decode(${R} rc)`) } : undefined,
    mu,
  };
  return loaded;
}

/** True when a shared library can be dlopen'ed (used to name a missing TCTI). */
export function canLoad(soname: string): boolean {
  try {
    const lib = koffi.load(soname);
    lib.unload();
    return true;
  } catch {
    return false;
  }
}

/** Runs an ESYS function on koffi's worker thread; resolves with its TSS2_RC. */
export function callAsync(fn: Fn, ...args: unknown[]): Promise<number> {
  return new Promise((resolve, reject) => {
    fn.async(...args, (err: unknown, rc: number) => (err ? reject(err) : resolve(rc >>> 0)));
  });
}
