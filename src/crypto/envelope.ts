import { createHmac, timingSafeEqual } from "node:crypto";
import { IntegrityError } from "../errors.js";
import { randomBytes } from "./random.js";
import type { Sodium } from "./sodium.js";

// Ciphertext layout, versioned so the format can change: [version 1][nonce 24][ct+tag].
const FORMAT = 1;
const NONCE = 24;
const KEY = 32;
const enc = new TextEncoder();

export const KEK_BYTES = KEY;

/**
 * Envelope encryption: each secret version gets a fresh data key (DEK); the value
 * is sealed with XChaCha20-Poly1305 under the DEK and the DEK under the KEK, both
 * with associated data naming the secret and its version, so a row moved to
 * another name or relabelled with another version fails to open.
 *
 * This class owns the only in-memory copy of the KEK and zeroes it on `destroy`.
 */
export class Envelope {
  readonly #s: Sodium;
  readonly #kek: Uint8Array;
  readonly #macKey: Uint8Array;

  /** Takes ownership of `kek` (it is zeroed by destroy()). */
  constructor(sodium: Sodium, kek: Uint8Array) {
    if (kek.length !== KEY) throw new IntegrityError(`the cache key has ${kek.length} bytes, expected ${KEY}`);
    this.#s = sodium;
    this.#kek = kek;
    // A separate key for MACs so the KEK itself only ever wraps DEKs.
    this.#macKey = sodium.crypto_kdf_derive_from_key(KEY, 1, "sc-macv1", kek);
  }

  sealValue(name: string, version: number, plaintext: Uint8Array): { wrappedDek: Uint8Array; ciphertext: Uint8Array } {
    const s = this.#s;
    const dek = randomBytes(KEY);
    try {
      const ciphertext = this.#encrypt(dek, plaintext, ad("value", name, version));
      const wrappedDek = this.#encrypt(this.#kek, dek, ad("dek", name, version));
      return { wrappedDek, ciphertext };
    } finally {
      s.memzero(dek);
    }
  }

  /** Returns plaintext the caller must zero after use. Throws IntegrityError on any mismatch. */
  openValue(name: string, version: number, wrappedDek: Uint8Array, ciphertext: Uint8Array): Uint8Array {
    const dek = this.#decrypt(this.#kek, wrappedDek, ad("dek", name, version), name);
    try {
      return this.#decrypt(dek, ciphertext, ad("value", name, version), name);
    } finally {
      this.#s.memzero(dek);
    }
  }

  /** Re-wraps a DEK under another envelope's KEK without exposing the value (rotate-kek). */
  rewrapDek(name: string, version: number, wrappedDek: Uint8Array, to: Envelope): Uint8Array {
    const dek = this.#decrypt(this.#kek, wrappedDek, ad("dek", name, version), name);
    try {
      return to.#encrypt(to.#kek, dek, ad("dek", name, version));
    } finally {
      this.#s.memzero(dek);
    }
  }

  /**
   * HMAC-SHA256 over labelled, length-prefixed parts; used for change detection,
   * row MACs and the store digest. Native (node:crypto) rather than libsodium's
   * WebAssembly: it runs for every row at open and on every lookup, and through the
   * wrappers each call cost ~70 µs against ~3 µs here. The key is passed per call,
   * so no copy outlives it (OpenSSL cleanses its context on free).
   */
  mac(label: string, ...parts: (string | Uint8Array)[]): Uint8Array {
    const h = createHmac("sha256", this.#macKey);
    h.update(label);
    const len = Buffer.allocUnsafe(4);
    for (const p of parts) {
      const b = typeof p === "string" ? Buffer.from(p, "utf8") : p;
      len.writeUInt32BE(b.length, 0);
      h.update(len);
      h.update(b);
    }
    const d = h.digest();
    // A plain Uint8Array view: Buffer's slice() shares memory, which callers of a MAC would not expect.
    return new Uint8Array(d.buffer, d.byteOffset, d.length);
  }

  equal(a: Uint8Array, b: Uint8Array): boolean {
    return a.length === b.length && timingSafeEqual(a, b);
  }

  destroy(): void {
    this.#s.memzero(this.#kek);
    this.#s.memzero(this.#macKey);
  }

  #encrypt(key: Uint8Array, plaintext: Uint8Array, aad: Uint8Array): Uint8Array {
    const s = this.#s;
    const nonce = randomBytes(NONCE);
    const ct = s.crypto_aead_xchacha20poly1305_ietf_encrypt(plaintext, aad, null, nonce, key);
    const out = new Uint8Array(1 + NONCE + ct.length);
    out[0] = FORMAT;
    out.set(nonce, 1);
    out.set(ct, 1 + NONCE);
    return out;
  }

  #decrypt(key: Uint8Array, blob: Uint8Array, aad: Uint8Array, name: string): Uint8Array {
    if (blob.length < 1 + NONCE + 16 || blob[0] !== FORMAT) {
      throw new IntegrityError(`stored ciphertext for ${JSON.stringify(name)} has an unknown format`);
    }
    try {
      return this.#s.crypto_aead_xchacha20poly1305_ietf_decrypt(null, blob.subarray(1 + NONCE), aad, blob.subarray(1, 1 + NONCE), key);
    } catch {
      throw new IntegrityError(`stored ciphertext for ${JSON.stringify(name)} failed authentication (tampered, swapped or rolled back)`);
    }
  }
}

function ad(kind: "value" | "dek", name: string, version: number): Uint8Array {
  return enc.encode(`sealcache:${kind}:v${FORMAT}\0${name}\0${version}`);
}
