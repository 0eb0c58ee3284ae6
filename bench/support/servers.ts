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

/**
 * Polls `path` on fresh connections every `pollMs` until it answers 200. Refused
 * connections (socket not there yet) are expected; a server that exits is not.
 */
export async function waitServing(s: ServerProcess, urlPath: string, opts: { pollMs: number; timeoutMs: number }): Promise<void> {
  const until = performance.now() + opts.timeoutMs;
  let last = "no answer";
  for (;;) {
    if (s.exitCode() !== null) throw new Error(`${s.label} exited (${s.exitCode()}) before serving ${urlPath}:\n${s.output()}`);
    try {
      const r = await get(s.socket, urlPath);
      if (r.status === 200) return;
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
 * secret, so it is polled gently: on 10,000 secrets each poll is real work for
 * the daemon and would slow the sync it is waiting for.
 */
export async function waitSynced(s: ServerProcess, timeoutMs: number): Promise<void> {
  const until = performance.now() + timeoutMs;
  let last = "no answer";
  for (;;) {
    if (s.exitCode() !== null) throw new Error(`${s.label} exited (${s.exitCode()}) before syncing:\n${s.output()}`);
    try {
      const r = await get(s.socket, "/v1/health");
      const counts = (JSON.parse(r.body) as { secrets?: HealthCounts }).secrets;
      if (counts && counts.total > 0 && counts.not_synced === 0) return;
      last = counts ? `${counts.not_synced} of ${counts.total} not synced` : `status ${r.status}`;
    } catch (e) {
      last = String(e);
    }
    if (performance.now() > until) throw new Error(`${s.label} did not sync within ${timeoutMs} ms (${last}):\n${s.output()}`);
    await sleep(250);
  }
}
