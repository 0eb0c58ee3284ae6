import fs from "node:fs";

/** What the peer tracker reads about a process; /proc in the daemon, a fake in tests. */
export interface ProcReader {
  /** Effective uid and supplementary groups (/proc/PID/status). */
  status(pid: number): { uid: number; groups: number[] } | undefined;
  /** The executable (/proc/PID/exe); undefined if it cannot be read. */
  exe(pid: number): string | undefined;
  /** The text of /proc/PID/cgroup. */
  cgroup(pid: number): string | undefined;
  /** State letter and start time (fields 3 and 22 of /proc/PID/stat). */
  stat(pid: number): ProcStat | undefined;
}

export interface ProcStat {
  readonly state: string;
  /** Clock ticks after boot; kept as text, it is only compared. */
  readonly startTime: string;
}

function read(file: string): string | undefined {
  try {
    return fs.readFileSync(file, "utf8");
  } catch {
    return undefined;
  }
}

export const procfs: ProcReader = {
  status: (pid) => {
    const t = read(`/proc/${pid}/status`);
    return t === undefined ? undefined : parseStatus(t);
  },
  exe: (pid) => {
    try {
      return fs.readlinkSync(`/proc/${pid}/exe`);
    } catch {
      return undefined;
    }
  },
  cgroup: (pid) => read(`/proc/${pid}/cgroup`),
  stat: (pid) => {
    const t = read(`/proc/${pid}/stat`);
    return t === undefined ? undefined : parseStat(t);
  },
};

/** Fields of /proc/PID/status: the effective uid (second of `Uid:`) and `Groups:`. */
export function parseStatus(text: string): { uid: number; groups: number[] } | undefined {
  const uid = /^Uid:\s*\d+\s+(\d+)/m.exec(text)?.[1];
  if (uid === undefined) return undefined;
  const groups = (/^Groups:[ \t]*(.*)$/m.exec(text)?.[1] ?? "").split(/\s+/).filter(Boolean).map(Number);
  return { uid: Number(uid), groups };
}

/**
 * /proc/PID/stat: `pid (comm) state ppid ...`. The command name may hold spaces and
 * parentheses, so fields are counted from the last `)`.
 */
export function parseStat(text: string): ProcStat | undefined {
  const close = text.lastIndexOf(")");
  if (close === -1) return undefined;
  const f = text
    .slice(close + 2)
    .trim()
    .split(" ");
  // f[0] is field 3 (state); field 22 (starttime) is f[19].
  const state = f[0];
  const startTime = f[19];
  if (!state || !startTime || !/^\d+$/.test(startTime)) return undefined;
  return { state, startTime };
}
