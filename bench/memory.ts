import path from "node:path";
import { removeDir } from "./support/cleanup.js";
import { writeFixture } from "./support/fixture.js";
import { secretPath, sleep } from "./support/http.js";
import { runLoad } from "./support/load.js";
import { readMemory } from "./support/procfs.js";
import { saveReply } from "./support/replay.js";
import { emit, note, target } from "./support/report.js";
import { assertRunning, startBare, startDaemon, waitServing, waitSynced, type ServerProcess } from "./support/servers.js";
import { providerMemory } from "./provider-memory.js";

const SECRETS = 10_000;
const LOOKUPS = 100_000;
/** "A few" clients: the edge agent plus some helpers, all in one client process. */
const CLIENTS = 4;
/** Lets timers and lazy frees after sync or load settle before RSS is read. */
const SETTLE_MS = 1_000;

/**
 * Daemon RSS with 10,000 cached secrets: idle after the first sync, after 100,000
 * lookups spread over every name, and the peak (VmHWM) over the whole run. The
 * bare node:http server goes through the same lookups as the baseline. Then what
 * each provider type adds (provider-memory.ts).
 */
export async function memoryBench(): Promise<void> {
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
  await providerMemory();
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
