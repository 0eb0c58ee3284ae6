import fs from "node:fs";

export interface Memory {
  /** Resident set now. */
  readonly rssMb: number;
  /** High-water mark of the resident set since the process started. */
  readonly hwmMb: number;
  /** The anonymous part of the resident set: heaps (V8's and malloc's, SQLite's page cache), stacks. */
  readonly anonMb: number;
  /** The file-backed part: mostly /usr/bin/node's own pages, shared with every node process but counted in each RSS. */
  readonly fileMb: number;
}

/** VmRSS and VmHWM from /proc/PID/status: what `top` and systemd's MemoryMax see; and RSS split into anonymous and file pages. */
export function readMemory(pid: number): Memory {
  const status = fs.readFileSync(`/proc/${pid}/status`, "utf8");
  const mb = (key: string) => statusField(status, key) / 1024;
  return { rssMb: mb("VmRSS"), hwmMb: mb("VmHWM"), anonMb: mb("RssAnon"), fileMb: mb("RssFile") };
}

/** A numeric field of /proc/PID/status (`VmRSS:  1234 kB`, `voluntary_ctxt_switches:  7`); the unit is dropped. */
export function statusField(status: string, key: string): number {
  const m = new RegExp(`^${key}:\\s+(\\d+)(?: kB)?$`, "m").exec(status);
  if (!m) throw new Error(`/proc status has no ${key} line`);
  return Number(m[1]);
}

/** The kernel's clock tick for utime/stime (USER_HZ): 100 on every Linux architecture we ship for. */
export const TICKS_PER_S = 100;

/** utime + stime, in ticks, from the text of /proc/PID/stat (all threads of the process). */
export function parseStatTicks(stat: string): number {
  // Fields after the parenthesised command name (which may hold spaces); utime and stime are fields 14 and 15.
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  return Number(fields[11]) + Number(fields[12]);
}

/** utime + stime of a process in milliseconds: 10 ms resolution; see readThreads for a finer figure. */
export function readCpuMs(pid: number): number {
  return (parseStatTicks(fs.readFileSync(`/proc/${pid}/stat`, "utf8")) * 1000) / TICKS_PER_S;
}

/** The counters of /proc/PID/io (all threads of the process, including those that exited). */
export interface Io {
  readonly rchar: number;
  readonly wchar: number;
  readonly syscr: number;
  readonly syscw: number;
  /** Bytes this process caused to be read from the block layer. */
  readonly read_bytes: number;
  /**
   * Bytes this process caused to be sent to the block layer, counted when it dirties
   * a page cache page (a page dirtied again before writeback counts once); zero for
   * files on tmpfs, which has no block layer.
   */
  readonly write_bytes: number;
  /** Dirty bytes that never reached the block layer because the file was truncated or deleted first. */
  readonly cancelled_write_bytes: number;
}

const IO_KEYS = ["rchar", "wchar", "syscr", "syscw", "read_bytes", "write_bytes", "cancelled_write_bytes"] as const;

export function parseIo(text: string): Io {
  const out: Record<string, number> = {};
  for (const key of IO_KEYS) {
    const m = new RegExp(`^${key}: (\\d+)$`, "m").exec(text);
    if (!m) throw new Error(`/proc io has no ${key} line`);
    out[key] = Number(m[1]);
  }
  return out as unknown as Io;
}

export function readIo(pid: number): Io {
  return parseIo(fs.readFileSync(`/proc/${pid}/io`, "utf8"));
}

/** Per-thread scheduler counters, summed over the threads of a process. */
export interface Threads {
  readonly threads: number;
  /** CPU time on a core, in ns (schedstat's sum_exec_runtime: exact, unlike the 10 ms ticks of stat). */
  readonly cpuNs: number;
  /** Times a thread was put on a core (schedstat's third field): every wakeup counts once. */
  readonly runs: number;
  /** Voluntary context switches (the thread blocked: it waited for a timer, I/O or a lock). */
  readonly voluntary: number;
  readonly involuntary: number;
  /** The main thread's own voluntary switches (what /proc/PID/status shows). */
  readonly mainVoluntary: number;
}

/** `sum_exec_runtime run_delay pcount` of /proc/PID/task/TID/schedstat. */
export function parseSchedstat(text: string): { cpuNs: number; runs: number } {
  const [cpu, , runs] = text.trim().split(/\s+/).map(Number);
  return { cpuNs: cpu ?? NaN, runs: runs ?? NaN };
}

/**
 * Sums the scheduler counters of every thread now alive in `pid`. A thread that
 * exits between two readings takes its counts with it, so for a window compare
 * two readings with the same `threads`.
 */
export function readThreads(pid: number): Threads {
  const base = `/proc/${pid}/task`;
  let threads = 0;
  let cpuNs = 0;
  let runs = 0;
  let voluntary = 0;
  let involuntary = 0;
  let mainVoluntary = 0;
  for (const tid of fs.readdirSync(base)) {
    let sched: string;
    let status: string;
    try {
      sched = fs.readFileSync(`${base}/${tid}/schedstat`, "utf8");
      status = fs.readFileSync(`${base}/${tid}/status`, "utf8");
    } catch {
      continue; // exited since readdir
    }
    const s = parseSchedstat(sched);
    threads++;
    cpuNs += s.cpuNs;
    runs += s.runs;
    const v = statusField(status, "voluntary_ctxt_switches");
    voluntary += v;
    involuntary += statusField(status, "nonvoluntary_ctxt_switches");
    if (tid === String(pid)) mainVoluntary = v;
  }
  return { threads, cpuNs, runs, voluntary, involuntary, mainVoluntary };
}

/** statfs f_type of tmpfs (linux/magic.h TMPFS_MAGIC). */
const TMPFS_MAGIC = 0x01021994;

/** Whether `dir` is on tmpfs, where writes never reach a block device (and /proc/PID/io counts none). */
export function onTmpfs(dir: string): boolean {
  return fs.statfsSync(dir).type === TMPFS_MAGIC;
}
