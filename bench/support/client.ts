// A load-generating client process, started by load.ts. It runs in its own process
// so the client's CPU time is not charged to the bench runner, and the server sees
// real separate peers. Flow: hello → job → (connections opened) ready → go → result.
import http from "node:http";
import type { FromWorker, ToWorker, WorkerJob } from "./protocol.js";

function send(m: FromWorker, then?: () => void): void {
  if (!process.send) throw new Error("client.ts must be started with an IPC channel (child_process.fork)");
  process.send(m, undefined, {}, then);
}

/** One sequential client: its own agent holding exactly one keep-alive connection. */
class Connection {
  readonly #agent = new http.Agent({ keepAlive: true, maxSockets: 1 });

  constructor(readonly socketPath: string) {}

  /** Resolves true on a 200 whose body was read to the end. */
  get(path: string): Promise<boolean> {
    return new Promise((resolve, reject) => {
      const req = http.get({ socketPath: this.socketPath, path, agent: this.#agent }, (res) => {
        res.on("data", () => {});
        res.on("end", () => resolve(res.statusCode === 200));
        res.on("error", reject);
      });
      req.on("error", reject);
    });
  }

  close(): void {
    this.#agent.destroy();
  }
}

class Tally {
  count = 0;
  errors = 0;
  readonly latenciesUs: number[] = [];

  record(startMs: number, ok: boolean): void {
    this.count++;
    if (!ok) this.errors++;
    this.latenciesUs.push(Math.round((performance.now() - startMs) * 1000));
  }
}

async function timed(conn: Connection, job: WorkerJob, index: number, tally: Tally, measureFrom: number, measureTo: number): Promise<void> {
  let k = job.offset + index * 7919; // a prime stride keeps connections on different names
  for (;;) {
    const start = performance.now();
    if (start >= measureTo) return;
    const ok = await conn.get(job.paths[k++ % job.paths.length]!).catch(() => false);
    if (start >= measureFrom) tally.record(start, ok);
  }
}

async function counted(conn: Connection, job: WorkerJob, index: number, requests: number, tally: Tally): Promise<void> {
  // Consecutive slices of the path list, so together the connections cover every name.
  let k = job.offset + index * requests;
  for (let i = 0; i < requests; i++) {
    const start = performance.now();
    const ok = await conn.get(job.paths[k++ % job.paths.length]!).catch(() => false);
    tally.record(start, ok);
  }
}

async function run(job: WorkerJob, conns: Connection[]): Promise<Tally> {
  const tally = new Tally();
  if (job.requests !== undefined) {
    const each = Math.ceil(job.requests / conns.length);
    await Promise.all(conns.map((c, i) => counted(c, job, i, Math.max(0, Math.min(each, job.requests! - i * each)), tally)));
  } else {
    const measureFrom = performance.now() + job.warmupMs;
    const measureTo = measureFrom + (job.durationMs ?? 0);
    await Promise.all(conns.map((c, i) => timed(c, job, i, tally, measureFrom, measureTo)));
  }
  return tally;
}

let job: WorkerJob | undefined;
let conns: Connection[] = [];

process.on("message", (m: ToWorker) => {
  void handle(m).catch((e: unknown) => {
    process.stderr.write(`bench client: ${String(e)}\n`);
    process.exit(1);
  });
});

async function handle(m: ToWorker): Promise<void> {
  if (m.type === "job") {
    job = m.job;
    conns = Array.from({ length: m.job.connections }, () => new Connection(m.job.socket));
    // Open every connection before "ready", so connection set-up is not measured.
    await Promise.all(conns.map((c, i) => c.get(m.job.paths[i % m.job.paths.length]!)));
    send({ type: "ready" });
  } else if (job) {
    const t = await run(job, conns);
    for (const c of conns) c.close();
    // Disconnecting before the send has flushed would drop a large result.
    send({ type: "result", count: t.count, errors: t.errors, latenciesUs: t.latenciesUs }, () => process.disconnect());
  }
}

send({ type: "hello" });
