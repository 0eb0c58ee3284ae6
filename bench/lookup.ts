import path from "node:path";
import { removeDir } from "./support/cleanup.js";
import { writeFixture } from "./support/fixture.js";
import { secretPath } from "./support/http.js";
import { runLoad, type LoadResult } from "./support/load.js";
import { emit, note, target } from "./support/report.js";
import { assertRunning, startBare, startDaemon, waitServing, waitSynced, type ServerProcess } from "./support/servers.js";
import { saveReply } from "./support/replay.js";
import { percentile } from "./support/stats.js";

const SECRETS = 1_000;
const WARMUP_MS = 1_000;
const MEASURE_MS = 5_000;
/**
 * Client processes per configuration. 16 clients run as 2 processes of 8
 * connections: on a 2-core gateway 16 node processes would mostly measure the
 * scheduler, and a single process is more easily the limit itself.
 */
const LAYOUTS = [
  { clients: 1, processes: 1 },
  { clients: 16, processes: 2 },
] as const;
/** Below this share of one core the baseline server was waiting for its clients. */
const SATURATED = 0.8;

/**
 * GET /v1/secrets/{name} throughput and latency, against a bare node:http server
 * that writes the same bytes, with the same client processes, in the same run.
 */
export async function lookupBench(): Promise<void> {
  const fx = writeFixture(SECRETS);
  const servers: ServerProcess[] = [];
  try {
    const daemon = startDaemon(fx);
    servers.push(daemon);
    await waitSynced(daemon, 60_000);
    const reply = await saveReply(fx.socket, secretPath(fx.names[0]!), path.join(fx.dir, "bare-reply.json"));
    const bare = startBare(path.join(fx.dir, "bare.sock"), reply);
    servers.push(bare);
    await waitServing(bare, "/", { pollMs: 10, timeoutMs: 10_000 });

    const paths = fx.names.map(secretPath);
    for (const { clients, processes } of LAYOUTS) {
      // The baseline first, then the daemon, back to back, so drift on the box hits both alike.
      const base = await measure(bare, paths, clients, processes);
      const ours = await measure(daemon, paths, clients, processes);
      report(clients, ours, base);
    }
  } finally {
    await Promise.all(servers.map((s) => s.stop()));
    removeDir(fx.dir);
  }
}

async function measure(s: ServerProcess, paths: readonly string[], clients: number, processes: number): Promise<LoadResult> {
  const r = await runLoad({ socket: s.socket, paths, connections: clients, processes, warmupMs: WARMUP_MS, durationMs: MEASURE_MS, serverPid: s.pid });
  assertRunning(s, `the ${clients}-client lookup run`);
  const busy = serverBusy(r);
  note(`lookup: ${s.label}, ${clients} client(s) in ${Math.min(processes, clients)} process(es): ${Math.round(r.rps)} req/s, ${r.count} requests, ${r.errors} errors, server busy ${(busy * 100).toFixed(0)}% of a core`);
  if (r.errors > 0) note(`lookup: WARNING ${r.errors} of ${r.count} requests to ${s.label} did not answer 200`);
  return r;
}

/** Share of one core the server used while measured. */
function serverBusy(r: LoadResult): number {
  return (r.serverCpuUsPerReq * r.rps) / 1e6;
}

function report(clients: number, ours: LoadResult, base: LoadResult): void {
  const tag = `${clients}c`;
  const ms = (us: number) => us / 1000;
  emit("lookup", `rps_${tag}`, ours.rps, "req/s");
  emit("lookup", `p50_ms_${tag}`, ms(percentile(ours.latenciesUs, 50)), "ms");
  const p99 = emit("lookup", `p99_ms_${tag}`, ms(percentile(ours.latenciesUs, 99)), "ms");
  emit("lookup", `bare_rps_${tag}`, base.rps, "req/s");
  emit("lookup", `bare_p50_ms_${tag}`, ms(percentile(base.latenciesUs, 50)), "ms");
  emit("lookup", `bare_p99_ms_${tag}`, ms(percentile(base.latenciesUs, 99)), "ms");
  emit("lookup", `cpu_us_per_req_${tag}`, ours.serverCpuUsPerReq, "us");
  emit("lookup", `bare_cpu_us_per_req_${tag}`, base.serverCpuUsPerReq, "us");
  const ratio = emit("lookup", `lookup_vs_bare_http_${tag}`, ours.rps / base.rps, "ratio");
  emit("lookup", `cpu_per_req_vs_bare_http_${tag}`, ours.serverCpuUsPerReq / base.serverCpuUsPerReq, "ratio");
  if (serverBusy(base) < SATURATED) {
    note(`lookup: the bare server used only ${(serverBusy(base) * 100).toFixed(0)}% of a core at ${tag}: the clients (or other load on the box) were the limit, so lookup_vs_bare_http_${tag} flatters the daemon; cpu_per_req_vs_bare_http_${tag} does not depend on that`);
  }
  if (clients === 16) target("lookup", `lookup_vs_bare_http_${tag}`, ratio, ">=", 0.7);
  target("lookup", `p99_ms_${tag}`, p99, "<=", 2);
}
