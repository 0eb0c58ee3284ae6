// The exe of a connected process checked again for rules that name one: against a
// fake /proc whose exe the test rewrites (an exec after connect), through the peer
// tracker and the policy as the server uses them. Real processes doing it are in
// test/integration/server/reverify.test.ts.
import assert from "node:assert/strict";
import { test } from "node:test";
import type { PeerCred } from "../../../native/libc.js";
import type { Accounts } from "../../../src/policy/accounts.js";
import { Policy, type PolicyHost } from "../../../src/policy/policy.js";
import { PeerTracker, type PeerSys } from "../../../src/server/peers.js";
import type { ProcReader } from "../../../src/server/procfs.js";
import { ExeWatch, requestCaller } from "../../../src/server/reverify.js";

const AGENT = "/opt/agent/bin/agent";
const accounts: Accounts = { uidOf: (u) => ({ agent: 1000, other: 1001 })[u], gidOf: () => undefined };
const host: PolicyHost = { resolveExe: (p) => p };

/** One process (pid 300) whose exe and liveness the test changes, and a count of the exe reads. */
function proc1() {
  const st = { exe: AGENT as string | undefined, alive: true, exeReads: 0 };
  const proc: ProcReader = {
    status: () => ({ uid: 1000, groups: [] }),
    exe: () => (st.exeReads++, st.exe),
    cgroup: () => "0::/system.slice/agent.service\n",
    stat: () => ({ state: "S", startTime: "42" }),
  };
  const sys: PeerSys = {
    peerCred: () => ({ pid: 300, uid: 1000, gid: 1000 }),
    peerPidfd: () => ({ pidfd: 99 }),
    pidfdExited: () => !st.alive,
    closeFd: () => undefined,
  };
  return { st, proc, sys };
}

test("the exe is what it was at accept until the process runs another; then undefined for good, with the reason", () => {
  const { st, proc } = proc1();
  const w = new ExeWatch({ pid: 300, accepted: AGENT, proc, alive: () => st.alive });
  assert.equal(w.exe(), AGENT);
  assert.equal(w.exe(), AGENT);
  assert.equal(st.exeReads, 2, "read each time it is asked (the caller memoises per request)");
  assert.equal(w.changed, undefined);
  st.exe = "/usr/bin/bash";
  assert.equal(w.exe(), undefined, "an exec after connect: the exe rule's program is no longer the one behind the socket");
  assert.match(
    w.changed ?? "",
    /it runs "\/usr\/bin\/bash" now, not "\/opt\/agent\/bin\/agent" as when it connected, so rules naming an exe no longer match this connection/,
  );
  st.exe = AGENT;
  const reads = st.exeReads;
  assert.equal(w.exe(), undefined, "exec'ing the original back does not restore the grant: the socket may have been handed on meanwhile");
  assert.equal(st.exeReads, reads, "nothing more is read once it has changed");
});

test("an exe that cannot be read any more, or read from a process that has exited meanwhile, does not match", () => {
  const a = proc1();
  const w = new ExeWatch({ pid: 300, accepted: AGENT, proc: a.proc, alive: () => a.st.alive });
  a.st.exe = undefined; // became non-dumpable to a daemon without CAP_SYS_PTRACE, or gone
  assert.equal(w.exe(), undefined);
  assert.match(w.changed ?? "", /its executable can no longer be read/);
  // The link was read, but the pid may now name another process running the same program.
  const b = proc1();
  const v = new ExeWatch({ pid: 300, accepted: AGENT, proc: b.proc, alive: () => b.st.alive });
  b.proc.exe = () => ((b.st.alive = false), AGENT);
  assert.equal(v.exe(), undefined, "liveness is asked again after the read");
});

test("a request's caller reads the exe at most once, however many names it checks; the next request reads again", () => {
  const { st, proc } = proc1();
  const w = new ExeWatch({ pid: 300, accepted: AGENT, proc, alive: () => true });
  const base = { uid: 1000, gid: 1000, pid: 300, groups: [], exe: AGENT, unit: "agent.service" };
  const first = requestCaller(base, w);
  assert.deepEqual({ ...first, current: undefined }, { ...base, current: undefined }, "the identity read at accept, unchanged");
  for (let i = 0; i < 50; i++) assert.equal(first.current!.exe(), AGENT);
  assert.equal(st.exeReads, 1);
  const second = requestCaller(base, w);
  second.current!.exe();
  assert.equal(st.exeReads, 2);
});

test("through the tracker and the policy: an exec after connect loses the exe rule's grant and falls through to the next rule", () => {
  const { st, proc, sys } = proc1();
  const peer = new PeerTracker({ sys, proc }).track(7, sys.peerCred(7) as PeerCred);
  assert.equal(peer.caller?.exe, AGENT);
  st.exeReads = 0;
  const policy = new Policy(
    [
      { match: { user: "other", exe: AGENT }, allow: ["other/*"], admin: false },
      { match: { user: "agent", exe: AGENT }, allow: ["db/*"], admin: true },
      { match: { user: "agent" }, allow: ["api/*"], admin: false },
    ],
    accounts,
    0,
    host,
  );
  assert.equal(policy.namesExe, true);
  const req1 = peer.current()!;
  assert.equal(policy.canRead(req1, "db/password"), true);
  assert.equal(policy.isAdmin(req1), true);
  assert.equal(policy.canRead(req1, "api/token"), false, "first match wins: the exe rule");
  assert.equal(st.exeReads, 1, "read once for the request, and not for the rule of another user");
  st.exe = "/usr/bin/python3.11";
  const req2 = peer.current()!;
  assert.equal(policy.canRead(req2, "db/password"), false, "the program behind the socket changed");
  assert.equal(policy.isAdmin(req2), false);
  assert.equal(policy.canRead(req2, "api/token"), true, "the uid rule still matches: uid and gid are the connection's");
  assert.match(req2.current!.changed ?? "", /python3\.11/);
  assert.equal(peer.caller?.exe, AGENT, "the accept-time identity (for the audit trail) is unchanged");
});

test("without exe rules nothing is read per request; a caller whose exe was unknown at accept is handed over as is", () => {
  const { st, proc, sys } = proc1();
  const policy = new Policy([{ match: { user: "agent" }, allow: ["**"], admin: false }], accounts, 0, host);
  assert.equal(policy.namesExe, false, "the server then passes the accept-time caller and never calls current()");
  const unreadable: ProcReader = { ...proc, exe: () => undefined };
  const peer = new PeerTracker({ sys, proc: unreadable }).track(7, sys.peerCred(7) as PeerCred);
  assert.equal(peer.current(), peer.caller, "no exe to check: no exe rule can match it anyway");
  const deleted: ProcReader = { ...proc, exe: () => `${AGENT} (deleted)` };
  const p2 = new PeerTracker({ sys, proc: deleted }).track(8, sys.peerCred(8) as PeerCred);
  assert.equal(p2.caller?.exe, undefined);
  assert.equal(p2.current(), p2.caller);
  assert.equal(st.exeReads, 0);
});
