import path from "node:path";
import type { Config } from "../config/schema.js";
import { describeError, isSealError, SealError } from "../errors.js";
import type { Logger } from "../log.js";
import { Envelope } from "../crypto/envelope.js";
import { loadSodium } from "../crypto/sodium.js";
import { createSealer } from "../seal/registry.js";
import type { Sealer, SealerInfo } from "../seal/sealer.js";
import { SecretStore } from "../store/store.js";
import { providerTypes } from "../providers/registry.js";
import { SyncEngine, type ProviderHandle } from "../sync/engine.js";
import { SecretReader } from "../server/reader.js";
import { WatchHub } from "../server/watch.js";
import { Metrics } from "../server/metrics.js";
import { startServer, type SocketServer } from "../server/http.js";
import type { Core } from "../server/routes.js";
import { Policy } from "../policy/policy.js";
import { readAccounts } from "../policy/accounts.js";
import { disableCoreDumps, limitMallocArenas, trimMalloc } from "../../native/libc.js";
import { CACHE_FILE, obtainKek } from "./unlock.js";
import { buildHealth, buildGauges } from "./health.js";
import { inactiveSections } from "./inactive.js";
import { VERSION } from "../version.js";
import { checkAntiRollback } from "./anti-rollback.js";
import { rotateKek } from "./rotate.js";
import type { RollbackCounter } from "../seal/rollback.js";
import { SystemdNotifier, sealedStatus, servingStatus } from "./notify.js";
import { lockDataDir, type DataDirLock } from "./data-dir-lock.js";
import { ensurePrivateDir } from "../seal/permissions.js";

export { CACHE_FILE };

export interface Daemon {
  stop(): Promise<void>;
}

/**
 * The composition root: builds each part from the parsed config, in order, and
 * hands each only what it needs. If the cache key cannot be unsealed the socket
 * still comes up, answering `sealed` with the reason, and unsealing is retried
 * with backoff (a TPM in lockout recovers; an operator fixes a file mode).
 */
export async function startDaemon(config: Config, configFile: string, logger: Logger): Promise<Daemon> {
  const log = logger;
  log.info({ version: VERSION, config: configFile, pid: process.pid }, "starting");
  const notifier = new SystemdNotifier({ logger: log.child({ part: "systemd" }) });
  if (!safely(() => disableCoreDumps())) log.warn("could not mark the process non-dumpable; core dumps may contain secrets (set LimitCORE=0)");
  safely(() => limitMallocArenas());

  const inactive = inactiveSections(config);
  for (const msg of inactive) log.warn(msg);

  const sodium = await loadSodium();
  const policy = new Policy(config.policy, readAccounts(), process.geteuid?.() ?? 0);
  for (const w of policy.warnings) log.warn(w);
  const metrics = new Metrics();
  const watch = new WatchHub();
  const started = performance.now();

  let core: Core | undefined;
  let envelope: Envelope | undefined;
  let sealer: Sealer | undefined;
  let rollback: RollbackCounter | undefined;
  let providers: Map<string, ProviderHandle> | undefined;
  let sealedReason = "unsealing the cache key";
  let sealerInfo: SealerInfo | undefined;
  let stopping = false;
  let retryTimer: NodeJS.Timeout | undefined;
  let attempts = 0;
  let lock: DataDirLock | undefined;

  async function unsealAndBuild(): Promise<void> {
    const seal = log.child({ part: "seal" });
    // Before a byte of data_dir is read: another process holding it is fatal (exit 1),
    // a data_dir that cannot be prepared is a sealed state an operator can fix.
    lock ??= lockOwnDataDir(config.data_dir);
    sealer ??= await createSealer({ dataDir: config.data_dir, seal: config.seal, sodium, logger: seal });
    const kek = await obtainKek(sodium, sealer, config.data_dir, seal);
    sealerInfo = await sealer.describe();
    for (const w of sealerInfo.warnings) seal.warn(w);
    envelope = new Envelope(sodium, kek);
    let store: SecretStore;
    try {
      store = new SecretStore({
        file: path.join(config.data_dir, CACHE_FILE),
        envelope,
        logger: log.child({ part: "store" }),
        audit: { retentionMs: config.audit.retention, maxRows: config.audit.max_rows },
      });
    } catch (e) {
      envelope.destroy();
      envelope = undefined;
      throw e;
    }
    try {
      rollback = await checkAntiRollback({ seal: config.seal, store, dataDir: config.data_dir, logger: seal });
    } catch (e) {
      store.close();
      envelope.destroy();
      envelope = undefined;
      throw e;
    }
    log.info({ secrets: [...store.metas()].length, revision: store.revision }, "cache opened");
    providers = await loadProviders(config, log);
    const sync = new SyncEngine({ onIdle: () => safely(() => (trimMalloc(), true)), store, secrets: config.secrets, providers, sync: config.sync, logger: log.child({ part: "sync" }) });
    const reader = new SecretReader({ store, sync, secrets: config.secrets, maxStale: config.sync.max_stale });
    store.onChange((names) => watch.notify(names));
    core = { reader, sync, store, watch };
    sync.start();
  }

  async function attempt(): Promise<void> {
    try {
      await unsealAndBuild();
      log.info("unsealed; serving");
      notifier.status(servingStatus(Object.keys(config.secrets).length));
    } catch (e) {
      if (!isSealError(e)) throw e;
      attempts++;
      sealedReason = e.message;
      sealerInfo = sealer ? await sealer.describe().catch(() => sealerInfo) : sealerInfo;
      const delay = Math.min(300_000, 5_000 * 2 ** Math.min(attempts - 1, 6));
      log.error({ err: e.message, retry_in_ms: delay }, "cache key could not be unsealed; serving `sealed` until it can");
      notifier.status(sealedStatus(sealedReason));
      if (!stopping) retryTimer = setTimeout(() => void attempt().catch(fatal), delay);
    }
  }

  function fatal(e: unknown): void {
    log.fatal({ err: describeError(e) }, "daemon failed");
    process.exitCode = 1;
    void stop();
  }

  let server: SocketServer | undefined;
  try {
    await attempt();
    server = await startServer({
    socketPath: config.socket,
    logger: log.child({ part: "server" }),
    policy,
    metrics,
    limits: config.server,
    selfUid: process.geteuid?.() ?? 0,
    auditLog: () => core?.store.audit,
    metricNames: config.metrics.secret_names,
    core: () => core,
    sealedReason: () => sealedReason,
    health: () => buildHealth({ core, sealedReason, sealerInfo, inactive, policyWarnings: policy.warnings, started, version: VERSION, secretNames: config.metrics.secret_names }),
    gauges: () => buildGauges(core, config.metrics.secret_names),
    rotateKek: () => rotateInPlace(),
    });
  } catch (e) {
    // Whatever started before the failure (sync timers, the store, the lock) stops
    // now: a daemon that cannot serve must not keep running, let alone writing.
    await stop();
    throw e;
  }
  notifier.ready(core ? servingStatus(Object.keys(config.secrets).length) : sealedStatus(sealedReason));

  /** One rotation at a time; lookups keep being served from the store throughout. */
  let rotating: Promise<{ rewrapped: number; seal: string }> | undefined;
  function rotateInPlace(): Promise<{ rewrapped: number; seal: string }> {
    rotating ??= (async () => {
      if (!core || !sealer || !envelope) throw new SealError(`the cache is sealed: ${sealedReason}`);
      const old = envelope;
      const rewrapped = [...core.store.metas()].length;
      envelope = await rotateKek({ sodium, sealer, dataDir: config.data_dir, store: core.store, logger: log.child({ part: "seal" }), counter: rollback });
      old.destroy();
      return { rewrapped, seal: sealer.type };
    })().finally(() => (rotating = undefined));
    return rotating;
  }

  async function stop(): Promise<void> {
    if (stopping) return;
    stopping = true;
    log.info("stopping");
    notifier.stopping();
    clearTimeout(retryTimer);
    watch.close();
    await server?.close();
    await core?.sync.stop();
    for (const h of providers?.values() ?? []) await h.provider?.close?.().catch((e: unknown) => log.warn({ provider: h.name, err: describeError(e) }, "provider did not close cleanly"));
    core?.store.close();
    envelope?.destroy();
    await sealer?.close?.();
    lock?.release();
    notifier.close();
    log.info("stopped");
  }

  return { stop };
}

/** Loads only the provider types the config uses, each in its own chunk. */
async function loadProviders(config: Config, log: Logger): Promise<Map<string, ProviderHandle>> {
  const used = new Set(Object.values(config.secrets).map((s) => s.provider));
  const out = new Map<string, ProviderHandle>();
  for (const [name, opts] of Object.entries(config.providers)) {
    const type = opts.type as string;
    if (!used.has(name)) {
      out.set(name, { name, type, provider: undefined, inactive: `provider ${name}: no secret uses it` });
      continue;
    }
    // The schema admits only registered types.
    const mod = await providerTypes[type]!.load();
    out.set(name, { name, type, provider: mod.create({ name, options: opts, logger: log.child({ part: "provider", provider: name }) }), inactive: undefined });
  }
  return out;
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

function safely(fn: () => boolean): boolean {
  try {
    return fn();
  } catch {
    return false;
  }
}
