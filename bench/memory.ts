import path from "node:path";
import { removeDir, tempDir } from "./support/cleanup.js";
import { corpus, label, SIZES, warmCopy } from "./support/corpus.js";
import { secretPath, sleep } from "./support/http.js";
import { runLoad } from "./support/load.js";
import { readMemory } from "./support/procfs.js";
import { saveReply } from "./support/replay.js";
import { emit, note, summarize, target } from "./support/report.js";
import { assertRunning, startBare, startDaemon, startIdleNode, waitServing, type ServerProcess } from "./support/servers.js";
import { fmt, type Column } from "./support/summary.js";
import { providerMemory } from "./provider-memory.js";

const LOOKUPS = 100_000;
/** "A few" clients: the edge agent plus some helpers, all in one client process. */
const CLIENTS = 4;
/** Lets timers and lazy frees after start or load settle before RSS is read. */
const SETTLE_MS = 1_000;
/** The targets for every RSS figure at each size. */
const TARGET_MB: Record<number, number> = { 10000: 64, 100000: 120 };

interface Profile {
  readonly idle: number;
  readonly after: number;
  readonly peak: number;
  /** The anonymous part of `idle` and of `after` (the rest is mostly node's own file pages). */
  readonly idleAnon: number;
  readonly afterAnon: number;
}

/**
 * Daemon RSS with 10,000 and 100,000 cached secrets, restarted from the cache as
 * after a reboot: idle once the first secret is served, after 100,000 lookups
 * spread over every name, and the peak (VmHWM) over the whole process. The floors,
 * in the same run: bare node (an empty event loop) and the bare node:http server
 * through the same lookups. The first sync's own peak is the firstsync bench's.
 * Then what each provider type adds (provider-memory.ts).
 */
export async function memoryBench(): Promise<void> {
  const dir = tempDir();
  try {
    const replyFile = path.join(dir, "bare-reply.json");
    const ours = new Map<number, Profile>();
    for (const size of SIZES) ours.set(size, await daemonAt(size, replyFile));
    const floor = await floors(dir, replyFile);
    for (const [size, p] of ours) report(size, p, floor);
  } finally {
    removeDir(dir);
  }
  await providerMemory();
}

/** The daemon restarted from a copy of the corpus's cache; saves one of its answers for the bare server to replay. */
async function daemonAt(size: number, replyFile: string): Promise<Profile> {
  const fx = warmCopy(await corpus(size));
  const d = startDaemon(fx);
  try {
    const paths = fx.names.map(secretPath);
    await waitServing(d, paths[0]!, { pollMs: 10, timeoutMs: 120_000 });
    const p = await profile(d, paths);
    await saveReply(fx.socket, paths[0]!, replyFile);
    return p;
  } finally {
    await d.stop();
    removeDir(fx.dir);
  }
}

function report(size: number, ours: Profile, floor: Floors): void {
  const tag = label(size);
  const col = tag as Column;
  const limit = TARGET_MB[size]!;
  const figures = [
    ["rss_mb_idle", ours.idle, "RSS idle, restarted from the cache", `${fmt(floor.node, "MB")} bare node, ${fmt(floor.http.idle, "MB")} node:http`],
    ["rss_mb_after_lookups", ours.after, "RSS after 100,000 lookups", `${fmt(floor.http.after, "MB")} node:http, same lookups`],
    ["rss_mb_peak", ours.peak, "RSS peak (VmHWM) of that process", `${fmt(floor.http.peak, "MB")} node:http`],
  ] as const;
  for (const [metric, value, figure, floorText] of figures) {
    emit("memory", `${metric}_${tag}`, value, "MB");
    const met = target("memory", `${metric}_${tag}`, value, "<=", limit);
    summarize(figure, col, { text: fmt(value, "MB"), floor: floorText, target: `${tag} <= ${limit} MB`, met });
  }
  emit("memory", `rss_after_lookups_vs_bare_${tag}`, ours.after / floor.http.after, "ratio");
  emit("memory", `rss_anon_mb_idle_${tag}`, ours.idleAnon, "MB");
  emit("memory", `rss_anon_mb_after_lookups_${tag}`, ours.afterAnon, "MB");
  summarize("RSS idle, anonymous part (the rest is node's own file pages)", col, {
    text: fmt(ours.idleAnon, "MB"),
    floor: `${fmt(floor.nodeAnon, "MB")} bare node`,
  });
}

interface Floors {
  /** Bare node's RSS: an empty event loop; and its anonymous part. */
  readonly node: number;
  readonly nodeAnon: number;
  /** The bare node:http server through the same lookups (over the largest corpus's names; it answers every path alike). */
  readonly http: Profile;
}

async function floors(dir: string, replyFile: string): Promise<Floors> {
  const servers: ServerProcess[] = [];
  try {
    const idle = startIdleNode();
    servers.push(idle);
    const bare = startBare(path.join(dir, "bare.sock"), replyFile);
    servers.push(bare);
    await waitServing(bare, "/", { pollMs: 10, timeoutMs: 10_000 });
    const names = (await corpus(SIZES[SIZES.length - 1]!)).fixture.names;
    const http = await profile(bare, names.map(secretPath));
    assertRunning(idle, "the bare node:http lookups");
    const nodeMem = readMemory(idle.pid);
    const node = nodeMem.rssMb;
    emit("memory", "bare_node_rss_mb", node, "MB");
    emit("memory", "bare_node_rss_anon_mb", nodeMem.anonMb, "MB");
    emit("memory", "bare_rss_mb_idle", http.idle, "MB");
    emit("memory", "bare_rss_mb_after_lookups", http.after, "MB");
    emit("memory", "bare_rss_mb_peak", http.peak, "MB");
    return { node, nodeAnon: nodeMem.anonMb, http };
  } finally {
    await Promise.all(servers.map((s) => s.stop()));
  }
}

/** RSS idle, after the lookups, and the peak, for one server. */
async function profile(s: ServerProcess, paths: readonly string[]): Promise<Profile> {
  await sleep(SETTLE_MS);
  assertRunning(s, "the settle before the lookups");
  const before = readMemory(s.pid);
  const idle = before.rssMb;
  const t0 = performance.now();
  const r = await runLoad({ socket: s.socket, paths, connections: CLIENTS, processes: 1, requests: LOOKUPS });
  assertRunning(s, "the lookups");
  await sleep(SETTLE_MS);
  const m = readMemory(s.pid);
  note(
    `memory: ${s.label} (${paths.length} names): ${r.count} lookups in ${((performance.now() - t0) / 1000).toFixed(1)} s, ${r.errors} errors; RSS idle ${idle.toFixed(1)} MB (anonymous ${before.anonMb.toFixed(1)}, file ${before.fileMb.toFixed(1)}), after ${m.rssMb.toFixed(1)} MB (anonymous ${m.anonMb.toFixed(1)}, file ${m.fileMb.toFixed(1)}), peak ${m.hwmMb.toFixed(1)} MB`,
  );
  return { idle, after: m.rssMb, peak: m.hwmMb, idleAnon: before.anonMb, afterAnon: m.anonMb };
}
