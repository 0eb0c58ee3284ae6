import { readFileSync } from "node:fs";
import { spawn } from "node:child_process";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { track } from "./cleanup.js";
import type { Fixture } from "./fixture.js";
import { get, sleep } from "./http.js";

/** The Node flags the daemon ships with (packaging/daemon-node-flags.json): measured as shipped. */
const DAEMON_NODE_FLAGS: string[] = JSON.parse(readFileSync(new URL("../../packaging/daemon-node-flags.json", import.meta.url), "utf8"));

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");
export const MAIN = path.join(ROOT, "dist/main.mjs");
const BARE_SERVER = path.join(ROOT, "bench/support/bare-server.mjs");
const OUTPUT_KEEP = 16 * 1024;

/** A server process under test: the daemon, or the bare node:http baseline. */
export interface ServerProcess {
  readonly label: string;
  readonly pid: number;
  readonly socket: string;
  /** The tail of what the process printed, for error messages. */
  output(): string;
  exitCode(): number | string | null;
  /** SIGTERM, then SIGKILL if it has not exited within 10 s. */
  stop(): Promise<void>;
}

/** `env` is added to the bench's own environment (a backend's credentials). */
export function startDaemon(fx: Pick<Fixture, "configFile" | "socket">, env?: NodeJS.ProcessEnv): ServerProcess {
  return startServer("daemon", [...DAEMON_NODE_FLAGS, MAIN, "daemon", "--config", fx.configFile], fx.socket, env);
}

/**
 * The baseline: plain node:http on a Unix socket, answering every GET with the
 * body and headers in `replyFile` (a small JSON body without one).
 */
export function startBare(socket: string, replyFile?: string): ServerProcess {
  return startServer("bare node:http", [BARE_SERVER, socket, ...(replyFile ? [replyFile] : [])], socket);
}

/** The smallest node process: an event loop kept alive by one far-off timer, no server. Its RSS is node's own floor. */
export function startIdleNode(): ServerProcess {
  return startServer("bare node", ["-e", "setInterval(() => {}, 1e9)"], "");
}

function startServer(label: string, args: string[], socket: string, env?: NodeJS.ProcessEnv): ServerProcess {
  // Plain `node`, no tsx loader: both servers start the way they would in production.
  const child = track(spawn(process.execPath, args, { cwd: ROOT, stdio: ["ignore", "pipe", "pipe"], ...(env ? { env: { ...process.env, ...env } } : {}) }));
  let out = "";
  const keep = (c: Buffer) => {
    out = (out + c.toString("utf8")).slice(-OUTPUT_KEEP);
  };
  child.stdout.on("data", keep);
  child.stderr.on("data", keep);
  // A failed spawn is reported through exitCode() and output() instead of crashing the run.
  child.on("error", (e) => keep(Buffer.from(`spawn failed: ${String(e)}\n`)));
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  if (child.pid === undefined) throw new Error(`${label} could not be spawned`);
  return {
    label,
    pid: child.pid,
    socket,
    output: () => out,
    exitCode: () => child.exitCode ?? child.signalCode,
    async stop() {
      if (child.exitCode !== null || child.signalCode !== null) return;
      child.kill("SIGTERM");
      const timer = setTimeout(() => child.kill("SIGKILL"), 10_000);
      await exited;
      clearTimeout(timer);
    },
  };
}

/** performance.now() stamps of a start: the first HTTP answer of any status, and the first 200. */
export interface Served {
  readonly answeredAt: number;
  readonly servedAt: number;
}

/**
 * Polls `path` on fresh connections every `pollMs` until it answers 200. Refused
 * connections (socket not there yet) are expected; a server that exits is not.
 * A daemon whose socket is up before its cache is open answers 503 (`sealed`,
 * status `unsealing`) meanwhile: the first such answer is `answeredAt`.
 */
export async function waitServing(s: ServerProcess, urlPath: string, opts: { pollMs: number; timeoutMs: number }): Promise<Served> {
  const until = performance.now() + opts.timeoutMs;
  let last = "no answer";
  let answeredAt: number | undefined;
  for (;;) {
    if (s.exitCode() !== null) throw new Error(`${s.label} exited (${s.exitCode()}) before serving ${urlPath}:\n${s.output()}`);
    try {
      const r = await get(s.socket, urlPath);
      const at = performance.now();
      answeredAt ??= at;
      if (r.status === 200) return { answeredAt, servedAt: at };
      last = `status ${r.status}: ${r.body.slice(0, 200)}`;
    } catch (e) {
      last = String(e);
    }
    if (performance.now() > until) throw new Error(`${s.label} did not serve ${urlPath} within ${opts.timeoutMs} ms (${last}):\n${s.output()}`);
    await sleep(opts.pollMs);
  }
}

/** Throws with the server's last output if it has exited: figures from a dead server are meaningless. */
export function assertRunning(s: ServerProcess, during: string): void {
  if (s.exitCode() !== null) throw new Error(`${s.label} exited (${s.exitCode()}) during ${during}:\n${s.output()}`);
}

interface HealthCounts {
  total: number;
  not_synced: number;
}

/**
 * Waits until every configured secret has been fetched once. Health walks every
 * secret (200 ms a call at 100,000), so it is polled gently, and only once
 * `lastPath` (a secret near the end of the config, which the engine fetches in
 * order) answers 200: a lookup costs the daemon almost nothing, so waiting on it
 * first keeps the poller from slowing the sync it is waiting for.
 */
export async function waitSynced(s: ServerProcess, timeoutMs: number, o: { pollMs?: number; lastPath?: string } = {}): Promise<void> {
  const until = performance.now() + timeoutMs;
  const pollMs = o.pollMs ?? 250;
  let last = "no answer";
  let probing = o.lastPath !== undefined;
  for (;;) {
    if (s.exitCode() !== null) throw new Error(`${s.label} exited (${s.exitCode()}) before syncing:\n${s.output()}`);
    try {
      if (probing) {
        const r = await get(s.socket, o.lastPath!);
        probing = r.status !== 200;
        last = `${o.lastPath} answered ${r.status}`;
      } else {
        const r = await get(s.socket, "/v1/health", 60_000);
        const counts = (JSON.parse(r.body) as { secrets?: HealthCounts }).secrets;
        if (counts && counts.total > 0 && counts.not_synced === 0) return;
        last = counts ? `${counts.not_synced} of ${counts.total} not synced` : `status ${r.status}`;
      }
    } catch (e) {
      last = String(e);
    }
    if (performance.now() > until) throw new Error(`${s.label} did not sync within ${timeoutMs} ms (${last}):\n${s.output()}`);
    await sleep(probing ? PROBE_MS : pollMs);
  }
}

/** How often the cheap lookup of waitSynced's `lastPath` is tried. */
const PROBE_MS = 50;
