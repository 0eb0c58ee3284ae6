import type { Config } from "../config/schema.js";
import type { Core } from "../core/core.js";
import type { Sodium } from "../crypto/sodium.js";
import { SealError, describeError, isSealError } from "../errors.js";
import type { Logger } from "../log.js";
import { ensurePrivateDir } from "../seal/permissions.js";
import { createSealer } from "../seal/registry.js";
import type { Sealer } from "../seal/sealer.js";
import { lockDataDir, type DataDirLock } from "./data-dir-lock.js";
import { Parts, type Part } from "./lifecycle.js";
import type { SystemdNotifier } from "./notify.js";
import { sealedStatus, servingStatus } from "./notify.js";
import { openCache, type OpenCache } from "./open-cache.js";

export interface CachePartOptions {
  readonly config: Config;
  readonly sodium: Sodium;
  readonly core: Core;
  readonly logger: Logger;
  readonly notifier: SystemdNotifier;
  /**
   * Starts what needs the open cache (providers, sync, the fleet channel) through
   * `parts`, and hands the core what it serves from.
   */
  serve(cache: OpenCache, parts: Parts): Promise<void>;
  /** A retry failed for a reason other than the seal: the daemon must stop. */
  onFatal(e: unknown): void;
}

/** Unseal retries back off from 5 s to 5 min: a TPM lockout clears, an operator fixes a mode. */
const RETRY_MIN_MS = 5_000;
const RETRY_MAX_MS = 300_000;

/**
 * The cache as a part of the daemon: takes data_dir's lock, unseals the key and
 * opens the store, then starts the parts that need them. The socket is already
 * up meanwhile, answering `sealed` with the reason. When the key cannot be
 * unsealed the daemon stays up sealed and retries with backoff; anything else
 * (data_dir held by another process, a part failing to start) stops it.
 */
export class CachePart implements Part {
  readonly name = "cache";
  readonly #o: CachePartOptions;
  readonly #log: Logger;
  readonly #inner: Parts;
  #lock: DataDirLock | undefined;
  #sealer: Sealer | undefined;
  #cache: OpenCache | undefined;
  #timer: NodeJS.Timeout | undefined;
  #attempts = 0;
  #stopped = false;

  constructor(o: CachePartOptions) {
    this.#o = o;
    this.#log = o.logger.child({ part: "seal" });
    this.#inner = new Parts(o.logger);
  }

  /** The first attempt; later ones run on their own timer. */
  async start(): Promise<void> {
    try {
      await this.#attempt();
    } catch (e) {
      await this.stop();
      throw e;
    }
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    clearTimeout(this.#timer);
    await this.#inner.stopAll();
    this.#cache?.close();
    this.#cache = undefined;
    await this.#sealer?.close?.();
    this.#lock?.release();
  }

  async #attempt(): Promise<void> {
    const { config } = this.#o;
    try {
      // Before a byte of data_dir is read: another process holding it is fatal (exit 1),
      // a data_dir that cannot be prepared is a sealed state an operator can fix.
      this.#lock ??= lockOwnDataDir(config.data_dir);
      this.#sealer ??= await createSealer({ dataDir: config.data_dir, seal: config.seal, sodium: this.#o.sodium, logger: this.#log });
      this.#cache = await openCache({ config, sodium: this.#o.sodium, sealer: this.#sealer, logger: this.#o.logger });
    } catch (e) {
      if (!isSealError(e)) throw e;
      await this.#sealed(e);
      return;
    }
    const cache = this.#cache;
    for (const w of cache.seal.warnings) this.#log.warn(w);
    this.#o.logger.info({ secrets: [...cache.store.metas()].length, revision: cache.store.revision }, "cache opened");
    await this.#o.serve(cache, this.#inner);
    this.#o.logger.info("unsealed; serving");
    this.#o.notifier.status(servingStatus(Object.keys(config.secrets).length));
  }

  async #sealed(e: SealError): Promise<void> {
    this.#attempts++;
    const info = this.#sealer ? await this.#sealer.describe().catch(() => undefined) : undefined;
    this.#o.core.sealed(e.message, info);
    const delay = Math.min(RETRY_MAX_MS, RETRY_MIN_MS * 2 ** Math.min(this.#attempts - 1, 6));
    this.#log.error({ err: e.message, retry_in_ms: delay }, "cache key could not be unsealed; serving `sealed` until it can");
    this.#o.notifier.status(sealedStatus(e.message));
    if (this.#stopped) return;
    this.#timer = setTimeout(() => {
      this.#attempt().catch((err: unknown) => this.#o.onFatal(err));
    }, delay);
  }
}

/** data_dir prepared (0700, ours) and locked for this process's life; see lockDataDir. */
function lockOwnDataDir(dataDir: string): DataDirLock {
  try {
    ensurePrivateDir(dataDir);
  } catch (e) {
    throw isSealError(e) ? e : new SealError(`data_dir ${dataDir} cannot be prepared: ${describeError(e)}`);
  }
  return lockDataDir(dataDir, "starting the daemon");
}
