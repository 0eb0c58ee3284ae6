// NV index public areas (TPMS_NV_PUBLIC) built and read in TPM wire format, and
// the attributes of the monotonic counters sealcache defines.
import { ALG, NT, NV, NV_INDEX_FIRST, NV_INDEX_LAST, NV_TYPE_MASK, NV_TYPE_SHIFT } from "./constants.js";
import { Reader, Writer } from "./wire.js";

/**
 * TPMA_NV of a sealcache counter:
 * - TPM2_NT_COUNTER: 8 bytes that only TPM2_NV_Increment changes, and never
 *   downwards; a counter defined again after TPM2_NV_UndefineSpace (or TPM2_Clear)
 *   starts above the highest value any counter on the TPM has had.
 * - OWNERWRITE only: incrementing takes owner authorization (empty on most
 *   gateways); the index's own authValue cannot increment it (no AUTHWRITE).
 * - AUTHREAD: read with the index's authValue, which is empty: anyone may read.
 * - NO_DA: reads neither count towards nor are blocked by dictionary-attack
 *   lockout, so a lockout caused by another TPM user does not stop the daemon.
 * - not ORDERLY: an orderly counter lives in RAM and, after a power cut, jumps
 *   ahead to its next save point, which would look like a rolled-back database.
 * - no POLICY_DELETE / PLATFORMCREATE: the owner can remove it (tests, a move to
 *   another index), and removing it does not reset the count (see above).
 */
export const COUNTER_ATTRIBUTES = (NT.COUNTER << NV_TYPE_SHIFT) | NV.OWNERWRITE | NV.AUTHREAD | NV.NO_DA;

/** Attributes that describe the index's current state rather than how it was defined. */
export const NV_STATE_ATTRIBUTES = NV.WRITTEN | NV.WRITELOCKED | NV.READLOCKED;

export const COUNTER_SIZE = 8;

export interface NvPublic {
  readonly index: number;
  readonly nameAlg: number;
  /** TPMA_NV, the type (bits 4..7) included. */
  readonly attributes: number;
  readonly type: number;
  readonly authPolicy: Uint8Array;
  readonly dataSize: number;
  /** TPMA_NV_WRITTEN: the index has a value (a counter: incremented at least once). */
  readonly written: boolean;
}

export function checkNvIndex(index: number): void {
  if (!Number.isInteger(index) || index < NV_INDEX_FIRST || index > NV_INDEX_LAST) {
    throw new RangeError(
      `0x${Number.isInteger(index) && index >= 0 ? index.toString(16).padStart(8, "0") : String(index)} is not an NV index handle (0x01000000..0x01ffffff)`,
    );
  }
}

/** TPM2B_NV_PUBLIC of a sealcache counter at `index`: sha256 name, no auth policy, 8 bytes. */
export function counterPublic(index: number): Uint8Array {
  checkNvIndex(index);
  return new Writer()
    .u32(index)
    .u16(ALG.SHA256)
    .u32(COUNTER_ATTRIBUTES)
    .tpm2b(new Uint8Array(0)) // authPolicy
    .u16(COUNTER_SIZE)
    .sized();
}

/** Parses TPM2B_NV_PUBLIC wire bytes. */
export function parseNvPublic(wire: Uint8Array): NvPublic {
  const r = new Reader(wire);
  r.u16(); // TPM2B size
  const index = r.u32();
  const nameAlg = r.u16();
  const attributes = r.u32();
  const authPolicy = r.tpm2b().slice();
  const dataSize = r.u16();
  return { index, nameAlg, attributes, type: (attributes & NV_TYPE_MASK) >>> NV_TYPE_SHIFT, authPolicy, dataSize, written: (attributes & NV.WRITTEN) !== 0 };
}

/** True when `pub` is a counter defined the way sealcache defines one (its state bits aside). */
export function isSealcacheCounter(pub: NvPublic): boolean {
  return (
    (pub.attributes & ~NV_STATE_ATTRIBUTES) >>> 0 === COUNTER_ATTRIBUTES &&
    pub.dataSize === COUNTER_SIZE &&
    pub.nameAlg === ALG.SHA256 &&
    pub.authPolicy.length === 0
  );
}

const TYPE_NAMES: Record<number, string> = {
  [NT.ORDINARY]: "ordinary",
  [NT.COUNTER]: "counter",
  [NT.BITS]: "bits",
  [NT.EXTEND]: "extend",
  [NT.PIN_FAIL]: "pinfail",
  [NT.PIN_PASS]: "pinpass",
};

/** "nt=counter|ownerwrite|authread|no_da", in tpm2_nvdefine's spelling. */
export function nvAttributesText(attributes: number): string {
  const type = (attributes & NV_TYPE_MASK) >>> NV_TYPE_SHIFT;
  const names = [`nt=${TYPE_NAMES[type] ?? `0x${type.toString(16)}`}`];
  for (const [name, bit] of Object.entries(NV)) if ((attributes & bit) >>> 0 !== 0) names.push(name.toLowerCase());
  return names.join("|");
}

/** A short description of an NV public area, for error messages. */
export function nvPublicText(pub: NvPublic): string {
  const alg = pub.nameAlg === ALG.SHA256 ? "sha256" : `nameAlg 0x${pub.nameAlg.toString(16)}`;
  return `${pub.dataSize} bytes, ${alg}, attributes ${nvAttributesText(pub.attributes)}${pub.authPolicy.length > 0 ? ", with an auth policy" : ""}`;
}

/** The 8-byte big-endian value of a counter. */
export function counterValue(data: Uint8Array): bigint {
  if (data.length !== COUNTER_SIZE) throw new RangeError(`an NV counter holds ${COUNTER_SIZE} bytes, not ${data.length}`);
  return new DataView(data.buffer, data.byteOffset, data.byteLength).getBigUint64(0);
}

export function hex32(v: number): string {
  return `0x${(v >>> 0).toString(16).padStart(8, "0")}`;
}
