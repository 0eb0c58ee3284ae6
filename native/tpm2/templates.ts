// The public areas sealcache creates, in TPM wire format, and the PolicyPCR digest
// computed in software (TPM 2.0 Part 3, TPM2_PolicyPCR).
import { createHash } from "node:crypto";
import { ALG, CC, ECC_NIST_P256, OBJECT } from "./constants.js";
import { pcrSelection, Writer } from "./wire.js";

const SRK_ATTRIBUTES =
  OBJECT.fixedTPM | OBJECT.fixedParent | OBJECT.sensitiveDataOrigin | OBJECT.userWithAuth | OBJECT.noDA | OBJECT.restricted | OBJECT.decrypt;

/** AES-128-CFB, as TPMT_SYM_DEF(_OBJECT): the SRK's symmetric scheme and the sessions' parameter encryption. */
export function aes128cfb(): Uint8Array {
  return new Writer().u16(ALG.AES).u16(128).u16(ALG.CFB).done();
}

/**
 * TPM2B_PUBLIC of the storage root key per the TCG TPM v2.0 Provisioning Guidance
 * (ECC NIST P-256 / RSA 2048, AES-128-CFB, empty unique). It is the template
 * tpm2-tools and systemd use, so the same TPM always derives the same SRK (and
 * the same key systemd persists at 0x81000001).
 */
export function srkTemplate(alg: "ecc" | "rsa"): Uint8Array {
  const w = new Writer()
    .u16(alg === "ecc" ? ALG.ECC : ALG.RSA)
    .u16(ALG.SHA256)
    .u32(SRK_ATTRIBUTES)
    .tpm2b(new Uint8Array(0)) // authPolicy
    .bytes(aes128cfb()); // symmetric
  if (alg === "ecc") {
    w.u16(ALG.NULL) // scheme
      .u16(ECC_NIST_P256)
      .u16(ALG.NULL) // kdf
      .tpm2b(new Uint8Array(0)) // unique.x
      .tpm2b(new Uint8Array(0)); // unique.y
  } else {
    w.u16(ALG.NULL) // scheme
      .u16(2048) // keyBits
      .u32(0) // exponent (default 65537)
      .tpm2b(new Uint8Array(0)); // unique
  }
  return w.sized();
}

/**
 * TPM2B_PUBLIC of a sealed data object: keyedhash, no scheme, fixedTPM|fixedParent
 * so it can never leave this TPM or be re-parented. With a PCR policy the object
 * has no userWithAuth: only the policy can open it.
 */
export function sealedObjectTemplate(authPolicy: Uint8Array): Uint8Array {
  let attrs = OBJECT.fixedTPM | OBJECT.fixedParent | OBJECT.noDA;
  if (authPolicy.length === 0) attrs |= OBJECT.userWithAuth;
  return new Writer()
    .u16(ALG.KEYEDHASH)
    .u16(ALG.SHA256)
    .u32(attrs)
    .tpm2b(authPolicy)
    .u16(ALG.NULL) // TPMS_KEYEDHASH_PARMS.scheme
    .tpm2b(new Uint8Array(0)) // unique
    .sized();
}

/** TPM2B_SENSITIVE_CREATE with an empty userAuth and `data` as the sealed payload. */
export function sensitiveCreate(data: Uint8Array): Uint8Array {
  return new Writer().tpm2b(new Uint8Array(0)).tpm2b(data).sized();
}

/**
 * policyDigest after a single TPM2_PolicyPCR on a fresh session:
 * H(0…0 ‖ TPM_CC_PolicyPCR ‖ TPML_PCR_SELECTION ‖ H(PCR values in selection order)).
 */
export function policyPcrDigest(pcrs: readonly number[], values: ReadonlyMap<number, Uint8Array>): Uint8Array {
  const sorted = [...new Set(pcrs)].sort((a, b) => a - b);
  const pcrHash = createHash("sha256");
  for (const p of sorted) {
    const v = values.get(p);
    if (!v) throw new RangeError(`no value for PCR ${p}`);
    pcrHash.update(v);
  }
  const cc = new Writer().u32(CC.PolicyPCR).done();
  return new Uint8Array(createHash("sha256").update(new Uint8Array(32)).update(cc).update(pcrSelection(sorted)).update(pcrHash.digest()).digest());
}
