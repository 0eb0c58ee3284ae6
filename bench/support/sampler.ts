import { spawn } from "node:child_process";
import fs from "node:fs";
import { track } from "./cleanup.js";
import { readCpuMs, readIo, readThreads, type Io, type Threads } from "./procfs.js";
import { parseStrace, wakeups, type Wakeups } from "./strace.js";

/** One reading of a process's counters. */
export interface Sample {
  readonly at: number;
  readonly cpuMs: number;
  readonly threads: Threads;
  readonly io: Io;
}

export function sample(pid: number): Sample {
  return { at: performance.now(), cpuMs: readCpuMs(pid), threads: readThreads(pid), io: readIo(pid) };
}

/** What a process did between two samples, per second (and the raw write counts). */
export interface Activity {
  readonly seconds: number;
  /** Share of one core, in percent, from schedstat (ns): exact. */
  readonly cpuPercent: number;
  /** The same from /proc/PID/stat utime+stime (10 ms ticks): coarse over a short window. */
  readonly statCpuPercent: number;
  readonly voluntaryPerS: number;
  readonly mainVoluntaryPerS: number;
  readonly runsPerS: number;
  /** The thread count changed: a thread that exited took its counts along, so the per-thread figures are low. */
  readonly threadsChanged: boolean;
  readonly writeBytes: number;
  readonly cancelledWriteBytes: number;
}

export function activity(a: Sample, b: Sample): Activity {
  const seconds = (b.at - a.at) / 1000;
  const per = (x: number) => x / seconds;
  return {
    seconds,
    cpuPercent: ((b.threads.cpuNs - a.threads.cpuNs) / 1e9 / seconds) * 100,
    statCpuPercent: ((b.cpuMs - a.cpuMs) / 1000 / seconds) * 100,
    voluntaryPerS: per(b.threads.voluntary - a.threads.voluntary),
    mainVoluntaryPerS: per(b.threads.mainVoluntary - a.threads.mainVoluntary),
    runsPerS: per(b.threads.runs - a.threads.runs),
    threadsChanged: a.threads.threads !== b.threads.threads,
    writeBytes: b.io.write_bytes - a.io.write_bytes,
    cancelledWriteBytes: b.io.cancelled_write_bytes - a.io.cancelled_write_bytes,
  };
}

/** Whether strace can be run here (it is a dev dependency of the bench, not of sealcache). */
export function haveStrace(): boolean {
  return ["/usr/bin/strace", "/bin/strace", "/usr/local/bin/strace"].some((p) => fs.existsSync(p));
}

/**
 * Attaches strace to every thread of `pid` for `ms`, then detaches (SIGINT) and
 * reads who woke and why. ptrace stops the tracee at every syscall, so nothing
 * else is measured on that process meanwhile.
 */
export async function traceWakeups(pid: number, ms: number, outFile: string): Promise<Wakeups> {
  const child = track(spawn("strace", ["-f", "-ttt", "-qq", "-o", outFile, "-p", String(pid)], { stdio: ["ignore", "ignore", "pipe"] }));
  let err = "";
  child.stderr.on("data", (c: Buffer) => (err += c.toString()));
  const exited = new Promise<number | null>((resolve) => child.once("exit", (code) => resolve(code)));
  const t0 = performance.now();
  await new Promise((r) => setTimeout(r, ms));
  child.kill("SIGINT");
  const code = await exited;
  const seconds = (performance.now() - t0) / 1000;
  if (!fs.existsSync(outFile)) throw new Error(`strace -p ${pid} wrote nothing (exit ${code}): ${err.slice(-500)}`);
  return wakeups(parseStrace(fs.readFileSync(outFile, "utf8")), seconds);
}
