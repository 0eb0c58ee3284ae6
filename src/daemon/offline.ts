import type { Config } from "../config/schema.js";
import { Access } from "../core/access.js";
import { Core } from "../core/core.js";
import { SecretReader } from "../core/reader.js";
import { readAccounts } from "../policy/accounts.js";
import { Policy } from "../policy/policy.js";
import { SyncEngine } from "../sync/engine.js";
import { VERSION } from "../version.js";
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

/**
 * Runs `fn` with the core over the cache, the daemon stopped: the same operations
 * the socket calls (revoke, import, rotate-kek), as the local operator. Nothing
 * is fetched (no provider is loaded); the config decides which names exist.
 */
export async function withOfflineCore<T>(o: { config: Config; logger: Logger; what: string }, fn: (core: Core) => Promise<T>): Promise<T> {
  return withOfflineCache(o, async (cache) => {
    const handles = new Map(
      Object.entries(o.config.providers).map(([name, p]) => [
        name,
        { name, type: String((p as { type: string }).type), provider: undefined, inactive: "the daemon is stopped" },
      ]),
    );
    const sync = new SyncEngine({ store: cache.store, secrets: o.config.secrets, providers: handles, sync: o.config.sync, logger: o.logger });
    const reader = new SecretReader({ store: cache.store, sync, secrets: o.config.secrets, maxStale: o.config.sync.max_stale });
    const policy = new Policy(o.config.policy, readAccounts(), process.geteuid?.() ?? 0);
    const core = new Core({ access: new Access(policy), logger: o.logger, version: VERSION, secretNames: o.config.metrics.secret_names });
    core.serve({ reader, sync, store: cache.store, rotateKek: () => cache.rotateKek() }, cache.seal);
    return fn(core);
  });
}
