import type { Config } from "../config/schema.js";
import { Access } from "../core/access.js";
import { Core } from "../core/core.js";
import { SecretReader } from "../core/reader.js";
import { loadSodium } from "../crypto/sodium.js";
import { describeError } from "../errors.js";
import type { Logger } from "../log.js";
import { readAccounts } from "../policy/accounts.js";
import { Policy } from "../policy/policy.js";
import { providerTypes } from "../providers/registry.js";
import { startServer, type SocketServer } from "../server/http.js";
import { Metrics } from "../server/metrics.js";
import { SyncEngine, type ProviderHandle } from "../sync/engine.js";
import { VERSION } from "../version.js";
import { disableCoreDumps, limitMallocArenas, trimMalloc } from "../../native/libc.js";
import type { SecretStore } from "../store/store.js";
import { systemClock } from "../sync/clock.js";
import { CachePart } from "./cache-part.js";
import { SealedJtiStore, fleetCore } from "./fleet.js";
import { Parts, type Part } from "./lifecycle.js";
import { SystemdNotifier, sealedStatus } from "./notify.js";
import type { OpenCache } from "./open-cache.js";
import { CACHE_FILE } from "./unlock.js";

export { CACHE_FILE };

export interface Daemon {
  stop(): Promise<void>;
}

/**
 * The composition root: builds each part from the parsed config and starts them
 * in order — the socket (answering `sealed: unsealing` at once), then the cache
 * (data_dir's lock, the key, the store), then what needs the cache (providers,
 * sync) — and stops them in reverse. Each part gets only what it needs; the
 * operations every channel calls are the Core's.
 */
export async function startDaemon(config: Config, configFile: string, logger: Logger): Promise<Daemon> {
  const log = logger;
  log.info({ version: VERSION, config: configFile, pid: process.pid }, "starting");
  const notifier = new SystemdNotifier({ logger: log.child({ part: "systemd" }) });
  if (!safely(() => disableCoreDumps())) log.warn("could not mark the process non-dumpable; core dumps may contain secrets (set LimitCORE=0)");
  safely(() => limitMallocArenas());

  const sodium = await loadSodium();
  const policy = new Policy(config.policy, readAccounts(), process.geteuid?.() ?? 0);
  for (const w of policy.warnings) log.warn(w);
  const core = new Core({ access: new Access(policy), logger: log, version: VERSION, secretNames: config.metrics.secret_names });
  const metrics = new Metrics();
  const parts = new Parts(log);
  /** The open cache's store, for the fleet channel's replay memory; undefined while sealed. */
  let openStore: SecretStore | undefined;
  let stopping: Promise<void> | undefined;

  async function stop(): Promise<void> {
    stopping ??= (async () => {
      log.info("stopping");
      notifier.stopping();
      core.stopping();
      const clean = await parts.stopAll();
      notifier.close();
      log.info("stopped");
      if (!clean) throw new Error("a part did not stop cleanly; see the log");
    })();
    return stopping;
  }

  try {
    await parts.start(serverPart({ config, core, metrics, logger: log.child({ part: "server" }) }));
    notifier.ready(sealedStatus("unsealing the cache key"));
    // Before the cache: a gateway that cannot unseal still tells its fleet so.
    if (config.mqtt) await parts.start(await fleetPart(config, core, () => openStore, log));
    await parts.start(
      new CachePart({
        config,
        sodium,
        core,
        logger: log,
        notifier,
        serve: async (cache, inner) => {
          openStore = cache.store;
          await inner.start({ name: "store", start: () => undefined, stop: () => void (openStore = undefined) });
          await serve(config, core, cache, inner, log);
        },
        onFatal: (e) => {
          log.fatal({ err: describeError(e) }, "daemon failed");
          process.exitCode = 1;
          void stop().catch(() => undefined);
        },
      }),
    );
  } catch (e) {
    // Whatever started before the failure stops now: a daemon that cannot serve must not keep running, let alone writing.
    await stop().catch(() => undefined);
    throw e;
  }
  return { stop };
}

/** What needs the open cache, in order: the providers its config uses, then the sync engine; the core serves from them. */
async function serve(config: Config, core: Core, cache: OpenCache, inner: Parts, log: Logger): Promise<void> {
  const providers = new Map<string, ProviderHandle>();
  await inner.start({
    name: "providers",
    start: async () => {
      for (const [k, v] of await loadProviders(config, log)) providers.set(k, v);
    },
    stop: async () => {
      for (const h of providers.values())
        await h.provider?.close?.().catch((e: unknown) => log.warn({ provider: h.name, err: describeError(e) }, "provider did not close cleanly"));
    },
  });
  const store = cache.store;
  const sync = new SyncEngine({
    onIdle: () => safely(() => (trimMalloc(), true)),
    onBatch: () => core.changed(),
    store,
    secrets: config.secrets,
    providers,
    sync: config.sync,
    logger: log.child({ part: "sync" }),
  });
  const reader = new SecretReader({ store, sync, secrets: config.secrets, maxStale: config.sync.max_stale });
  core.serve({ reader, sync, store, rotateKek: () => cache.rotateKek() }, cache.seal);
  await inner.start({ name: "sync", start: () => sync.start(), stop: () => sync.stop() });
}

/** The fleet channel (MQTT), loaded only when the config has an mqtt section; its state goes into /v1/health. */
async function fleetPart(config: Config, core: Core, store: () => SecretStore | undefined, log: Logger): Promise<Part> {
  const { MqttPart } = await import("../mqtt/part.js");
  const mqtt = new MqttPart({
    config: config.mqtt!,
    secretNames: config.metrics.secret_names,
    logger: log.child({ part: "mqtt" }),
    core: fleetCore(core),
    jtis: new SealedJtiStore(store, log.child({ part: "mqtt" })),
    clock: systemClock,
  });
  core.describe("mqtt", () => mqtt.state());
  return { name: "mqtt", start: () => mqtt.start(), stop: () => mqtt.stop() };
}

function serverPart(o: { config: Config; core: Core; metrics: Metrics; logger: Logger }): Part {
  let server: SocketServer | undefined;
  return {
    name: "server",
    start: async () => {
      server = await startServer({
        socketPath: o.config.socket,
        logger: o.logger,
        core: o.core,
        metrics: o.metrics,
        limits: o.config.server,
        selfUid: process.geteuid?.() ?? 0,
        metricNames: o.config.metrics.secret_names,
      });
    },
    stop: () => server?.close(),
  };
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

function safely(fn: () => boolean): boolean {
  try {
    return fn();
  } catch {
    return false;
  }
}
