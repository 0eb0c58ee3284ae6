import { fork, type ChildProcess } from "node:child_process";
import path from "node:path";
import { track } from "./cleanup.js";
import { readCpuMs } from "./procfs.js";
import type { FromWorker, ToWorker, WorkerJob, WorkerResult } from "./protocol.js";
import { ROOT } from "./servers.js";

const CLIENT = path.join(ROOT, "bench/support/client.ts");

export interface LoadSpec {
  readonly socket: string;
  readonly paths: readonly string[];
  /** Concurrent keep-alive clients in all. */
  readonly connections: number;
  /** Client processes the connections are spread over. */
  readonly processes: number;
  readonly warmupMs?: number;
  /** Time mode: measure this long, after the warm-up, in every process at once. */
  readonly durationMs?: number;
  /** Count mode: this many requests in all. */
  readonly requests?: number;
  /** When set, the server's CPU time over the measuring window is reported too. */
  readonly serverPid?: number;
}

export interface LoadResult {
  readonly count: number;
  readonly errors: number;
  readonly rps: number;
  /** Every measured request's latency, ascending. */
  readonly latenciesUs: Float64Array;
  /**
   * Server CPU time per measured request, in microseconds (NaN without serverPid).
   * Unlike req/s it does not depend on whether the client or a neighbour on the box
   * held the CPU, so it is the steadier figure for comparing two servers.
   */
  readonly serverCpuUsPerReq: number;
}

/**
 * Runs one load configuration: forks the client processes, waits until each has
 * its connections open, starts them all with one "go", and merges what they
 * measured. Throughput in time mode is counted over the common measuring window.
 */
export async function runLoad(spec: LoadSpec): Promise<LoadResult> {
  const procs = Math.max(1, Math.min(spec.processes, spec.connections));
  const workers = Array.from({ length: procs }, () => startWorker());
  try {
    await Promise.all(workers.map((w) => expect(w, "hello")));
    const ready = workers.map((w) => expect(w, "ready"));
    for (const [i, w] of workers.entries()) post(w, { type: "job", job: jobFor(spec, i, procs) });
    await Promise.all(ready);
    const results = workers.map((w) => expect(w, "result"));
    const started = performance.now();
    const cpu = cpuWindow(spec);
    for (const w of workers) post(w, { type: "go" });
    const done = await Promise.all(results);
    const cpuMs = await cpu();
    const timeMode = spec.requests === undefined;
    return merge(done, timeMode ? (spec.durationMs ?? 0) : performance.now() - started, cpuMs);
  } finally {
    for (const w of workers) if (w.exitCode === null && w.signalCode === null) w.kill("SIGKILL");
  }
}

/** Splits connections and requests as evenly as they go; offsets spread workers over the names. */
function jobFor(spec: LoadSpec, i: number, procs: number): WorkerJob {
  const share = (total: number) => Math.floor(total / procs) + (i < total % procs ? 1 : 0);
  return {
    socket: spec.socket,
    paths: spec.paths,
    offset: Math.floor((i * spec.paths.length) / procs),
    connections: share(spec.connections),
    warmupMs: spec.warmupMs ?? 0,
    durationMs: spec.durationMs,
    requests: spec.requests === undefined ? undefined : share(spec.requests),
  };
}

/**
 * Samples the server's CPU time at the edges of the measuring window: in time mode
 * by timers matching the clients' warm-up and duration, in count mode from "go"
 * until the results are in. Returns a function that resolves the CPU ms used.
 */
function cpuWindow(spec: LoadSpec): () => Promise<number> {
  const pid = spec.serverPid;
  if (pid === undefined) return async () => NaN;
  // A server that died mid-run has no /proc entry; the caller reports that, not us.
  const sample = () => {
    try {
      return readCpuMs(pid);
    } catch {
      return NaN;
    }
  };
  if (spec.requests !== undefined) {
    const from = sample();
    return async () => sample() - from;
  }
  const at = (ms: number) => new Promise<number>((resolve) => setTimeout(() => resolve(sample()), ms));
  const warm = spec.warmupMs ?? 0;
  const from = at(warm);
  const to = at(warm + (spec.durationMs ?? 0));
  return async () => (await to) - (await from);
}

function merge(results: WorkerResult[], windowMs: number, serverCpuMs: number): LoadResult {
  const count = results.reduce((n, r) => n + r.count, 0);
  const latencies = new Float64Array(count);
  let at = 0;
  for (const r of results) {
    latencies.set(r.latenciesUs, at);
    at += r.latenciesUs.length;
  }
  return {
    count,
    errors: results.reduce((n, r) => n + r.errors, 0),
    rps: count / (windowMs / 1000),
    latenciesUs: latencies.sort(),
    serverCpuUsPerReq: (serverCpuMs * 1000) / count,
  };
}

function startWorker(): ChildProcess {
  // The client is TypeScript, so it runs under tsx; stdout is ignored so nothing it
  // might print can interleave with the JSON figures.
  return track(fork(CLIENT, [], { cwd: ROOT, execArgv: ["--import", "tsx"], stdio: ["ignore", "ignore", "inherit", "ipc"] }));
}

function post(w: ChildProcess, m: ToWorker): void {
  w.send(m);
}

/** The next message of `type` from a worker; rejects if the worker exits first. */
function expect<T extends FromWorker["type"]>(w: ChildProcess, type: T): Promise<Extract<FromWorker, { type: T }>> {
  return new Promise((resolve, reject) => {
    const onMessage = (m: FromWorker) => {
      if (m.type !== type) return;
      off();
      resolve(m as Extract<FromWorker, { type: T }>);
    };
    const onExit = (code: number | null, signal: string | null) => {
      off();
      reject(new Error(`bench client ${w.pid} exited (${code ?? signal}) while waiting for "${type}"`));
    };
    const off = () => {
      w.off("message", onMessage);
      w.off("exit", onExit);
    };
    w.on("message", onMessage);
    w.on("exit", onExit);
  });
}
