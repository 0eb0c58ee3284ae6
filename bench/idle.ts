import os from "node:os";
import path from "node:path";
import { removeDir } from "./support/cleanup.js";
import { diskBase } from "./support/corpus.js";
import { writeFixture } from "./support/fixture.js";
import { sleep } from "./support/http.js";
import { onTmpfs } from "./support/procfs.js";
import { emit, note, summarize, target } from "./support/report.js";
import { activity, haveStrace, sample, traceWakeups, type Activity } from "./support/sampler.js";
import { startBare, startDaemon, startIdleNode, waitServing, waitSynced, type ServerProcess } from "./support/servers.js";
import type { Wakeups } from "./support/strace.js";
import { fmt, sig3 } from "./support/summary.js";

const SECRETS = 1_000;
/** After the start: the first audit flush, lazy frees and the start-up GCs are over. */
const SETTLE_MS = 5_000;
const WINDOW_MS = 60_000;
/** strace runs after the /proc window (ptrace would add a context switch per syscall to it). */
const STRACE_MS = 40_000;
const CPU_TARGET_PERCENT = 0.05;
/** Timer wakeups of the main loop the daemon may have beyond bare node:http's own (a refresh, a prune). */
const EXTRA_TIMER_WAKEUPS_PER_MIN = 1;

/** The daemon's write rate while idle, for the flash bench's fixed per-hour cost (undefined until measured). */
export let idleWriteBytesPerHour: number | undefined;

/**
 * A daemon holding 1,000 secrets, restarted from its cache with the shipped sync
 * settings (every 5 min, jitter 0.2; nothing falls due in the window), left idle:
 * its CPU share of a core, context switches per second (all threads, and the main
 * thread), the bytes it sends to the disk, and (strace) what wakes its event loop:
 * timers (and at which timeouts) or I/O. The floors idle beside it in the same
 * windows: the bare node:http server and a bare node event loop.
 */
export async function idleBench(): Promise<void> {
  const base = diskBase() ?? os.tmpdir();
  const fx = writeFixture(SECRETS, { base, sync: {} });
  const servers: ServerProcess[] = [];
  try {
    const first = startDaemon(fx);
    await waitSynced(first, 60_000);
    await first.stop();
    // Health is not audited: waiting on it leaves the audit trail with nothing to write.
    const d = startDaemon(fx);
    servers.push(d);
    const bare = startBare(path.join(fx.dir, "bare.sock"));
    servers.push(bare);
    const node = startIdleNode();
    servers.push(node);
    await waitServing(d, "/v1/health", { pollMs: 10, timeoutMs: 60_000 });
    await waitServing(bare, "/", { pollMs: 10, timeoutMs: 10_000 });
    await sleep(SETTLE_MS);
    const from = [d, bare, node].map((s) => sample(s.pid));
    await sleep(WINDOW_MS);
    const to = [d, bare, node].map((s) => sample(s.pid));
    const [ours, floor, empty] = from.map((f, i) => activity(f, to[i]!)) as [Activity, Activity, Activity];
    for (const [s, a] of [
      [d, ours],
      [bare, floor],
      [node, empty],
    ] as const) {
      note(
        `idle: ${s.label} over ${a.seconds.toFixed(0)} s: ${a.cpuPercent.toFixed(4)}% of a core (stat ticks: ${a.statCpuPercent.toFixed(3)}%), ${a.voluntaryPerS.toFixed(2)} voluntary switches/s (main thread ${a.mainVoluntaryPerS.toFixed(2)}), ${a.runsPerS.toFixed(2)} runs/s, ${a.writeBytes} bytes written${a.threadsChanged ? " (a thread came or went: per-thread counts are low)" : ""}`,
      );
    }
    report(ours, floor, empty, base);
    if (haveStrace()) {
      const [w, wb] = await Promise.all([
        traceWakeups(d.pid, STRACE_MS, path.join(fx.dir, "daemon.strace")),
        traceWakeups(bare.pid, STRACE_MS, path.join(fx.dir, "bare.strace")),
      ]);
      reportWakeups(d.pid, w, bare.pid, wb);
    } else {
      note("idle: strace is not installed; timer wakeups not measured (apt-get install strace)");
    }
  } finally {
    await Promise.all(servers.map((s) => s.stop()));
    removeDir(fx.dir);
  }
}

function report(ours: Activity, floor: Activity, empty: Activity, base: string): void {
  const cpu = emit("idle", "cpu_percent", ours.cpuPercent, "percent");
  emit("idle", "stat_cpu_percent", ours.statCpuPercent, "percent");
  emit("idle", "voluntary_switches_per_s", ours.voluntaryPerS, "per_s");
  emit("idle", "main_thread_voluntary_switches_per_s", ours.mainVoluntaryPerS, "per_s");
  emit("idle", "bare_cpu_percent", floor.cpuPercent, "percent");
  emit("idle", "bare_voluntary_switches_per_s", floor.voluntaryPerS, "per_s");
  emit("idle", "bare_main_thread_voluntary_switches_per_s", floor.mainVoluntaryPerS, "per_s");
  emit("idle", "bare_node_cpu_percent", empty.cpuPercent, "percent");
  emit("idle", "bare_node_voluntary_switches_per_s", empty.voluntaryPerS, "per_s");
  const met = target("idle", "cpu_percent", cpu, "<=", CPU_TARGET_PERCENT);
  summarize("idle CPU, share of a core", "1k", {
    text: fmt(cpu, "%"),
    floor: `${fmt(floor.cpuPercent, "%")} node:http, ${fmt(empty.cpuPercent, "%")} bare node`,
    target: `<= ${CPU_TARGET_PERCENT}%`,
    met,
  });
  summarize("idle voluntary context switches (all threads; main thread)", "1k", {
    text: `${sig3(ours.voluntaryPerS)}/s; ${sig3(ours.mainVoluntaryPerS)}/s`,
    floor: `${sig3(floor.voluntaryPerS)}/s; ${sig3(floor.mainVoluntaryPerS)}/s node:http`,
  });
  if (onTmpfs(base)) {
    note(`idle: ${base} is a tmpfs, so write_bytes counts nothing; the idle write rate is not measured`);
    return;
  }
  idleWriteBytesPerHour = (ours.writeBytes * 3600) / ours.seconds;
  emit("idle", "write_bytes_per_hour", idleWriteBytesPerHour, "bytes");
  emit("idle", "cancelled_write_bytes_per_hour", (ours.cancelledWriteBytes * 3600) / ours.seconds, "bytes");
}

/** Timer wakeups per minute of the busiest event loop (the main thread's). */
function mainLoop(w: Wakeups, pid: number): { timersPerMin: number; ioPerMin: number; pollsPerMin: number } {
  const t = w.threads.find((x) => x.tid === pid) ?? w.threads[0];
  const perMin = (n: number) => (n * 60) / w.windowS;
  return { timersPerMin: perMin(t?.timers ?? 0), ioPerMin: perMin(t?.io ?? 0), pollsPerMin: perMin(t?.polls ?? 0) };
}

function reportWakeups(pid: number, w: Wakeups, barePid: number, wb: Wakeups): void {
  const ours = mainLoop(w, pid);
  const floor = mainLoop(wb, barePid);
  const timeouts = (x: Wakeups) =>
    x.timerTimeouts
      .slice(0, 4)
      .map(([ms, n]) => `${n}x ${ms} ms`)
      .join(", ") || "none";
  const calls = (x: Wakeups) =>
    x.syscalls
      .slice(0, 6)
      .map(([n, c]) => `${n} ${c}`)
      .join(", ");
  const loops = (x: Wakeups) =>
    x.threads.map((t) => `tid ${t.tid}: ${t.polls} (${t.timers} timers, ${t.io} I/O; ${t.nonBlocking} non-blocking polls besides)`).join("; ");
  note(
    `idle: daemon over ${w.windowS.toFixed(0)} s of strace: epoll returns ${loops(w)}; timed-out waits asked ${timeouts(w)}; ${w.calls} syscalls: ${calls(w)}`,
  );
  note(
    `idle: bare node:http over ${wb.windowS.toFixed(0)} s: epoll returns ${loops(wb) || "none"}; timed-out waits asked ${timeouts(wb)}; ${wb.calls} syscalls: ${calls(wb)}`,
  );
  const perMin = emit("idle", "main_loop_timer_wakeups_per_min", ours.timersPerMin, "per_min");
  emit("idle", "main_loop_io_wakeups_per_min", ours.ioPerMin, "per_min");
  emit("idle", "syscalls_per_s", w.calls / w.windowS, "per_s");
  emit("idle", "bare_main_loop_timer_wakeups_per_min", floor.timersPerMin, "per_min");
  emit("idle", "bare_syscalls_per_s", wb.calls / wb.windowS, "per_s");
  const limit = floor.timersPerMin + EXTRA_TIMER_WAKEUPS_PER_MIN;
  const met = target("idle", "main_loop_timer_wakeups_per_min", perMin, "<=", Math.round(limit * 100) / 100);
  const top = w.timerTimeouts[0];
  summarize("idle timer wakeups of the main loop, per minute (most asked timeout)", "1k", {
    text: `${sig3(perMin)}/min${top ? ` (${top[0]} ms)` : ""}`,
    floor: `${sig3(floor.timersPerMin)}/min node:http`,
    target: `<= node:http + ${EXTRA_TIMER_WAKEUPS_PER_MIN}/min`,
    met,
  });
}
