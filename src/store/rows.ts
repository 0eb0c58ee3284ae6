import type { SealedLease, StoredLease } from "./lease.js";

/** What the store knows about a cached secret, besides its (sealed) value. */
export interface SecretMeta {
  readonly name: string;
  /** Ours: +1 each time the value changes; bound into the AEAD. */
  readonly version: number;
  /** The backend's own version id, if it has one. */
  readonly sourceVersion: string | null;
  /** Store generation at the last value change (for watch). */
  readonly changedRev: number;
  readonly changedAt: number;
  /** When the backend last confirmed the value, as recorded (wall clock; see Freshness for in-process ages). */
  readonly fetchedAt: number;
  /**
   * Fingerprint of the config entry (provider, backend, path, key, version) the value
   * was fetched under; with `sourceVersion`, what a cheap version check after a
   * restart may trust. Null for rows written before schema 3.
   */
  readonly held: string | null;
  /** For a value found under an entry (a hierarchy's parameter): that entry's name. Null for a configured secret. */
  readonly origin: string | null;
  /** Whether a sealed attachment (a lease) is recorded with the value (schema 4; read it with lease()). */
  readonly leased: boolean;
}

/**
 * A row as the store keeps it in memory: the metadata, and the sealed value as
 * cache.db holds it, so a lookup reads no disk. One object and one buffer per row
 * (not one typed array per field: at 10,000 secrets those cost ~10 MB more);
 * the row's MACs are recomputed on the rare occasions they are needed.
 */
export interface MetaEntry extends SecretMeta {
  /** [keyed MAC of the value, 32][wrapped DEK, dekLen][ciphertext]: still encrypted. */
  readonly sealed: Buffer;
  readonly dekLen: number;
  /** The lease as sealed in the row (kept sealed in memory too; opened by lease()). */
  readonly sealedLease: SealedLease | null;
}

export const VALUE_MAC_BYTES = 32;

/** One buffer for a row's value MAC, wrapped DEK and ciphertext. */
export function sealedRow(valueMac: Uint8Array, wrappedDek: Uint8Array, ciphertext: Uint8Array): Buffer {
  const b = Buffer.allocUnsafe(VALUE_MAC_BYTES + wrappedDek.length + ciphertext.length);
  b.set(valueMac, 0);
  b.set(wrappedDek, VALUE_MAC_BYTES);
  b.set(ciphertext, VALUE_MAC_BYTES + wrappedDek.length);
  return b;
}

export function valueMacOf(m: MetaEntry): Buffer {
  return m.sealed.subarray(0, VALUE_MAC_BYTES);
}

export function wrappedDekOf(m: MetaEntry): Buffer {
  return m.sealed.subarray(VALUE_MAC_BYTES, VALUE_MAC_BYTES + m.dekLen);
}

export function ciphertextOf(m: MetaEntry): Buffer {
  return m.sealed.subarray(VALUE_MAC_BYTES + m.dekLen);
}

export interface SecretError {
  readonly kind: string;
  readonly message: string;
  readonly at: number;
}

export type BatchItem =
  | {
      readonly name: string;
      readonly ok: true;
      readonly value: Uint8Array;
      readonly sourceVersion: string | undefined;
      readonly at: number;
      readonly held?: string | undefined;
      readonly origin?: string | undefined;
      /** The lease the value is held under; absent: none (a lease recorded before is dropped). */
      readonly lease?: StoredLease | undefined;
    }
  | { readonly name: string; readonly ok: false; readonly kind: string; readonly message: string; readonly at: number };

/** Besides values and errors, what one sync transaction may change. */
export interface ApplyExtras {
  /**
   * Names deleted from the cache: values an entry no longer holds, as the backend
   * answered in a complete walk. The only way a value ever leaves the cache short
   * of a quarantine or an operator's revoke.
   */
  readonly removed?: readonly string[];
  /** Names whose recorded error is cleared without a value (a hierarchy walked successfully). */
  readonly cleared?: readonly string[];
}
