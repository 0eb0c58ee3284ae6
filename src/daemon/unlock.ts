import path from "node:path";
import type { Sodium } from "../crypto/sodium.js";
import { SealError, describeError, isSealError } from "../errors.js";
import { exists } from "../fsutil.js";
import type { Logger } from "../log.js";
import { createKek, hasSealedKek, loadKek } from "../seal/kek.js";
import { ensurePrivateDir } from "../seal/permissions.js";
import type { Sealer } from "../seal/sealer.js";
import { resolvePendingKek } from "./rotate.js";

export const CACHE_FILE = "cache.db";

/**
 * Unseals the KEK (finishing or undoing a rotation a crash interrupted), or
 * creates one on a data dir that has never held a cache. Used by the daemon and
 * by the CLI commands that work on the cache while the daemon is stopped.
 */
export async function obtainKek(sodium: Sodium, sealer: Sealer, dataDir: string, log: Logger): Promise<Uint8Array> {
  try {
    ensurePrivateDir(dataDir);
  } catch (e) {
    throw isSealError(e) ? e : new SealError(`data_dir ${dataDir} cannot be prepared: ${describeError(e)}`);
  }
  const dbFile = path.join(dataDir, CACHE_FILE);
  if (hasSealedKek(dataDir)) {
    const resolved = await resolvePendingKek({ sodium, sealer, dataDir, dbFile, loadCurrent: () => loadKek(sealer, dataDir), logger: log });
    return resolved ?? loadKek(sealer, dataDir);
  }
  if (exists(dbFile)) {
    throw new SealError(`${dataDir}/kek.sealed is missing but ${CACHE_FILE} exists; restore kek.sealed, or move ${CACHE_FILE} away to start an empty cache`);
  }
  log.info({ type: sealer.type }, "no cache key yet; creating and sealing one");
  return createKek(sealer, dataDir);
}
