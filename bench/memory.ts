import fs from "node:fs";
import path from "node:path";
import { stringify } from "yaml";
import { ONE_SECRET_BACKENDS } from "./support/backends.js";
import { removeDir, tempDir } from "./support/cleanup.js";
import { writeFixture } from "./support/fixture.js";
import { get, secretPath, sleep } from "./support/http.js";
import { runLoad } from "./support/load.js";
import { readMemory } from "./support/procfs.js";
import { saveReply } from "./support/replay.js";
import { emit, note, target } from "./support/report.js";
import { assertRunning, startBare, startDaemon, waitServing, waitSynced, type ServerProcess } from "./support/servers.js";

const SECRETS = 10_000;
const LOOKUPS = 100_000;
/** "A few" clients: the edge agent plus some helpers, all in one client process. */
const CLIENTS = 4;
/** Lets timers and lazy frees after sync or load settle before RSS is read. */
const SETTLE_MS = 1_000;
/** Runs per provider type for the one-secret figures (the median is reported). */
const TYPE_RUNS = 3;

/**
 * Daemon RSS with 10,000 cached secrets: idle after the first sync, after 100,000
 * lookups spread over every name, and the peak (VmHWM) over the whole run. The
 * bare node:http server goes through the same lookups as the baseline.
 */
export async function memoryBench(): Promise<void> {
  await perProviderType();
  const fx = writeFixture(SECRETS);
  const servers: ServerProcess[] = [];
  try {
    const paths = fx.names.map(secretPath);
    const daemon = startDaemon(fx);
    servers.push(daemon);
    const t0 = performance.now();
    await waitSynced(daemon, 120_000);
    emit("memory", "sync_s_10k", (performance.now() - t0) / 1000, "s");
    const ours = await profile(daemon, paths);
    emit("memory", "rss_mb_idle", ours.idle, "MB");
    emit("memory", "rss_mb_after_lookups", ours.after, "MB");
    const peak = emit("memory", "rss_mb_peak", ours.peak, "MB");
    target("memory", "rss_mb_peak", peak, "<=", 80);

    const reply = await saveReply(fx.socket, paths[0]!, path.join(fx.dir, "bare-reply.json"));
    const bare = startBare(path.join(fx.dir, "bare.sock"), reply);
    servers.push(bare);
    await waitServing(bare, "/", { pollMs: 10, timeoutMs: 10_000 });
    const base = await profile(bare, paths);
    emit("memory", "bare_rss_mb_idle", base.idle, "MB");
    emit("memory", "bare_rss_mb_after_lookups", base.after, "MB");
    emit("memory", "bare_rss_mb_peak", base.peak, "MB");
    emit("memory", "rss_after_lookups_vs_bare", ours.after / base.after, "ratio");
  } finally {
    await Promise.all(servers.map((s) => s.stop()));
    removeDir(fx.dir);
  }
}

/** RSS idle, after the lookups, and the peak, for one server. */
async function profile(s: ServerProcess, paths: readonly string[]): Promise<{ idle: number; after: number; peak: number }> {
  await sleep(SETTLE_MS);
  assertRunning(s, "the settle before the lookups");
  const idle = readMemory(s.pid).rssMb;
  const t0 = performance.now();
  const r = await runLoad({ socket: s.socket, paths, connections: CLIENTS, processes: 1, requests: LOOKUPS });
  assertRunning(s, "the lookups");
  note(`memory: ${s.label}: ${r.count} lookups in ${((performance.now() - t0) / 1000).toFixed(1)} s, ${r.errors} errors`);
  await sleep(SETTLE_MS);
  const m = readMemory(s.pid);
  return { idle, after: m.rssMb, peak: m.hwmMb };
}

/**
 * What loading a backend costs: a daemon with one secret of each provider type
 * (against the local test servers), from spawn until the secret is synced
 * (`start_ms_<type>`: the provider's chunk loaded, its SDK set up, one fetch),
 * and its RSS once settled (`rss_mb_<type>`); the median of TYPE_RUNS cold
 * starts each, and the difference from the file provider (`*_over_file`).
 */
async function perProviderType(): Promise<void> {
  const figures = new Map<string, { startMs: number; rssMb: number }>();
  for (const [type, setup] of Object.entries(ONE_SECRET_BACKENDS)) {
    const starts: number[] = [];
    const rss: number[] = [];
    for (let run = 0; run < TYPE_RUNS; run++) {
      const dir = tempDir();
      const backend = await setup(dir);
      const socket = path.join(dir, "s.sock");
      const configFile = path.join(dir, "sealcache.yaml");
      const config = { data_dir: path.join(dir, "data"), socket, seal: { type: "host" }, sync: { interval: "1h" }, providers: backend.providers, secrets: { "bench/s": backend.secret }, log: { level: "warn" } };
      fs.writeFileSync(configFile, stringify(config));
      const t0 = performance.now();
      const d = startDaemon({ dir, configFile, socket, secretsDir: dir, names: [] });
      try {
        await waitOneSynced(d);
        starts.push(performance.now() - t0);
        await sleep(SETTLE_MS);
        assertRunning(d, `the ${type} settle`);
        rss.push(readMemory(d.pid).rssMb);
      } finally {
        await d.stop();
        await backend.stop();
        removeDir(dir);
      }
    }
    const f = { startMs: median(starts), rssMb: median(rss) };
    figures.set(type, f);
    emit("memory", `start_ms_${type}`, f.startMs, "ms");
    emit("memory", `rss_mb_${type}`, f.rssMb, "MB");
  }
  const file = figures.get("file")!;
  for (const [type, f] of figures) {
    if (type === "file") continue;
    emit("memory", `start_ms_${type}_over_file`, f.startMs - file.startMs, "ms");
    emit("memory", `rss_mb_${type}_over_file`, f.rssMb - file.rssMb, "MB");
  }
}

/** Health polled every 10 ms until the one secret is synced (waitSynced's 250 ms is too coarse for a start time). */
async function waitOneSynced(s: ServerProcess): Promise<void> {
  const until = performance.now() + 30_000;
  for (;;) {
    assertRunning(s, "start-up");
    try {
      const r = await get(s.socket, "/v1/health");
      const c = (JSON.parse(r.body) as { secrets?: { total: number; not_synced: number } }).secrets;
      if (c && c.total > 0 && c.not_synced === 0) return;
    } catch {
      /* not listening yet */
    }
    if (performance.now() > until) throw new Error(`${s.label} did not sync its one secret within 30 s:\n${s.output()}`);
    await sleep(10);
  }
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)]!;
}
