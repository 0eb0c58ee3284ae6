// Reading `strace -f -ttt -o FILE -p PID` output for the idle bench: which threads
// woke, how often, and why. Pure functions, unit-tested (test/unit/bench/strace.test.ts).

export interface Call {
  readonly tid: number;
  readonly name: string;
  /** Top-level arguments as strace printed them; the leading ones may be missing for a call resumed after attach. */
  readonly args: string[];
  /** The return value; undefined for `= ?`. */
  readonly result: number | undefined;
  /** errno name of a failed call (EINTR, EAGAIN). */
  readonly errno: string | undefined;
}

const LINE = /^(\d+)\s+(?:\d+\.\d+\s+)?(.*)$/;
const UNFINISHED = " <unfinished ...>";
const RESUMED = /^<\.\.\. (\w+) resumed>(.*)$/;
const START = /^(\w+)\((.*)$/;

/**
 * Complete calls from strace output, in order of completion. A call split into
 * `<unfinished ...>` and `<... resumed>` (another thread ran meanwhile) is joined;
 * signals, exits and calls cut short by the detach are skipped.
 */
export function parseStrace(text: string): Call[] {
  const pending = new Map<number, { name: string; head: string }>();
  const calls: Call[] = [];
  for (const raw of text.split("\n")) {
    const m = LINE.exec(raw.trimEnd());
    if (!m) continue;
    const tid = Number(m[1]);
    const rest = m[2]!;
    if (rest.startsWith("---") || rest.startsWith("+++")) continue;
    if (rest.endsWith(UNFINISHED)) {
      const s = START.exec(rest.slice(0, -UNFINISHED.length));
      if (s) pending.set(tid, { name: s[1]!, head: s[2]! });
      continue;
    }
    let name: string;
    let body: string;
    const resumed = RESUMED.exec(rest);
    if (resumed) {
      name = resumed[1]!;
      const p = pending.get(tid);
      pending.delete(tid);
      // Resumed without its start (it began before strace attached): the leading arguments are lost.
      body = p && p.name === name ? p.head + resumed[2]! : resumed[2]!;
    } else {
      const s = START.exec(rest);
      if (!s) continue;
      name = s[1]!;
      body = s[2]!;
    }
    const call = finish(tid, name, body);
    if (call) calls.push(call);
  }
  return calls;
}

/** `ARGS) = RESULT [ERRNO (text)]` into a call. */
function finish(tid: number, name: string, body: string): Call | undefined {
  const eq = body.lastIndexOf(") = ");
  if (eq < 0) return undefined;
  const ret = body.slice(eq + 4).trim();
  const r = /^(-?\d+|\?)(?:\s+(E[A-Z0-9]+))?/.exec(ret);
  if (!r) return undefined;
  return { tid, name, args: splitArgs(body.slice(0, eq)), result: r[1] === "?" ? undefined : Number(r[1]), errno: r[2] };
}

/** Splits at top-level commas: structs {..}, arrays [..], nested calls (..) and strings stay whole. */
export function splitArgs(s: string): string[] {
  const out: string[] = [];
  let depth = 0;
  let quoted = false;
  let cur = "";
  for (let i = 0; i < s.length; i++) {
    const ch = s[i]!;
    if (quoted) {
      cur += ch;
      if (ch === "\\") cur += s[++i] ?? "";
      else if (ch === '"') quoted = false;
      continue;
    }
    if (ch === '"') quoted = true;
    else if ("[{(".includes(ch)) depth++;
    else if ("]})".includes(ch)) depth--;
    else if (ch === "," && depth === 0) {
      out.push(cur.trim());
      cur = "";
      continue;
    }
    cur += ch;
  }
  if (cur.trim() !== "") out.push(cur.trim());
  return out;
}

const EPOLL = new Set(["epoll_wait", "epoll_pwait", "epoll_pwait2"]);

/**
 * The timeout an epoll call asked for, in ms (-1: wait forever), counted from the
 * end of the arguments so a call resumed after attach still has it:
 * epoll_wait(fd, events, max, TIMEOUT), epoll_pwait(fd, events, max, TIMEOUT, sigmask, size),
 * epoll_pwait2(fd, events, max, TIMESPEC, sigmask, size).
 */
export function epollTimeoutMs(c: Call): number | undefined {
  const at = c.name === "epoll_wait" ? c.args.length - 1 : c.args.length - 3;
  const a = c.args[at];
  if (a === undefined) return undefined;
  if (a === "NULL") return -1;
  const ts = /tv_sec=(\d+),\s*tv_nsec=(\d+)/.exec(a);
  if (ts) return Number(ts[1]) * 1000 + Number(ts[2]) / 1e6;
  return /^-?\d+$/.test(a) ? Number(a) : undefined;
}

export interface ThreadWakeups {
  readonly tid: number;
  /** epoll calls that could block (a timeout other than 0) and returned: each is one wakeup of that event loop. */
  readonly polls: number;
  /** epoll calls with timeout 0 (libuv checking for I/O between callbacks): no sleep, so no wakeup. */
  readonly nonBlocking: number;
  /** Returned 0: the earliest timer fell due (nothing to read). */
  readonly timers: number;
  /** Returned events: a socket, pipe or signalfd had something. */
  readonly io: number;
  /** Interrupted by a signal. */
  readonly interrupted: number;
}

export interface Wakeups {
  readonly windowS: number;
  readonly threads: ThreadWakeups[];
  /** Timeouts (ms, 2 significant digits) asked by epoll calls that then timed out, most frequent first: the timer periods. */
  readonly timerTimeouts: [number, number][];
  /** Every syscall by name, most frequent first. */
  readonly syscalls: [string, number][];
  readonly calls: number;
}

/** Who woke and why, over a window of `windowS` seconds of strace output. */
export function wakeups(calls: readonly Call[], windowS: number): Wakeups {
  const threads = new Map<number, { tid: number; polls: number; nonBlocking: number; timers: number; io: number; interrupted: number }>();
  const timeouts = new Map<number, number>();
  const names = new Map<string, number>();
  for (const c of calls) {
    names.set(c.name, (names.get(c.name) ?? 0) + 1);
    if (!EPOLL.has(c.name)) continue;
    let t = threads.get(c.tid);
    if (!t) threads.set(c.tid, (t = { tid: c.tid, polls: 0, nonBlocking: 0, timers: 0, io: 0, interrupted: 0 }));
    const ms = epollTimeoutMs(c);
    if (ms === 0) {
      t.nonBlocking++;
      continue;
    }
    t.polls++;
    if (c.result === 0) {
      t.timers++;
      if (ms !== undefined) timeouts.set(round2(ms), (timeouts.get(round2(ms)) ?? 0) + 1);
    } else if (c.result !== undefined && c.result > 0) t.io++;
    else if (c.errno === "EINTR") t.interrupted++;
  }
  const byCount = <K>(m: Map<K, number>) => [...m].sort((a, b) => b[1] - a[1]);
  return {
    windowS,
    threads: [...threads.values()].sort((a, b) => b.polls - a.polls),
    timerTimeouts: byCount(timeouts),
    syscalls: byCount(names),
    calls: calls.length,
  };
}

/** Two significant digits: 997, 998 and 1000 ms are one 1 s timer. */
function round2(ms: number): number {
  if (ms <= 0) return ms;
  const p = 10 ** Math.max(0, Math.floor(Math.log10(ms)) - 1);
  return Math.round(ms / p) * p;
}
