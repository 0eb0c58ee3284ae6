import fs from "node:fs";
import path from "node:path";
import { SealError } from "../errors.js";
import { exists, writeFileAtomic } from "../fsutil.js";
import { KEK_BYTES } from "../crypto/envelope.js";
import { loadSodium, type Sodium } from "../crypto/sodium.js";
import { assertPrivate } from "./permissions.js";

/**
 * The way back when the TPM no longer unseals the cache key (PCRs changed after a
 * firmware update, the board was replaced): the KEK escrowed to a recovery key
 * pair. data_dir/kek.recovery holds the recovery *public* key and the KEK in a
 * libsodium sealed box to it; the secret key exists only on paper or in the
 * operator's vault (`sealcache init` prints it once). Because only the public key
 * is needed to escrow, rotate-kek re-escrows each new KEK without the secret, and
 * the printed key stays valid for the device's life.
 *
 * data_dir/kek.recovery: [format 2][public key 32][sealed box of LABEL ‖ KEK].
 *
 * The key is written for humans: Crockford base32 of secret key ‖ 3-byte checksum,
 * 56 characters in 8 groups of 7 (`7GQ2M4K-…`). Case, dashes and spaces do not
 * matter; O/I/L are read as 0/1/1; a typo is caught by the checksum before any
 * decryption is attempted.
 */
export const RECOVERY_FILE = "kek.recovery";
const FORMAT = 2;
const LABEL = new TextEncoder().encode("sealcache:kek:recovery:v2");
const CHECK_BYTES = 3;
const ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ";
const GROUP = 7;
const SEAL_OVERHEAD = 48; // crypto_box_SEALBYTES
const BLOB_BYTES = 1 + 32 + SEAL_OVERHEAD + LABEL.length + KEK_BYTES;

export function recoveryPath(dataDir: string): string {
  return path.join(dataDir, RECOVERY_FILE);
}

/** Where rotate-kek writes the re-escrowed key until its transaction commits. */
export function pendingRecoveryPath(dataDir: string): string {
  return `${recoveryPath(dataDir)}.next`;
}

export function hasRecovery(dataDir: string): boolean {
  return exists(recoveryPath(dataDir));
}

/**
 * Makes a new recovery key pair, escrows `kek` to it in data_dir/kek.recovery
 * (0600, atomically; refuses to replace one unless `replace`), and returns the
 * secret recovery key for the CLI to print once. Nothing is logged or printed here.
 */
export async function createRecovery(sodium: Sodium, dataDir: string, kek: Uint8Array, opts: { replace?: boolean } = {}): Promise<string> {
  const file = recoveryPath(dataDir);
  if (!opts.replace && exists(file)) throw new SealError(`${file} already exists; a recovery key was made before (replace it explicitly to make a new one)`);
  assertPrivate(dataDir, "data_dir");
  const pair = sodium.crypto_box_keypair();
  try {
    writeEscrow(sodium, file, pair.publicKey, kek);
    return formatRecoveryKey(sodium, pair.privateKey);
  } finally {
    sodium.memzero(pair.privateKey);
  }
}

/**
 * Escrows `kek` to the recovery public key already in data_dir/kek.recovery,
 * writing to `file` (rotate-kek's pending path). Returns false when the device
 * has no recovery file.
 */
export function reescrow(sodium: Sodium, dataDir: string, kek: Uint8Array, file: string): boolean {
  const src = recoveryPath(dataDir);
  if (!exists(src)) return false;
  const blob = readBlob(src);
  writeEscrow(sodium, file, blob.subarray(1, 33), kek);
  return true;
}

/** The KEK from data_dir/kek.recovery and the recovery key as the operator typed it. */
export async function openRecovery(dataDir: string, recoveryKey: string, sodium?: Sodium): Promise<Uint8Array> {
  const s = sodium ?? (await loadSodium());
  const file = recoveryPath(dataDir);
  const secret = parseRecoveryKey(s, recoveryKey);
  try {
    if (!exists(file)) throw new SealError(`${file} is missing; without it a recovery key opens nothing (restore it from a backup of data_dir)`);
    assertPrivate(file, "recovery file");
    const blob = readBlob(file);
    const publicKey = s.crypto_scalarmult_base(secret);
    if (!s.memcmp(publicKey, blob.subarray(1, 33))) throw new SealError(`the recovery key does not belong to ${file}: it is another device's`);
    let opened: Uint8Array;
    try {
      opened = s.crypto_box_seal_open(blob.subarray(33), publicKey, secret);
    } catch {
      throw new SealError(`${file} does not open with its recovery key: the file was altered`);
    }
    try {
      if (opened.length !== LABEL.length + KEK_BYTES || !s.memcmp(opened.subarray(0, LABEL.length), LABEL))
        throw new SealError(`${file} holds something other than a sealcache cache key`);
      return opened.slice(LABEL.length);
    } finally {
      s.memzero(opened);
    }
  } finally {
    s.memzero(secret);
  }
}

function writeEscrow(sodium: Sodium, file: string, publicKey: Uint8Array, kek: Uint8Array): void {
  if (kek.length !== KEK_BYTES) throw new SealError(`a cache key has ${KEK_BYTES} bytes, not ${kek.length}`);
  const plain = new Uint8Array(LABEL.length + KEK_BYTES);
  plain.set(LABEL);
  plain.set(kek, LABEL.length);
  try {
    const box = sodium.crypto_box_seal(plain, publicKey);
    const blob = new Uint8Array(BLOB_BYTES);
    blob[0] = FORMAT;
    blob.set(publicKey, 1);
    blob.set(box, 33);
    writeFileAtomic(file, blob, 0o600);
  } finally {
    sodium.memzero(plain);
  }
}

function readBlob(file: string): Uint8Array {
  const blob = new Uint8Array(fs.readFileSync(file));
  if (blob.length !== BLOB_BYTES || blob[0] !== FORMAT) throw new SealError(`${file} is not a sealcache recovery file (wrong length or format)`);
  return blob;
}

export function formatRecoveryKey(sodium: Sodium, key: Uint8Array): string {
  const full = new Uint8Array(key.length + CHECK_BYTES);
  full.set(key);
  full.set(checksum(sodium, key), key.length);
  const chars = base32(full);
  full.fill(0);
  const groups: string[] = [];
  for (let i = 0; i < chars.length; i += GROUP) groups.push(chars.slice(i, i + GROUP));
  return groups.join("-");
}

/** The 32-byte key from its printed form; SealError on a typo. */
export function parseRecoveryKey(sodium: Sodium, text: string): Uint8Array {
  const clean = text.toUpperCase().replace(/[\s-]/g, "").replace(/O/g, "0").replace(/[IL]/g, "1");
  const expected = Math.ceil(((32 + CHECK_BYTES) * 8) / 5);
  if (clean.length !== expected) throw new SealError(`a recovery key has ${expected} characters (8 groups of 7), this one has ${clean.length}`);
  const bad = [...clean].find((c) => !ALPHABET.includes(c));
  if (bad !== undefined) throw new SealError(`a recovery key has no character ${JSON.stringify(bad)}; it uses 0-9 and A-Z without I, L, O, U`);
  const full = unbase32(clean, 32 + CHECK_BYTES);
  const key = full.slice(0, 32);
  const ok = sodium.memcmp(checksum(sodium, key), full.subarray(32));
  full.fill(0);
  if (!ok) {
    sodium.memzero(key);
    throw new SealError("the recovery key is mistyped (its checksum does not match); check each group");
  }
  return key;
}

function checksum(sodium: Sodium, key: Uint8Array): Uint8Array {
  return sodium.crypto_generichash(32, key, new TextEncoder().encode("sealcache-recovery-checksum")).subarray(0, CHECK_BYTES);
}

function base32(bytes: Uint8Array): string {
  let out = "";
  let acc = 0;
  let bits = 0;
  for (const b of bytes) {
    acc = (acc << 8) | b;
    bits += 8;
    while (bits >= 5) {
      out += ALPHABET[(acc >>> (bits - 5)) & 31];
      bits -= 5;
    }
    acc &= (1 << bits) - 1;
  }
  if (bits > 0) out += ALPHABET[(acc << (5 - bits)) & 31];
  return out;
}

function unbase32(text: string, n: number): Uint8Array {
  const out = new Uint8Array(n);
  let acc = 0;
  let bits = 0;
  let o = 0;
  for (const c of text) {
    acc = (acc << 5) | ALPHABET.indexOf(c);
    bits += 5;
    if (bits >= 8) {
      if (o < n) out[o++] = (acc >>> (bits - 8)) & 0xff;
      bits -= 8;
    }
    acc &= (1 << bits) - 1;
  }
  return out;
}
