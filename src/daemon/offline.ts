import type { Config } from "../config/schema.js";
import { loadSodium } from "../crypto/sodium.js";
import type { Logger } from "../log.js";
import { ensurePrivateDir } from "../seal/permissions.js";
import { createSealer } from "../seal/registry.js";
import { lockDataDir } from "./data-dir-lock.js";
import { openCache, type OpenCache } from "./open-cache.js";

/**
 * Runs `fn` on the cache with the daemon stopped (a CLI command as the local
 * operator): data_dir locked first (a daemon starting up, or another such
 * command, holds it: refused, naming the pid), the cache opened as the daemon
 * opens it, and everything closed after, whatever `fn` does.
 */
export async function withOfflineCache<T>(o: { config: Config; logger: Logger; what: string }, fn: (cache: OpenCache) => Promise<T>): Promise<T> {
  ensurePrivateDir(o.config.data_dir);
  const lock = lockDataDir(o.config.data_dir, o.what);
  try {
    const sodium = await loadSodium();
    const sealer = await createSealer({ dataDir: o.config.data_dir, seal: o.config.seal, sodium, logger: o.logger });
    try {
      const cache = await openCache({ config: o.config, sodium, sealer, logger: o.logger });
      try {
        return await fn(cache);
      } finally {
        cache.close();
      }
    } finally {
      await sealer.close?.();
    }
  } finally {
    lock.release();
  }
}
