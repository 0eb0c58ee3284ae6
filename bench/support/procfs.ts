import fs from "node:fs";

export interface Memory {
  /** Resident set now. */
  readonly rssMb: number;
  /** High-water mark of the resident set since the process started. */
  readonly hwmMb: number;
}

/** VmRSS and VmHWM from /proc/PID/status: what `top` and systemd's MemoryMax see. */
export function readMemory(pid: number): Memory {
  const status = fs.readFileSync(`/proc/${pid}/status`, "utf8");
  return { rssMb: field(status, "VmRSS") / 1024, hwmMb: field(status, "VmHWM") / 1024 };
}

function field(status: string, key: string): number {
  const m = new RegExp(`^${key}:\\s+(\\d+) kB$`, "m").exec(status);
  if (!m) throw new Error(`/proc status has no ${key} line`);
  return Number(m[1]);
}

/** utime + stime of a process in milliseconds (the kernel counts in USER_HZ ticks, 100 on Linux). */
export function readCpuMs(pid: number): number {
  const stat = fs.readFileSync(`/proc/${pid}/stat`, "utf8");
  // Fields after the parenthesised command name; utime and stime are fields 14 and 15.
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  return (Number(fields[11]) + Number(fields[12])) * 10;
}
