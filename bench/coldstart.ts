import path from "node:path";
import { removeDir } from "./support/cleanup.js";
import { corpus, label, SIZES, warmCopy } from "./support/corpus.js";
import { get, secretPath } from "./support/http.js";
import { emit, note, summarize, target } from "./support/report.js";
import { startBare, startDaemon, waitServing, type ServerProcess } from "./support/servers.js";
import { median, min } from "./support/stats.js";
import { fmt, type Column } from "./support/summary.js";

/** The 10,000-secret coldstart median of this run, for benches that report their share of it. */
export let lastColdstartMedianMs: number | undefined;

/** Timed starts per size, interleaved with the bare server's; fewer at 100,000, where one start takes seconds today. */
const RUNS: Record<number, number> = { 10000: 5, 100000: 3 };
/** The targets, spawn to the first served secret. */
const TARGET_MS: Record<number, number> = { 10000: 300, 100000: 1_000 };
/** Poll as fast as is meaningful: the figure is only as fine as this interval. */
const POLL_MS = 2;

interface Start {
  /** Spawn to the first HTTP answer of any status (the socket is up; 503 `unsealing` counts). */
  readonly socketMs: number;
  /** Spawn to the first 200 for the secret. */
  readonly servedMs: number;
}

/**
 * Process start until the first secret is served from an existing cache of
 * 10,000 and of 100,000 secrets: what a gateway reboot costs the edge agent. The
 * copy's file provider points at a folder that does not exist, so the 200 can only
 * come from the cache. The reference is a trivial node:http server on a Unix
 * socket, started and polled the same way in the same run (its time to listen).
 */
export async function coldstartBench(): Promise<void> {
  for (const size of SIZES) await atSize(size);
}

async function atSize(size: number): Promise<void> {
  const fx = warmCopy(await corpus(size));
  try {
    const first = secretPath(fx.names[0]!);
    const bareSocket = path.join(fx.dir, "bare.sock");
    // One untimed start of each, so both find node, the bundle and the cache in the page cache.
    await timeStart(() => startDaemon(fx), first);
    await timeStart(() => startBare(bareSocket), "/");
    const ours: Start[] = [];
    const bare: Start[] = [];
    for (let i = 0; i < RUNS[size]!; i++) {
      bare.push(await timeStart(() => startBare(bareSocket), "/"));
      ours.push(await timeStart(() => startDaemon(fx), first));
    }
    const tag = label(size);
    const list = (xs: readonly Start[], k: keyof Start) => xs.map((v) => v[k].toFixed(0)).join(", ");
    note(
      `coldstart ${tag}: daemon to socket ${list(ours, "socketMs")} ms, to the first secret ${list(ours, "servedMs")} ms; bare node:http ${list(bare, "servedMs")} ms`,
    );
    const served = ours.map((s) => s.servedMs);
    const socket = ours.map((s) => s.socketMs);
    const bareMs = bare.map((s) => s.servedMs);
    const med = emit("coldstart", `median_ms_${tag}`, median(served), "ms");
    if (size === 10_000) lastColdstartMedianMs = med;
    emit("coldstart", `min_ms_${tag}`, min(served), "ms");
    const sock = emit("coldstart", `socket_median_ms_${tag}`, median(socket), "ms");
    const bareMed = emit("coldstart", `bare_median_ms_${tag}`, median(bareMs), "ms");
    emit("coldstart", `bare_min_ms_${tag}`, min(bareMs), "ms");
    emit("coldstart", `coldstart_vs_bare_node_${tag}`, med / bareMed, "ratio");
    const limit = TARGET_MS[size]!;
    const col = tag as Column;
    const met = target("coldstart", `median_ms_${tag}`, med, "<=", limit);
    summarize("cold start, spawn to the first served secret (median)", col, {
      text: fmt(med, "ms"),
      floor: `${fmt(bareMed, "ms")} to listen`,
      target: `${tag} <= ${fmt(limit, "ms")}`,
      met,
    });
    summarize("cold start, spawn to the socket answering (median)", col, { text: fmt(sock, "ms"), floor: `${fmt(bareMed, "ms")} to listen` });
  } finally {
    removeDir(fx.dir);
  }
}

/** Spawn to the first answer and to the first 200 on `urlPath`; the server is stopped after. */
async function timeStart(start: () => ServerProcess, urlPath: string): Promise<Start> {
  const t0 = performance.now();
  const s = start();
  try {
    const r = await waitServing(s, urlPath, { pollMs: POLL_MS, timeoutMs: 60_000 });
    await checkFresh(s, urlPath);
    return { socketMs: r.answeredAt - t0, servedMs: r.servedAt - t0 };
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
