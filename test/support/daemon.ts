import { spawn, type ChildProcess } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { stringify } from "yaml";
import { req, type Reply } from "./http.js";
import { assertNoLeaks } from "./planted.js";

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");
export const MAIN = path.join(ROOT, "dist/main.mjs");
const LOG_DIR = path.join(ROOT, "test/.logs");
/** The Node flags the daemon ships with (see README, "Memory"): tests run it as shipped. */
export const DAEMON_NODE_FLAGS: string[] = JSON.parse(fs.readFileSync(path.join(ROOT, "packaging/daemon-node-flags.json"), "utf8"));

/** A config in a temp dir using a copy of the demo secrets; `patch` is merged over it. */
export function demoConfig(dir: string, patch: Record<string, unknown> = {}): Record<string, unknown> {
  const secretsDir = path.join(dir, "secrets");
  if (!fs.existsSync(secretsDir)) fs.cpSync(path.join(ROOT, "examples/demo-secrets"), secretsDir, { recursive: true });
  return {
    data_dir: path.join(dir, "data"),
    socket: path.join(dir, "s.sock"),
    seal: { type: "host" },
    sync: { interval: "30s", backoff_min: "200ms", backoff_max: "1s" },
    providers: { demo: { type: "file", dir: secretsDir } },
    secrets: {
      "demo/api-token": { provider: "demo", path: "api-token" },
      "demo/db-password": { provider: "demo", path: "database.json", key: "password" },
      "demo/kafka-password": { provider: "demo", path: "pipeline.env", key: "KAFKA_PASSWORD" },
    },
    log: { level: "debug" },
    ...patch,
  };
}

export interface RunningDaemon {
  readonly dir: string;
  readonly socket: string;
  readonly configFile: string;
  readonly child: ChildProcess;
  get(path: string, opts?: Parameters<typeof req>[2]): Promise<Reply>;
  /** Everything the daemon printed so far. */
  output(): string;
  /** Resolves once a log line matching `re` has been printed. */
  waitForLog(re: RegExp, timeoutMs?: number): Promise<void>;
  /** SIGTERM and wait; asserts no planted value was ever printed. */
  stop(): Promise<number | null>;
  kill(signal?: NodeJS.Signals): Promise<void>;
}

/**
 * Starts `node dist/main.mjs daemon` on a config written to `dir`, waits until its
 * socket answers, and registers cleanup. Output is kept in memory and in
 * test/.logs for the leak check.
 */
export async function launch(
  t: { after(fn: () => void | Promise<void>): void; name?: string },
  dir: string,
  config: Record<string, unknown>,
  opts: {
    env?: NodeJS.ProcessEnv;
    waitFor?: "socket" | "synced" | "none";
    extraSecrets?: readonly string[];
    /** A command the daemon is started under (unshare for a private mount namespace); it must exec node, so the pid stays the daemon's. */
    prefix?: readonly string[];
  } = {},
): Promise<RunningDaemon> {
  const configFile = path.join(dir, "sealcache.yaml");
  fs.writeFileSync(configFile, stringify(config));
  const socket = String(config.socket);
  fs.mkdirSync(LOG_DIR, { recursive: true });
  const logFile = path.join(LOG_DIR, `${path.basename(dir)}.log`);
  const argv = [process.execPath, ...DAEMON_NODE_FLAGS, MAIN, "daemon", "--config", configFile];
  const [cmd, ...args] = [...(opts.prefix ?? []), ...argv];
  const child = spawn(cmd!, args, { env: { ...process.env, ...opts.env }, stdio: ["ignore", "pipe", "pipe"] });
  let out = "";
  const onData = (c: Buffer) => {
    out += c.toString("utf8");
    fs.appendFileSync(logFile, c);
  };
  child.stdout!.on("data", onData);
  child.stderr!.on("data", onData);
  const exited = new Promise<number | null>((resolve) => child.on("exit", (code) => resolve(code)));
  let stopped = false;

  const d: RunningDaemon = {
    dir,
    socket,
    configFile,
    child,
    get: (p, o) => req(socket, p, o),
    output: () => out,
    async waitForLog(re, timeoutMs = 10_000) {
      const until = Date.now() + timeoutMs;
      while (!re.test(out)) {
        if (Date.now() > until) throw new Error(`no log line matching ${re} within ${timeoutMs} ms; output:\n${out.slice(-3000)}`);
        if (child.exitCode !== null) throw new Error(`daemon exited (${child.exitCode}) before logging ${re}; output:\n${out.slice(-3000)}`);
        await sleep(20);
      }
    },
    async stop() {
      if (!stopped) {
        stopped = true;
        if (child.exitCode === null && child.signalCode === null) child.kill("SIGTERM");
      }
      const code = await exited;
      assertNoLeaks(out, `daemon output (${logFile})`, opts.extraSecrets);
      return code;
    },
    async kill(signal = "SIGKILL") {
      stopped = true;
      child.kill(signal);
      await exited;
    },
  };
  t.after(async () => {
    if (!stopped) await d.stop();
  });

  const mode = opts.waitFor ?? "socket";
  if (mode === "none") return d;
  const until = Date.now() + 15_000;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`daemon exited with ${child.exitCode}:\n${out}`);
    try {
      const r = await req(socket, "/v1/health", { timeoutMs: 1000 });
      const h = r.json();
      // The socket answers before the key is unsealed: "socket" waits for the first attempt's outcome.
      if (mode === "socket" && h.status !== "unsealing") break;
      if (h.secrets && h.secrets.not_synced === 0) break;
    } catch {
      /* not up yet */
    }
    if (Date.now() > until) throw new Error(`daemon did not come up within 15 s:\n${out}`);
    await sleep(25);
  }
  return d;
}

export interface CliResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs the real CLI; asserts its output holds no planted value unless `allowValues`. */
export function cli(args: string[], opts: { env?: NodeJS.ProcessEnv; allowValues?: boolean; input?: string } = {}): Promise<CliResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [MAIN, ...args], { env: { ...process.env, ...opts.env }, stdio: ["pipe", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (c: Buffer) => (stdout += c.toString("utf8")));
    child.stderr.on("data", (c: Buffer) => (stderr += c.toString("utf8")));
    child.on("error", reject);
    child.stdin.end(opts.input ?? "");
    child.on("exit", (code) => {
      assertNoLeaks(stderr, `CLI stderr of sealcache ${args.join(" ")}`);
      if (!opts.allowValues) assertNoLeaks(stdout, `CLI stdout of sealcache ${args.join(" ")}`);
      resolve({ code, stdout, stderr });
    });
  });
}

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/** A secret as `GET /v1/secrets/{name}` answers it. */
export interface ServedSecret {
  value: string;
  version: number;
  stale: boolean;
  source_version: string;
  fetched_at: string;
}

/** The daemon's answer for `name` (a 200 is expected: the body is parsed as a secret). */
export async function served(d: RunningDaemon, name: string): Promise<ServedSecret> {
  return (await d.get(`/v1/secrets/${name}`)).json<ServedSecret>();
}

/** Polls `name` until the daemon serves its cache version `version` (a rotation landed). */
export function servedAtVersion(d: RunningDaemon, name: string, version: number, timeoutMs: number, what = "rotated value"): Promise<ServedSecret> {
  return eventually(
    async () => {
      const v = await served(d, name);
      return v.version === version && v;
    },
    timeoutMs,
    what,
  );
}

/** Polls `fn` until it returns a truthy value. */
export async function eventually<T>(fn: () => Promise<T | undefined | false> | T | undefined | false, timeoutMs = 10_000, what = "condition"): Promise<T> {
  const until = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const v = await fn();
      if (v) return v;
    } catch (e) {
      last = e;
    }
    if (Date.now() > until) throw new Error(`timed out waiting for ${what}${last ? `: ${String(last)}` : ""}`);
    await sleep(25);
  }
}
