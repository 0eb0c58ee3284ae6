import fs from "node:fs";
import { parse, stringify } from "yaml";
import { clientAs, crossUserUnavailable, ensureTestAccounts, installClient, shareWithGroup, type Account } from "../test/support/users.js";
import { removeDir } from "./support/cleanup.js";
import { writeFixture } from "./support/fixture.js";
import { secretPath } from "./support/http.js";
import { emit, note, target } from "./support/report.js";
import { assertRunning, startDaemon, waitSynced } from "./support/servers.js";
import { readCpuMs } from "./support/procfs.js";
import { percentile } from "./support/stats.js";

const SECRETS = 100;
const MEASURE_MS = 8_000;
/** The allowed client's pace: ~70 lookups/s on one keep-alive connection, inside the default 100/s per uid. */
const PAUSE_MS = 10;
/** Twice the default per-uid connection cap: half the flood's connections are refused and reconnect, over and over. */
const FLOOD_CONNECTIONS = 20;

interface Loop {
  statuses: Record<string, number>;
  latencies: number[];
}

interface Flood {
  readonly name: string;
  readonly answers: { statuses: Record<string, number>; connects?: number };
  readonly flooded: Loop;
  /** Share of one core the daemon used while the client was measured. */
  readonly daemonCpu: number;
}

/** Runs `fn` and returns its result with the share of one core `pid` used meanwhile. */
async function withCpu<T>(pid: number, fn: () => Promise<T>): Promise<[T, number]> {
  const cpu0 = readCpuMs(pid);
  const t0 = performance.now();
  const r = await fn();
  return [r, (readCpuMs(pid) - cpu0) / (performance.now() - t0)];
}

/**
 * Two floods from the second uid: a client that retries as fast as it is answered
 * on twice its share of keep-alive connections, and a hostile one keeping 64
 * pipelined requests in flight on each of its connections regardless of the answers.
 */
const FLOODS = [
  { name: "keepalive", job: { op: "flood", connections: FLOOD_CONNECTIONS } },
  { name: "pipelined", job: { op: "pipeflood", connections: FLOOD_CONNECTIONS, depth: 64 } },
] as const;

/**
 * An allowed client's lookup latency while a second uid floods the socket, against
 * the same client alone, in the same run. Both run as other accounts (test users,
 * setpriv) under the default server limits, so the flood meets the per-uid
 * connection cap and rate limit as it would on a gateway.
 */
export async function contentionBench(): Promise<void> {
  const why = crossUserUnavailable();
  if (why) {
    note(`contention: skipped: ${why} (the flood must come from another uid than the measured client)`);
    return;
  }
  const acct = ensureTestAccounts();
  const fx = writeFixture(SECRETS);
  try {
    const config = parse(fs.readFileSync(fx.configFile, "utf8")) as Record<string, unknown>;
    config.policy = [
      { match: { group: acct.group.name }, allow: ["bench/**"] },
      { match: { uid: 0 }, allow: ["**"], admin: true },
    ];
    fs.writeFileSync(fx.configFile, stringify(config));
    const daemon = startDaemon(fx);
    try {
      await waitSynced(daemon, 60_000);
      shareWithGroup(fx.dir, fx.socket, acct.group.gid);
      const client = installClient(fx.dir);
      const paths = fx.names.map(secretPath);
      const node = fs.realpathSync(process.execPath);
      const loop = (a: Account) => clientAs<Loop>(a, node, client, { op: "loop", socket: fx.socket, paths, durationMs: MEASURE_MS, pauseMs: PAUSE_MS }, { timeoutMs: MEASURE_MS + 30_000 });

      await clientAs(acct.a, node, client, { op: "loop", socket: fx.socket, paths, durationMs: 1_000, pauseMs: PAUSE_MS }); // warm-up
      const [alone, aloneCpu] = await withCpu(daemon.pid, () => loop(acct.a));
      assertRunning(daemon, "the contention baseline");
      const floods: Flood[] = [];
      for (const f of FLOODS) {
        const [answers, [flooded, daemonCpu]] = await Promise.all([
          clientAs<{ statuses: Record<string, number>; connects?: number }>(acct.b, node, client, { ...f.job, socket: fx.socket, path: paths[0], durationMs: MEASURE_MS + 1_500 }, { timeoutMs: MEASURE_MS + 30_000 }),
          new Promise((r) => setTimeout(r, 500)).then(() => withCpu(daemon.pid, () => loop(acct.a))),
        ]);
        assertRunning(daemon, `the ${f.name} flood`);
        floods.push({ name: f.name, answers, flooded, daemonCpu });
        await new Promise((r) => setTimeout(r, 1_500)); // the flooder's bucket refills between runs
      }
      report(alone, aloneCpu, floods);
    } finally {
      await daemon.stop();
    }
  } finally {
    removeDir(fx.dir);
  }
}

function report(alone: Loop, aloneCpu: number, floods: readonly Flood[]): void {
  const sorted = (l: Loop) => Float64Array.from(l.latencies).sort();
  const a = sorted(alone);
  const notOk = (l: Loop) => Object.entries(l.statuses).filter(([s]) => s !== "200").reduce((n, [, c]) => n + c, 0);
  note(`contention: client alone: ${a.length} lookups ${JSON.stringify(alone.statuses)}`);
  emit("contention", "p50_ms_alone", percentile(a, 50), "ms");
  const p99Alone = emit("contention", "p99_ms_alone", percentile(a, 99), "ms");
  emit("contention", "daemon_cpu_share_alone", aloneCpu, "ratio");
  for (const { name, answers, flooded, daemonCpu } of floods) {
    const f = sorted(flooded);
    const total = Object.values(answers.statuses).reduce((x, y) => x + y, 0);
    note(`contention: ${name} flood: client ${f.length} lookups ${JSON.stringify(flooded.statuses)}; flood answers ${JSON.stringify(answers.statuses)}${answers.connects ? ` over ${answers.connects} connections` : ""}`);
    if (notOk(flooded) + notOk(alone) > 0) note(`contention: WARNING the measured client got ${notOk(flooded) + notOk(alone)} answers other than 200`);
    emit("contention", `p50_ms_${name}`, percentile(f, 50), "ms");
    const p99 = emit("contention", `p99_ms_${name}`, percentile(f, 99), "ms");
    emit("contention", `max_ms_${name}`, f[f.length - 1] ?? NaN, "ms");
    const ratio = emit("contention", `p99_${name}_vs_alone`, p99 / p99Alone, "ratio");
    emit("contention", `flood_answers_rps_${name}`, total / ((MEASURE_MS + 1_500) / 1000), "req/s");
    emit("contention", `flood_refused_share_${name}`, total > 0 ? (total - (answers.statuses["200"] ?? 0)) / total : NaN, "ratio");
    emit("contention", `daemon_cpu_share_${name}`, daemonCpu, "ratio");
    target("contention", `p99_${name}_vs_alone`, ratio, "<=", 3);
  }
}
