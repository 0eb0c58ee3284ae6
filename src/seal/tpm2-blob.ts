import { SealError } from "../errors.js";

/**
 * The TPM-sealed cache key, self-describing so unseal can explain a refusal
 * without asking the TPM to open it. Big-endian:
 *
 *   u8  format (1)
 *   u16 length ‖ name of the storage root key it was sealed under (nameAlg ‖ digest)
 *   u16 PCR bank (0x000b sha256)
 *   u8  count ‖ count × (u8 PCR index, u16 length ‖ value at seal time), ascending
 *   u16 length ‖ TPM2B_PUBLIC of the sealed data object (wire form)
 *   u16 length ‖ TPM2B_PRIVATE of the sealed data object (wire form)
 *
 * Nothing here is secret: the private part is encrypted by the TPM under the
 * SRK and only that TPM can load it. A changed PCR value or SRK name in the blob
 * only changes which error is shown; the TPM still decides.
 */
export const TPM2_BLOB_FORMAT = 1;
const SHA256 = 0x000b;

export interface Tpm2Blob {
  readonly srkName: Uint8Array;
  readonly pcrs: readonly number[];
  readonly pcrValues: ReadonlyMap<number, Uint8Array>;
  readonly public: Uint8Array;
  readonly private: Uint8Array;
}

export function encodeTpm2Blob(b: Tpm2Blob): Uint8Array {
  const parts: number[] = [TPM2_BLOB_FORMAT];
  const u16 = (v: number) => parts.push((v >> 8) & 0xff, v & 0xff);
  const sized = (x: Uint8Array) => {
    u16(x.length);
    parts.push(...x);
  };
  sized(b.srkName);
  u16(SHA256);
  parts.push(b.pcrs.length);
  for (const p of b.pcrs) {
    parts.push(p);
    sized(b.pcrValues.get(p) ?? new Uint8Array(0));
  }
  sized(b.public);
  sized(b.private);
  return Uint8Array.from(parts);
}

/** Throws SealError naming what is wrong when the bytes are not a format-1 TPM blob. */
export function decodeTpm2Blob(blob: Uint8Array): Tpm2Blob {
  let o = 0;
  const need = (n: number, what: string) => {
    if (o + n > blob.length) throw corrupt(`it ends inside the ${what} (${blob.length} bytes)`);
  };
  const u8 = (what: string) => {
    need(1, what);
    return blob[o++]!;
  };
  const u16 = (what: string) => {
    need(2, what);
    const v = (blob[o]! << 8) | blob[o + 1]!;
    o += 2;
    return v;
  };
  const sized = (what: string) => {
    const n = u16(what);
    need(n, what);
    const v = blob.slice(o, o + n);
    o += n;
    return v;
  };
  const format = u8("format byte");
  if (format !== TPM2_BLOB_FORMAT) throw corrupt(`unknown format ${format} (this build reads format ${TPM2_BLOB_FORMAT})`);
  const srkName = sized("storage root key name");
  const bank = u16("PCR bank");
  if (bank !== SHA256) throw corrupt(`PCR bank 0x${bank.toString(16)} is not sha256`);
  const count = u8("PCR count");
  const pcrs: number[] = [];
  const pcrValues = new Map<number, Uint8Array>();
  for (let i = 0; i < count; i++) {
    const p = u8("PCR index");
    const v = sized(`value of PCR ${p}`);
    if (p > 23 || v.length !== 32 || pcrValues.has(p)) throw corrupt(`PCR entry ${i} (PCR ${p}, ${v.length} bytes) is invalid`);
    pcrs.push(p);
    pcrValues.set(p, v);
  }
  const pub = sized("public area");
  const priv = sized("private area");
  if (o !== blob.length) throw corrupt(`${blob.length - o} unexpected trailing bytes`);
  if (srkName.length < 34 || pub.length < 4 || priv.length < 4) throw corrupt("a part is too short to be a TPM object");
  return { srkName, pcrs, pcrValues, public: pub, private: priv };
}

function corrupt(detail: string): SealError {
  return new SealError(
    `the sealed cache key is not a valid TPM-sealed key (corrupt or truncated: ${detail}); restore kek.sealed from a backup, or open the cache ` +
      `with the recovery key`,
  );
}
