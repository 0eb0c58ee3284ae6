// The TPM 2.0 bindings (tpm2-tss ESYS through koffi). Nothing is loaded until a
// Tpm is opened.
export { Tpm, type TpmObject, type SealedObject, type SealedWithPolicy, type TpmInfo, type NvOptions } from "./tpm.js";
export { TpmError, isTpmError, isTpmRc, TPM_RC, type TpmErrorKind } from "./errors.js";
export { COUNTER_ATTRIBUTES, COUNTER_SIZE, isSealcacheCounter, nvAttributesText, nvPublicText, hex32, type NvPublic } from "./nv.js";
export { TCTI_PACKAGES, splitTcti } from "./tcti.js";
export { policyPcrDigest } from "./templates.js";
export { CC, SRK_PERSISTENT_HANDLE, MAX_SEALED_DATA, NV_OWNER_FIRST, NV_OWNER_LAST } from "./constants.js";
export { hex, equalBytes } from "./wire.js";
