import type { Envelope } from "../crypto/envelope.js";
import { IntegrityError } from "../errors.js";
import type { SealedLease } from "./lease.js";

/**
 * The tamper evidence of cache.db, as pure functions over the key (testable
 * without SQLite): each row's keyed MAC (format 2: one per row; format 1, read
 * once to upgrade: the row MAC and its binding), the digest record (a keyed MAC
 * over the XOR of them all, with the generation), the key check, and the
 * anti-rollback counter record. Labels keep every MAC apart.
 */

/** What a row's digest element covers: name, version and the sealed value. */
export function rowElement(env: Envelope, name: string, version: number, wrappedDek: Uint8Array, ciphertext: Uint8Array): Uint8Array {
  return env.mac("row", name, String(version), wrappedDek, ciphertext);
}

/** What a row records besides its value, bound under the key (see bindingMac). */
export interface Bound {
  readonly sourceVersion: string | null;
  readonly held: string | null;
  readonly origin: string | null;
  readonly sealedLease: SealedLease | null;
}

/**
 * The second digest element of a row that records what its backend version is
 * bound to (schema 3): the version check after a restart trusts `sourceVersion`
 * only under a matching `held`, and a row found under an entry serves only with
 * its `origin`, so editing any of them in the file must be caught like an edited
 * value. Rows without either (written before schema 3) contribute none, which
 * keeps their digest valid; clearing both on a newer row removes an element the
 * digest expects. Kept apart from the row MAC so a touch that moves the version
 * needs neither the ciphertext nor a new DEK.
 */
export function bindingMac(env: Envelope, name: string, version: number, b: Bound): Uint8Array | null {
  if (b.held === null && b.origin === null && b.sealedLease === null) return null;
  const opt = (v: string | null) => (v === null ? "-" : `=${v}`);
  // The sealed attachment (schema 4) is appended only when there is one, so rows
  // without one keep the MAC they had under schema 3.
  const extra = b.sealedLease ? [b.sealedLease.dek, b.sealedLease.ct] : [];
  return env.mac("binding", name, String(version), opt(b.sourceVersion), opt(b.held), opt(b.origin), ...extra);
}

/**
 * A row's one element in the digest (digest format 2): its name, version, what it
 * is bound to and its sealed value, under one keyed MAC. Format 1 kept two (the
 * row MAC and the binding, so a touch needed no ciphertext); the store holds the
 * sealed value in memory now, and one MAC per row halves the cost of checking
 * the whole cache at open.
 */
export function rowElement2(
  env: Envelope,
  r: { readonly name: string; readonly version: number } & Bound,
  wrappedDek: Uint8Array,
  ciphertext: Uint8Array,
): Uint8Array {
  const opt = (v: string | null) => (v === null ? "-" : `=${v}`);
  const lease = r.sealedLease ? [r.sealedLease.dek, r.sealedLease.ct] : [];
  return env.mac("row2", r.name, String(r.version), opt(r.sourceVersion), opt(r.held), opt(r.origin), String(lease.length), ...lease, wrappedDek, ciphertext);
}

/** The meta keys of the digest record, by format. */
export const DIGEST_V1 = "digest";
export const DIGEST_V2 = "digest2";

/** The record proving cache.db was written under this key. */
export function kekCheck(env: Envelope): Uint8Array {
  return env.mac("kek-check");
}

const DIGEST_BYTES = 8 + 32 + 32;

/** The head MAC's label per format: a record of one format never verifies as the other. */
const HEAD = { 1: "head", 2: "head2" } as const;

/** [generation u64][XOR of the elements, 32][keyed MAC over both, 32] (format 2 unless told). */
export function encodeDigest(env: Envelope, generation: number, acc: Uint8Array, format: 1 | 2 = 2): Uint8Array {
  const buf = new Uint8Array(DIGEST_BYTES);
  new DataView(buf.buffer).setBigUint64(0, BigInt(generation));
  buf.set(acc, 8);
  buf.set(env.mac(HEAD[format], String(generation), acc), 40);
  return buf;
}

/** The digest record's generation and accumulator; throws IntegrityError when it is malformed or forged. */
export function decodeDigest(env: Envelope, raw: Uint8Array, format: 1 | 2 = 2): { generation: number; acc: Uint8Array } {
  const buf = new Uint8Array(raw);
  if (buf.length !== DIGEST_BYTES) throw new IntegrityError("cache.db digest record is malformed");
  const generation = Number(new DataView(buf.buffer, buf.byteOffset).getBigUint64(0));
  const acc = buf.subarray(8, 40);
  if (!env.equal(buf.subarray(40), env.mac(HEAD[format], String(generation), acc))) throw new IntegrityError("cache.db digest record fails authentication");
  return { generation, acc };
}

const COUNTER_BYTES = 4 + 8 + 32;

/** The TPM anti-rollback counter (NV index, value) as cache.db records it: [index u32][value u64][keyed MAC, 32]. */
export function encodeCounter(env: Envelope, c: { index: number; value: number }): Uint8Array {
  const buf = new Uint8Array(COUNTER_BYTES);
  const view = new DataView(buf.buffer);
  view.setUint32(0, c.index);
  view.setBigUint64(4, BigInt(c.value));
  buf.set(env.mac("rollback-counter", String(c.index), String(c.value)), 12);
  return buf;
}

/** Throws IntegrityError when the record is malformed or was not written under this key. */
export function decodeCounter(env: Envelope, raw: Uint8Array): { index: number; value: number } {
  const buf = new Uint8Array(raw);
  if (buf.length !== COUNTER_BYTES) throw new IntegrityError("cache.db rollback counter record is malformed");
  const view = new DataView(buf.buffer, buf.byteOffset);
  const index = view.getUint32(0);
  const value = view.getBigUint64(4);
  if (!env.equal(buf.subarray(12), env.mac("rollback-counter", String(index), value.toString()))) {
    throw new IntegrityError("cache.db rollback counter record fails authentication");
  }
  return { index, value: Number(value) };
}
