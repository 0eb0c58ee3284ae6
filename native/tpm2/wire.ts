// TPM wire format (big-endian, TPM 2.0 Part 1 §"Marshalling") built and read by
// hand, so no C struct layout is modelled in TypeScript: the bytes are turned into
// C structs by Tss2_MU_*_Unmarshal and back by Tss2_MU_*_Marshal (see mu.ts).
import { ALG } from "./constants.js";

export class Writer {
  readonly #parts: Uint8Array[] = [];

  u8(v: number): this {
    this.#parts.push(Uint8Array.of(v & 0xff));
    return this;
  }

  u16(v: number): this {
    const b = new Uint8Array(2);
    new DataView(b.buffer).setUint16(0, v);
    this.#parts.push(b);
    return this;
  }

  u32(v: number): this {
    const b = new Uint8Array(4);
    new DataView(b.buffer).setUint32(0, v >>> 0);
    this.#parts.push(b);
    return this;
  }

  bytes(b: Uint8Array): this {
    this.#parts.push(b);
    return this;
  }

  /** A TPM2B: 16-bit size, then the bytes. */
  tpm2b(b: Uint8Array): this {
    return this.u16(b.length).bytes(b);
  }

  /** The bytes so far wrapped as a TPM2B (for TPM2B_PUBLIC and friends). */
  sized(): Uint8Array {
    const body = this.done();
    return new Writer().tpm2b(body).done();
  }

  done(): Uint8Array {
    const len = this.#parts.reduce((n, p) => n + p.length, 0);
    const out = new Uint8Array(len);
    let o = 0;
    for (const p of this.#parts) {
      out.set(p, o);
      o += p.length;
    }
    return out;
  }
}

export class Reader {
  #o = 0;
  readonly #v: DataView;

  constructor(readonly buf: Uint8Array) {
    this.#v = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  }

  get offset(): number {
    return this.#o;
  }

  get remaining(): number {
    return this.buf.length - this.#o;
  }

  #need(n: number): void {
    if (this.#o + n > this.buf.length) throw new RangeError(`truncated: need ${n} bytes at offset ${this.#o} of ${this.buf.length}`);
  }

  u8(): number {
    this.#need(1);
    return this.#v.getUint8(this.#o++);
  }

  u16(): number {
    this.#need(2);
    const v = this.#v.getUint16(this.#o);
    this.#o += 2;
    return v;
  }

  u32(): number {
    this.#need(4);
    const v = this.#v.getUint32(this.#o);
    this.#o += 4;
    return v;
  }

  bytes(n: number): Uint8Array {
    this.#need(n);
    const b = this.buf.subarray(this.#o, this.#o + n);
    this.#o += n;
    return b;
  }

  tpm2b(): Uint8Array {
    return this.bytes(this.u16());
  }
}

/** TPML_PCR_SELECTION for one bank (sha256), PCRs 0..23. */
export function pcrSelection(pcrs: readonly number[], hash: number = ALG.SHA256): Uint8Array {
  const w = new Writer().u32(pcrs.length === 0 ? 0 : 1);
  if (pcrs.length === 0) return w.done();
  const bitmap = new Uint8Array(3);
  for (const p of pcrs) {
    if (!Number.isInteger(p) || p < 0 || p > 23) throw new RangeError(`PCR index ${p} is outside 0..23`);
    bitmap[p >> 3]! |= 1 << (p & 7);
  }
  return w.u16(hash).u8(3).bytes(bitmap).done();
}

/** Parses a TPML_PCR_SELECTION into the PCR indexes selected per bank, ascending. */
export function parsePcrSelection(r: Reader): Map<number, number[]> {
  const out = new Map<number, number[]>();
  const count = r.u32();
  for (let i = 0; i < count; i++) {
    const hash = r.u16();
    const size = r.u8();
    const bitmap = r.bytes(size);
    const pcrs: number[] = [];
    for (let b = 0; b < size * 8; b++) if (bitmap[b >> 3]! & (1 << (b & 7))) pcrs.push(b);
    out.set(hash, [...(out.get(hash) ?? []), ...pcrs]);
  }
  return out;
}

export function hex(b: Uint8Array): string {
  return Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString("hex");
}

export function equalBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  let d = 0;
  for (let i = 0; i < a.length; i++) d |= a[i]! ^ b[i]!;
  return d === 0;
}
