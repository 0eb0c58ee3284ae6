import type { Envelope } from "../crypto/envelope.js";
import { IntegrityError } from "../errors.js";

/**
 * Small sealed records the cache keeps besides values (the fleet channel's
 * replay memory): sealed like a value under a name no secret can have (a NUL),
 * and bound into the digest like a row, so an edited, removed or older copy of
 * one is caught at open like an edited row.
 */
export interface SealedRecord {
  readonly key: string;
  readonly wrappedDek: Uint8Array;
  readonly ciphertext: Uint8Array;
}

/** The meta table key a record lives under. */
export const RECORD_PREFIX = "record:";

const sealedName = (key: string) => `\0record:${key}`;

export function sealRecord(env: Envelope, key: string, plain: Uint8Array): SealedRecord {
  const { wrappedDek, ciphertext } = env.sealValue(sealedName(key), 1, plain);
  return { key, wrappedDek, ciphertext };
}

/** The record's bytes, which the caller zeroes; IntegrityError when it does not open. */
export function openRecord(env: Envelope, r: SealedRecord): Uint8Array {
  return env.openValue(sealedName(r.key), 1, r.wrappedDek, r.ciphertext);
}

export function rewrapRecord(from: Envelope, to: Envelope, r: SealedRecord): SealedRecord {
  return { ...r, wrappedDek: from.rewrapDek(sealedName(r.key), 1, r.wrappedDek, to) };
}

/** The record's element in the digest. */
export function recordElement(env: Envelope, r: SealedRecord): Uint8Array {
  return env.mac("record", r.key, r.wrappedDek, r.ciphertext);
}

/** [u16 DEK length][wrapped DEK][ciphertext], as the meta table stores it. */
export function encodeRecord(r: SealedRecord): Buffer {
  const b = Buffer.allocUnsafe(2 + r.wrappedDek.length + r.ciphertext.length);
  b.writeUInt16BE(r.wrappedDek.length, 0);
  b.set(r.wrappedDek, 2);
  b.set(r.ciphertext, 2 + r.wrappedDek.length);
  return b;
}

export function decodeRecord(key: string, raw: Uint8Array): SealedRecord {
  const b = Buffer.from(raw.buffer, raw.byteOffset, raw.length);
  const n = b.length >= 2 ? b.readUInt16BE(0) : -1;
  if (n < 0 || 2 + n > b.length) throw new IntegrityError(`cache.db record ${JSON.stringify(key.slice(0, 40))} is malformed`);
  return { key, wrappedDek: new Uint8Array(b.subarray(2, 2 + n)), ciphertext: new Uint8Array(b.subarray(2 + n)) };
}
