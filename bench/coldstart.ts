import fs from "node:fs";
import path from "node:path";
import { removeDir } from "./support/cleanup.js";
import { writeFixture, type Fixture } from "./support/fixture.js";
import { get, secretPath } from "./support/http.js";
import { emit, note, target } from "./support/report.js";
import { startBare, startDaemon, waitServing, waitSynced, type ServerProcess } from "./support/servers.js";
import { median, min } from "./support/stats.js";

/** The last coldstart median of this run, for benches that report their share of it. */
export let lastColdstartMedianMs: number | undefined;

const SECRETS = 1_000;
const RUNS = 5;
/** Poll as fast as is meaningful: the figure is only as fine as this interval. */
const POLL_MS = 2;

/**
 * Process start until the first secret is served from an existing cache: what a
 * gateway reboot costs the edge agent. The reference is a trivial node:http server
 * on a Unix socket, started and polled the same way in the same run.
 */
export async function coldstartBench(): Promise<void> {
  const fx = writeFixture(SECRETS);
  try {
    await prepareCache(fx);
    const first = secretPath(fx.names[0]!);
    const bareSocket = path.join(fx.dir, "bare.sock");
    // One untimed start of each, so both find node, the bundle and the cache in the page cache.
    await timeStart(() => startDaemon(fx), first);
    await timeStart(() => startBare(bareSocket), "/");
    const ours: number[] = [];
    const bare: number[] = [];
    for (let i = 0; i < RUNS; i++) {
      bare.push(await timeStart(() => startBare(bareSocket), "/"));
      ours.push(await timeStart(() => startDaemon(fx), first));
    }
    note(`coldstart: daemon runs ${ours.map((v) => v.toFixed(0)).join(", ")} ms; bare node:http runs ${bare.map((v) => v.toFixed(0)).join(", ")} ms`);
    const med = emit("coldstart", "median_ms", median(ours), "ms");
    lastColdstartMedianMs = med;
    emit("coldstart", "min_ms", min(ours), "ms");
    emit("coldstart", "bare_median_ms", median(bare), "ms");
    emit("coldstart", "bare_min_ms", min(bare), "ms");
    emit("coldstart", "coldstart_vs_bare_node", median(ours) / median(bare), "ratio");
    target("coldstart", "median_ms", med, "<=", 400);
  } finally {
    removeDir(fx.dir);
  }
}

/**
 * Fills the cache once, stops the daemon, and moves the secrets folder away: from
 * then on a 200 can only come from the cache, never from a sync at start.
 */
async function prepareCache(fx: Fixture): Promise<void> {
  const d = startDaemon(fx);
  try {
    await waitSynced(d, 60_000);
  } finally {
    await d.stop();
  }
  fs.renameSync(fx.secretsDir, `${fx.secretsDir}.away`);
}

/** Milliseconds from spawn to the first 200 on `urlPath`; the server is stopped after. */
async function timeStart(start: () => ServerProcess, urlPath: string): Promise<number> {
  const t0 = performance.now();
  const s = start();
  try {
    await waitServing(s, urlPath, { pollMs: POLL_MS, timeoutMs: 20_000 });
    const ms = performance.now() - t0;
    await checkFresh(s, urlPath);
    return ms;
  } finally {
    await s.stop();
  }
}

/** A stale answer would mean the daemon tried (and failed) to sync instead of trusting its cache. */
async function checkFresh(s: ServerProcess, urlPath: string): Promise<void> {
  if (!urlPath.startsWith("/v1/secrets/")) return;
  const r = await get(s.socket, urlPath);
  if (r.headers["sealcache-stale"] !== "false") note(`coldstart: WARNING ${urlPath} was served with Sealcache-Stale: ${String(r.headers["sealcache-stale"])}`);
}
