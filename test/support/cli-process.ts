// A CLI command that keeps running (exec, render --watch): started, watched and
// signalled by a test, its output searched for planted values when it ends.
import { execFileSync, spawn, type ChildProcess } from "node:child_process";
import fs from "node:fs";
import { MAIN, sleep } from "./daemon.js";
import { assertNoLeaks, leaksIn } from "./planted.js";

export interface CliProcess {
  readonly child: ChildProcess;
  stdout(): string;
  stderr(): string;
  /** Resolves with the exit status (128 + N for a signal, as a shell reports it). */
  readonly exited: Promise<number>;
  /** Resolves once stderr matches `re`. */
  waitForStderr(re: RegExp, timeoutMs?: number): Promise<void>;
  /** Ends it (SIGTERM) if it still runs and waits. */
  stop(): Promise<number>;
}

const SIGNALS: Record<string, number> = { SIGHUP: 1, SIGINT: 2, SIGQUIT: 3, SIGKILL: 9, SIGUSR1: 10, SIGUSR2: 12, SIGTERM: 15 };

export function startCli(
  t: { after(fn: () => void | Promise<void>): void },
  args: string[],
  opts: { env?: NodeJS.ProcessEnv; extraSecrets?: readonly string[] } = {},
): CliProcess {
  const child = spawn(process.execPath, [MAIN, ...args], { env: { ...process.env, ...opts.env }, stdio: ["ignore", "pipe", "pipe"] });
  let out = "";
  let err = "";
  child.stdout!.on("data", (c: Buffer) => (out += c.toString("utf8")));
  child.stderr!.on("data", (c: Buffer) => (err += c.toString("utf8")));
  const exited = new Promise<number>((resolve) =>
    child.on("exit", (code, signal) => {
      resolve(code ?? 128 + (SIGNALS[signal ?? ""] ?? 0));
    }),
  );
  const p: CliProcess = {
    child,
    stdout: () => out,
    stderr: () => err,
    exited: exited.then((code) => {
      assertNoLeaks(out, `stdout of sealcache ${args.join(" ")}`, opts.extraSecrets);
      assertNoLeaks(err, `stderr of sealcache ${args.join(" ")}`, opts.extraSecrets);
      return code;
    }),
    async waitForStderr(re, timeoutMs = 15_000) {
      const until = Date.now() + timeoutMs;
      while (!re.test(err)) {
        if (Date.now() > until) throw new Error(`no stderr matching ${re} within ${timeoutMs} ms; stderr:\n${err.slice(-3000)}`);
        if (child.exitCode !== null || child.signalCode !== null)
          throw new Error(`exited (${child.exitCode ?? child.signalCode}) before ${re}; stderr:\n${err.slice(-3000)}`);
        await sleep(20);
      }
    },
    async stop() {
      if (child.exitCode === null && child.signalCode === null) child.kill("SIGTERM");
      return p.exited;
    },
  };
  t.after(async () => {
    if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL");
    await exited;
  });
  return p;
}

/** Waits until `file` exists and `ok(content)` holds; returns the content. */
export async function fileWhen(file: string, ok: (text: string) => boolean = () => true, timeoutMs = 15_000): Promise<string> {
  const until = Date.now() + timeoutMs;
  for (;;) {
    try {
      const text = fs.readFileSync(file, "utf8");
      if (ok(text)) return text;
    } catch {
      /* not there yet */
    }
    if (Date.now() > until) throw new Error(`${file} did not reach the expected state within ${timeoutMs} ms`);
    await sleep(25);
  }
}

/** Every process's command line (/proc/PID/cmdline, NULs as spaces) and `ps` output: searched for planted values. */
export function processListings(): string {
  let all = "";
  for (const pid of fs.readdirSync("/proc").filter((n) => /^\d+$/.test(n))) {
    try {
      all += fs.readFileSync(`/proc/${pid}/cmdline`).toString("latin1").replace(/\0/g, " ") + "\n";
    } catch {
      /* gone */
    }
  }
  return all + execFileSync("ps", ["-eww", "-o", "pid=,args="], { encoding: "latin1" });
}

export { leaksIn };
