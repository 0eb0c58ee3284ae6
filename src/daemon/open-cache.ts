import path from "node:path";
import type { Config } from "../config/schema.js";
import { Envelope } from "../crypto/envelope.js";
import type { Sodium } from "../crypto/sodium.js";
import type { Logger } from "../log.js";
import type { RollbackCounter } from "../seal/rollback.js";
import type { Sealer, SealerInfo } from "../seal/sealer.js";
import { SecretStore } from "../store/store.js";
import { checkAntiRollback } from "./anti-rollback.js";
import { rotateKek } from "./rotate.js";
import { CACHE_FILE, obtainKek } from "./unlock.js";

/** The cache, open: the store over the unsealed key, with the key's seal and anti-rollback counter. */
export interface OpenCache {
  readonly store: SecretStore;
  readonly seal: SealerInfo;
  /** One rotation at a time; lookups keep being served from the store throughout. */
  rotateKek(): Promise<{ rewrapped: number; seal: string }>;
  /** Closes the store and destroys the key in memory, together. */
  close(): void;
}

/**
 * Opens the cache: unseals the key (finishing or undoing an interrupted rotation),
 * opens the store under it and checks the anti-rollback counter. The envelope
 * (the key in memory), the store and the counter are owned here and closed
 * together. Shared by the daemon and the CLI commands that work on the cache with
 * the daemon stopped. Throws SealError when the key cannot be unsealed or the
 * cache is refused; nothing is left open then.
 */
export async function openCache(o: { config: Config; sodium: Sodium; sealer: Sealer; logger: Logger }): Promise<OpenCache> {
  const { config, sodium, sealer } = o;
  const seal = o.logger.child({ part: "seal" });
  const kek = await obtainKek(sodium, sealer, config.data_dir, seal);
  const info = await sealer.describe();
  let envelope = new Envelope(sodium, kek);
  let store: SecretStore | undefined;
  let counter: RollbackCounter | undefined;
  try {
    store = new SecretStore({
      file: path.join(config.data_dir, CACHE_FILE),
      envelope,
      logger: o.logger.child({ part: "store" }),
      audit: { retentionMs: config.audit.retention, maxRows: config.audit.max_rows },
      // A confirmation is recorded at most this late: after a restart a value looks at
      // most that much older than it is, which must stay well inside max_stale.
      confirmWriteMs: config.sync.max_stale > 0 ? Math.min(3_600_000, Math.floor(config.sync.max_stale / 4)) : 3_600_000,
    });
    counter = await checkAntiRollback({ seal: config.seal, store, dataDir: config.data_dir, logger: seal });
  } catch (e) {
    store?.close();
    envelope.destroy();
    throw e;
  }
  const open = store;
  let rotating: Promise<{ rewrapped: number; seal: string }> | undefined;
  return {
    store: open,
    seal: info,
    rotateKek() {
      rotating ??= (async () => {
        const old = envelope;
        const rewrapped = [...open.metas()].length;
        envelope = await rotateKek({ sodium, sealer, dataDir: config.data_dir, store: open, logger: seal, counter });
        old.destroy();
        return { rewrapped, seal: sealer.type };
      })().finally(() => (rotating = undefined));
      return rotating;
    },
    close() {
      open.close();
      envelope.destroy();
    },
  };
}
