import type { Envelope } from "../crypto/envelope.js";
import { IntegrityError } from "../errors.js";

/**
 * The lease a cached value is held under (a Vault dynamic secret), as the store
 * keeps it: what renews the credentials after a restart, or revokes them when they
 * are replaced. The id is a handle on the credentials' life, so it is sealed like a
 * value and never logged.
 */
export interface StoredLease {
  readonly id: string;
  /** The duration it was first issued for (ms). */
  readonly duration: number;
  /** When it ends unless renewed (ms since the epoch). */
  readonly expiresAt: number;
  readonly renewable: boolean;
}

/** A lease sealed for one row: its DEK wrapped by the KEK, and the record under the DEK. */
export interface SealedLease {
  readonly dek: Uint8Array;
  readonly ct: Uint8Array;
}

const RECORD = 1;
const enc = new TextEncoder();
const dec = new TextDecoder("utf-8", { fatal: true });

/**
 * The name the lease of `name` is sealed under. Secret names cannot hold a NUL,
 * so no secret's value can be opened as a lease, or a lease as a value; the row
 * version goes into the associated data as for the value.
 */
function sealedName(name: string): string {
  return `${name}\0lease`;
}

export function sealLease(env: Envelope, name: string, version: number, lease: StoredLease): SealedLease {
  const plain = enc.encode(JSON.stringify({ v: RECORD, id: lease.id, duration: lease.duration, expires_at: lease.expiresAt, renewable: lease.renewable }));
  try {
    const { wrappedDek, ciphertext } = env.sealValue(sealedName(name), version, plain);
    return { dek: wrappedDek, ct: ciphertext };
  } finally {
    plain.fill(0);
  }
}

/** Opens a sealed lease; throws IntegrityError (naming the secret, never the lease) when it fails. */
export function openLease(env: Envelope, name: string, version: number, sealed: SealedLease): StoredLease {
  let plain: Uint8Array;
  try {
    plain = env.openValue(sealedName(name), version, sealed.dek, sealed.ct);
  } catch {
    throw new IntegrityError(`the lease stored for ${JSON.stringify(name)} failed authentication (tampered, swapped or rolled back)`);
  }
  try {
    const r = JSON.parse(dec.decode(plain)) as Record<string, unknown>;
    const { id, duration, expires_at: expiresAt, renewable } = r;
    if (r.v !== RECORD || typeof id !== "string" || id === "" || !isTime(duration) || !isTime(expiresAt) || typeof renewable !== "boolean")
      throw new Error("shape");
    return { id, duration, expiresAt, renewable };
  } catch {
    throw new IntegrityError(`the lease stored for ${JSON.stringify(name)} is not a lease record this sealcache writes`);
  } finally {
    plain.fill(0);
  }
}

/** Re-wraps a sealed lease's DEK under another envelope (rotate-kek); the record itself is not re-encrypted. */
export function rewrapLease(from: Envelope, to: Envelope, name: string, version: number, sealed: SealedLease): SealedLease {
  return { dek: from.rewrapDek(sealedName(name), version, sealed.dek, to), ct: sealed.ct };
}

function isTime(v: unknown): v is number {
  return typeof v === "number" && Number.isFinite(v) && v >= 0;
}
