// Conversion between TPM wire bytes and the C structures ESYS takes and returns.
import koffi from "koffi";
import { TpmError } from "./errors.js";
import { C_STRUCT_BYTES, tss, type MuType } from "./lib.js";
import { rcText } from "./rc.js";

/** A C structure of `type` built from its wire form; zero it with wipe() when it held a secret. */
export function toC(type: MuType, wire: Uint8Array): Buffer {
  const dest = Buffer.alloc(C_STRUCT_BYTES);
  const offset = [0];
  const rc = tss().mu[type].Unmarshal(wire, wire.length, offset, dest) as number;
  if (rc !== 0) throw new TpmError("format", `${type} does not unmarshal: ${rcText(rc)}`, { rc });
  if (offset[0] !== wire.length) throw new TpmError("format", `${type} has ${wire.length - offset[0]!} trailing bytes`);
  return dest;
}

/** The wire form of an ESYS-allocated structure, which is then freed (and zeroed first when `secret`). */
export function fromEsys(type: MuType, ptr: unknown, opts: { secret?: boolean; maxBytes?: number } = {}): Uint8Array {
  if (ptr === null || ptr === undefined) throw new TpmError("tpm", `ESYS returned no ${type}`);
  const out = Buffer.alloc(opts.maxBytes ?? C_STRUCT_BYTES);
  try {
    const offset = [0];
    const rc = tss().mu[type].Marshal(ptr, out, out.length, offset) as number;
    if (rc !== 0) throw new TpmError("format", `${type} does not marshal: ${rcText(rc)}`, { rc });
    return new Uint8Array(out.subarray(0, offset[0]));
  } finally {
    out.fill(0);
    freeEsys(ptr, opts.secret ? secretBytes(type, ptr) : 0);
  }
}

/** Esys_Free of a TPM2B that may hold a secret, zeroed first. */
export function freeSecret(type: MuType, ptr: unknown): void {
  if (ptr === null || ptr === undefined) return;
  freeEsys(ptr, secretBytes(type, ptr));
}

/** Esys_Free, after overwriting `wipeBytes` of the allocation with zeros. */
export function freeEsys(ptr: unknown, wipeBytes = 0): void {
  if (ptr === null || ptr === undefined) return;
  if (wipeBytes > 0) new Uint8Array(koffi.view(ptr, wipeBytes)).fill(0);
  tss().esys.Free(ptr);
}

/** The bytes of a TPM2B-shaped C structure in use: its native-endian UINT16 size, then that many bytes. */
function secretBytes(type: MuType, ptr: unknown): number {
  if (!type.startsWith("TPM2B_")) throw new RangeError(`${type} is not a TPM2B`);
  const size = new Uint16Array(koffi.view(ptr, 2))[0]!;
  return 2 + size;
}

export function wipe(b: Buffer | Uint8Array): void {
  b.fill(0);
}
