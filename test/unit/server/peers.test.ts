// The peer tracker against a fake kernel and a fake /proc: identity read at accept,
// and a connection that stops speaking for anyone once its process has gone or its
// pid has been reused — with a pidfd, and by start time where there is none.
import assert from "node:assert/strict";
import { test } from "node:test";
import type { PeerCred } from "../../../native/libc.js";
import { PeerTracker, type PeerSys } from "../../../src/server/peers.js";
import { parseStat, parseStatus, type ProcReader, type ProcStat } from "../../../src/server/procfs.js";

interface FakeProc {
  uid: number;
  groups: number[];
  exe?: string;
  cgroup?: string;
  state: string;
  start: string;
}

/** A process table the test rewrites: exits, reaping and pid reuse. */
function world() {
  const procs = new Map<number, FakeProc>();
  const reads: string[] = [];
  const proc: ProcReader = {
    status: (pid) => {
      reads.push(`status ${pid}`);
      const p = procs.get(pid);
      return p && { uid: p.uid, groups: p.groups };
    },
    exe: (pid) => procs.get(pid)?.exe,
    cgroup: (pid) => procs.get(pid)?.cgroup,
    stat: (pid): ProcStat | undefined => {
      reads.push(`stat ${pid}`);
      const p = procs.get(pid);
      return p && { state: p.state, startTime: p.start };
    },
  };
  // pidfds: each refers to the process incarnation it was opened for.
  const pidfds = new Map<number, { pid: number; start: string }>();
  const closed: number[] = [];
  let nextFd = 100;
  let supported = true;
  const conns = new Map<number, PeerCred>();
  const sys: PeerSys = {
    peerCred: (fd) => conns.get(fd),
    peerPidfd: (fd) => {
      if (!supported) return "unsupported";
      const c = conns.get(fd);
      const p = c && procs.get(c.pid);
      if (!c || !p || p.state === "Z") return "gone";
      pidfds.set(nextFd, { pid: c.pid, start: p.start });
      return { pidfd: nextFd++ };
    },
    pidfdExited: (fd) => {
      const ref = pidfds.get(fd);
      const p = ref && procs.get(ref.pid);
      return !p || p.start !== ref.start || p.state === "Z";
    },
    closeFd: (fd) => void closed.push(fd),
  };
  return {
    procs,
    reads,
    closed,
    sys,
    proc,
    noPidfd: () => void (supported = false),
    connect(fd: number, pid: number, uid = 1000, gid = 1000) {
      conns.set(fd, { pid, uid, gid });
      return conns.get(fd)!;
    },
  };
}

const AGENT: FakeProc = { uid: 1000, groups: [2001], exe: "/opt/agent/bin/agent", cgroup: "0::/system.slice/edge-agent.service\n", state: "S", start: "5000" };

for (const mode of ["pidfd", "starttime"] as const) {
  test(`${mode}: identity is read at accept: uid/gid/pid from the kernel, groups, exe and unit from /proc`, () => {
    const w = world();
    if (mode === "starttime") w.noPidfd();
    w.procs.set(300, { ...AGENT });
    const t = new PeerTracker({ sys: w.sys, proc: w.proc });
    const peer = t.track(7, w.connect(7, 300, 1000, 1000));
    assert.equal(t.mode, mode);
    assert.equal(peer.problem, undefined);
    assert.deepEqual(peer.caller, { uid: 1000, gid: 1000, pid: 300, groups: [2001], exe: "/opt/agent/bin/agent", unit: "edge-agent.service" });
    assert.equal(peer.check(), undefined, "alive and unchanged");
    // Read once: a later change to the process's cgroup or exe does not change the
    // caller (rules naming an exe ask again through peer.current(): reverify.test.ts).
    w.procs.get(300)!.exe = "/usr/bin/evil";
    assert.equal(peer.caller!.exe, "/opt/agent/bin/agent");
    peer.release();
    if (mode === "pidfd") assert.deepEqual(w.closed, [100], "the pidfd is closed with the connection");
    else assert.deepEqual(w.closed, []);
  });

  test(`${mode}: once the connecting process has exited, every later request is refused`, () => {
    const w = world();
    if (mode === "starttime") w.noPidfd();
    w.procs.set(300, { ...AGENT });
    const peer = new PeerTracker({ sys: w.sys, proc: w.proc }).track(7, w.connect(7, 300));
    assert.equal(peer.check(), undefined);
    w.procs.get(300)!.state = "Z"; // exited, not yet reaped
    assert.match(peer.check() ?? "", /the process that opened this connection \(pid 300\) has exited/);
    w.procs.delete(300); // reaped
    assert.match(peer.check() ?? "", /has exited/);
  });

  test(`${mode}: a reused pid does not lend its new process's identity to the old connection`, () => {
    const w = world();
    if (mode === "starttime") w.noPidfd();
    w.procs.set(300, { ...AGENT, uid: 1000 });
    const peer = new PeerTracker({ sys: w.sys, proc: w.proc }).track(7, w.connect(7, 300));
    assert.equal(peer.check(), undefined);
    // The agent exits and pid 300 is handed to another process of the same account.
    w.procs.set(300, { ...AGENT, start: "9999", exe: "/usr/bin/python3" });
    assert.match(peer.check() ?? "", /has exited/, "the start time (or the pidfd) tells the incarnations apart");
    // Even if the old incarnation came back (it cannot), the verdict stays.
    w.procs.set(300, { ...AGENT });
    assert.match(peer.check() ?? "", /has exited/, "once gone, always gone");
  });

  test(`${mode}: a process that is gone before accept, or whose pid changed hands during it, is refused`, () => {
    const w = world();
    if (mode === "starttime") w.noPidfd();
    const t = new PeerTracker({ sys: w.sys, proc: w.proc });
    const none = t.track(7, w.connect(7, 301));
    assert.equal(none.caller, undefined);
    assert.match(none.check() ?? "", /pid 301\) has exited/);
    // Reused by another account between connect() and accept: the uid check catches it.
    w.procs.set(302, { ...AGENT, uid: 0 });
    const other = t.track(8, w.connect(8, 302, 1000));
    assert.equal(other.caller, undefined);
    assert.match(other.problem ?? "", /pid 302 now belongs to uid 0, not the uid 1000 that connected/);
    assert.ok(other.check() !== undefined);
    // Changed hands while /proc was being read: the start time after the reads differs.
    w.procs.set(303, { ...AGENT });
    const racing: ProcReader = {
      ...w.proc,
      cgroup: (pid) => {
        const c = w.proc.cgroup(pid);
        w.procs.set(303, { ...AGENT, start: "7777" });
        return c;
      },
    };
    const raced = new PeerTracker({ sys: w.sys, proc: racing, mode: t.mode }).track(9, w.connect(9, 303));
    assert.equal(raced.caller, undefined, "what was read may belong to the new process");
    if (mode === "pidfd") assert.deepEqual(w.closed, [100, 101], "the pidfds taken for refused callers are closed at once");
  });
}

test("a live process hidden from /proc (hidepid): with a pidfd the kernel's uid and gid stand; without one it is refused", () => {
  for (const mode of ["pidfd", "starttime"] as const) {
    const w = world();
    if (mode === "starttime") w.noPidfd();
    w.procs.set(300, { ...AGENT });
    const hidden: ProcReader = {
      status: () => undefined,
      exe: () => undefined,
      cgroup: () => undefined,
      stat: mode === "pidfd" ? () => undefined : w.proc.stat,
    };
    const peer = new PeerTracker({ sys: w.sys, proc: hidden }).track(7, w.connect(7, 300, 1000, 1000));
    if (mode === "pidfd") {
      assert.deepEqual(peer.caller, { uid: 1000, gid: 1000, pid: 300, groups: [], exe: undefined, unit: undefined });
      assert.equal(peer.check(), undefined);
      w.procs.delete(300);
      assert.match(peer.check() ?? "", /has exited/);
    } else {
      assert.equal(peer.caller, undefined, "no way to tell this process from a later one with its pid");
    }
  }
});

test("the kernel without SO_PEERPIDFD is detected once; pidfd mode checks no /proc file per request", () => {
  const w = world();
  w.procs.set(300, { ...AGENT });
  const t = new PeerTracker({ sys: w.sys, proc: w.proc });
  const peer = t.track(7, w.connect(7, 300));
  w.reads.length = 0;
  for (let i = 0; i < 5; i++) assert.equal(peer.check(), undefined);
  assert.deepEqual(w.reads, [], "a pidfd answers liveness by itself");
  const old = world();
  old.noPidfd();
  old.procs.set(300, { ...AGENT });
  const t2 = new PeerTracker({ sys: old.sys, proc: old.proc });
  const p2 = t2.track(7, old.connect(7, 300));
  old.reads.length = 0;
  p2.check();
  assert.deepEqual(old.reads, ["stat 300"], "the start time is read again before each request");
});

test("callers without credentials or without a visible pid", () => {
  const w = world();
  const t = new PeerTracker({ sys: w.sys, proc: w.proc });
  const anon = t.track(7, undefined);
  assert.equal(anon.caller, undefined);
  assert.match(anon.problem ?? "", /SO_PEERCRED/);
  assert.equal(anon.check(), undefined, "answered (health, metrics); policy refuses every read");
  const ns = t.track(8, { pid: 0, uid: 1000, gid: 1000 });
  assert.deepEqual(ns.caller, { uid: 1000, gid: 1000, pid: 0, groups: [] }, "the kernel's uid and gid stand; no exe or unit to match");
});

test("/proc parsers: status, and stat with a command name holding spaces and parentheses", () => {
  assert.deepEqual(parseStatus("Name:\tnode\nUid:\t1000\t1001\t1001\t1001\nGid:\t5\t5\t5\t5\nGroups:\t4 24 2001 \n"), { uid: 1001, groups: [4, 24, 2001] });
  assert.deepEqual(parseStatus("Uid:\t0\t0\t0\t0\nGroups:\n"), { uid: 0, groups: [] });
  assert.equal(parseStatus("Name: x\n"), undefined);
  const fields = Array.from({ length: 50 }, (_, i) => String(i + 3));
  fields[0] = "S";
  fields[19] = "123456789";
  assert.deepEqual(parseStat(`4242 (we ird) (name)) ${fields.join(" ")}\n`), { state: "S", startTime: "123456789" });
  assert.equal(parseStat("4242 (x) S 1 2\n"), undefined, "too short");
  assert.equal(parseStat("garbage"), undefined);
});
