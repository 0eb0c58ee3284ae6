import fs from "node:fs";
import path from "node:path";
import { SealError } from "../errors.js";
import { exists, writeFileAtomic } from "../fsutil.js";
import { KEK_BYTES } from "../crypto/envelope.js";
import { randomBytes } from "../crypto/random.js";
import type { Sealer } from "./sealer.js";

export const SEALED_KEK_FILE = "kek.sealed";

interface SealedFile {
  format: 1;
  type: string;
  created_at: string;
  blob: string;
}

export function sealedKekPath(dataDir: string): string {
  return path.join(dataDir, SEALED_KEK_FILE);
}

export function hasSealedKek(dataDir: string): boolean {
  return exists(sealedKekPath(dataDir));
}

/** A new random KEK, sealed and written atomically. Refuses to overwrite an existing one. */
export async function createKek(sealer: Sealer, dataDir: string): Promise<Uint8Array> {
  const file = sealedKekPath(dataDir);
  if (exists(file)) throw new SealError(`${file} already exists; the cache is initialised (rotate-kek replaces a key)`);
  const kek = randomBytes(KEK_BYTES);
  const blob = await sealer.seal(kek);
  writeSealedKek(file, sealer.type, blob);
  return kek;
}

/** Where rotate-kek puts the new sealed key until its transaction commits. */
export function pendingKekPath(dataDir: string): string {
  return path.join(dataDir, `${SEALED_KEK_FILE}.next`);
}

/** Writes a sealed-key file ({format, type, created_at, blob}) atomically, 0600. */
export function writeSealedKek(file: string, type: string, blob: Uint8Array): void {
  const body: SealedFile = { format: 1, type, created_at: new Date().toISOString(), blob: Buffer.from(blob).toString("base64") };
  writeFileAtomic(file, JSON.stringify(body) + "\n", 0o600);
}

/** Reads and unseals the KEK. Never modifies anything on disk. */
export async function loadKek(sealer: Sealer, dataDir: string): Promise<Uint8Array> {
  return loadKekFrom(sealer, sealedKekPath(dataDir));
}

/** Unseals the key in one sealed-key file (kek.sealed, or a rotation's pending one). */
export async function loadKekFrom(sealer: Sealer, file: string): Promise<Uint8Array> {
  const sealed = readSealedKek(file);
  if (sealed.type !== sealer.type) {
    throw new SealError(`${file} was sealed with seal.type ${sealed.type} but the config says ${sealer.type}; set seal.type: ${sealed.type} or re-initialise`);
  }
  const kek = await sealer.unseal(sealed.blob);
  if (kek.length !== KEK_BYTES) throw new SealError(`${file} unsealed to ${kek.length} bytes, expected ${KEK_BYTES}`);
  return kek;
}

/** A sealed-key file's seal type and blob, without unsealing. SealError when missing or malformed. */
export function readSealedKek(file: string): { type: string; blob: Uint8Array } {
  let parsed: SealedFile;
  try {
    parsed = JSON.parse(fs.readFileSync(file, "utf8")) as SealedFile;
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === "ENOENT") throw new SealError(`${file} is missing; run sealcache init`);
    throw new SealError(`${file} is not a sealed cache key (${code ?? "unparseable"})`);
  }
  if (parsed.format !== 1 || typeof parsed.blob !== "string" || typeof parsed.type !== "string") {
    throw new SealError(`${file} has an unknown format`);
  }
  return { type: parsed.type, blob: new Uint8Array(Buffer.from(parsed.blob, "base64")) };
}
