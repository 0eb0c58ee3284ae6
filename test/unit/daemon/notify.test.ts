// SystemdNotifier with a fake transport and fake timers: what is sent when, how
// the sd_notify variables are read (and removed, so children do not inherit
// them), and that trouble costs one warning. The sockaddr_un encoding is checked
// against the platform's layout as koffi computes it.
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import os from "node:os";
import { test } from "node:test";
import { notifyAddress, unixAddress } from "../../../native/sd-notify.js";
import { SystemdNotifier, sealedStatus, servingStatus, takeNotifyEnv, type NotifyTransport } from "../../../src/daemon/notify.js";
import { createLogger } from "../../../src/log.js";

const PID = 4242;
const { ECONNREFUSED, EAGAIN } = os.constants.errno;

function capture() {
  const lines: { level: string; msg: string }[] = [];
  const logger = createLogger({ level: "debug", destination: { write: (s: string) => void lines.push(JSON.parse(s)) } });
  return { logger, lines, at: (level: string) => lines.filter((l) => l.level === level) };
}

/** A transport that records messages; `errnos` are returned by successive sends (then 0). */
function fakeTransport(errnos: number[] = []) {
  const sent: string[] = [];
  let closed = false;
  const transport: NotifyTransport = {
    send: (m) => (sent.push(m), errnos.shift() ?? 0),
    close: () => void (closed = true),
  };
  return { transport, sent, closed: () => closed };
}

function notifier(env: NodeJS.ProcessEnv, transport: NotifyTransport | string = fakeTransport().transport) {
  const log = capture();
  const connected: string[] = [];
  const n = new SystemdNotifier({ logger: log.logger, env, pid: PID, connect: (a) => (connected.push(a), transport) });
  return { n, log, connected };
}

test("takeNotifyEnv: the watchdog interval is half of WATCHDOG_USEC, and only for our pid", () => {
  const cases: [NodeJS.ProcessEnv, number | undefined, boolean][] = [
    [{ NOTIFY_SOCKET: "/run/n", WATCHDOG_USEC: "30000000" }, 15_000, false],
    [{ NOTIFY_SOCKET: "/run/n", WATCHDOG_USEC: "30000000", WATCHDOG_PID: String(PID) }, 15_000, false],
    [{ NOTIFY_SOCKET: "/run/n", WATCHDOG_USEC: "30000000", WATCHDOG_PID: "1" }, undefined, false],
    [{ NOTIFY_SOCKET: "/run/n", WATCHDOG_USEC: "30000000", WATCHDOG_PID: "not-a-pid" }, undefined, false],
    [{ NOTIFY_SOCKET: "/run/n", WATCHDOG_USEC: "1" }, 1, false],
    [{ NOTIFY_SOCKET: "/run/n", WATCHDOG_USEC: String(10 ** 13) }, 2 ** 31 - 1, false],
    [{ NOTIFY_SOCKET: "/run/n", WATCHDOG_USEC: "0" }, undefined, true],
    [{ NOTIFY_SOCKET: "/run/n", WATCHDOG_USEC: "30s" }, undefined, true],
    [{ NOTIFY_SOCKET: "/run/n", WATCHDOG_USEC: "-5" }, undefined, true],
    [{ NOTIFY_SOCKET: "/run/n" }, undefined, false],
  ];
  for (const [env, ms, problem] of cases) {
    const r = takeNotifyEnv({ ...env }, PID);
    assert.equal(r.watchdogMs, ms, JSON.stringify(env));
    assert.equal(r.watchdogProblem !== undefined, problem, JSON.stringify(env));
    assert.equal(r.socket, "/run/n");
  }
  assert.equal(takeNotifyEnv({ NOTIFY_SOCKET: "" }, PID).socket, undefined);
});

test("the sd_notify variables are removed from the environment, so child processes do not inherit them", () => {
  const env: NodeJS.ProcessEnv = { NOTIFY_SOCKET: "@x", WATCHDOG_USEC: "1000", WATCHDOG_PID: String(PID), PATH: "/bin", OTHER: "kept" };
  notifier(env);
  assert.deepEqual(env, { PATH: "/bin", OTHER: "kept" });

  // The real process.env, as the daemon uses it, and a real child process.
  const saved = { NOTIFY_SOCKET: process.env.NOTIFY_SOCKET, WATCHDOG_USEC: process.env.WATCHDOG_USEC, WATCHDOG_PID: process.env.WATCHDOG_PID };
  try {
    Object.assign(process.env, { NOTIFY_SOCKET: "@sealcache-unit-test", WATCHDOG_USEC: "1000000", WATCHDOG_PID: String(process.pid) });
    const log = capture();
    const n = new SystemdNotifier({ logger: log.logger, connect: () => fakeTransport().transport });
    assert.equal(n.watchdogIntervalMs, 500, "read before being removed");
    const child = spawnSync(process.execPath, ["-e", "process.stdout.write(JSON.stringify(Object.keys(process.env)))"], { encoding: "utf8" });
    const keys: string[] = JSON.parse(child.stdout);
    assert.deepEqual(
      keys.filter((k) => /^(NOTIFY_SOCKET|WATCHDOG_)/.test(k)),
      [],
    );
    assert.ok(keys.includes("PATH"), "the rest of the environment is inherited");
  } finally {
    for (const [k, v] of Object.entries(saved))
      if (v === undefined) delete process.env[k];
      else process.env[k] = v;
  }
});

test("READY=1 carries the status; pings every WATCHDOG_USEC/2 from then on; STOPPING=1 ends them; close closes", (t) => {
  t.mock.timers.enable({ apis: ["setInterval", "setTimeout"] });
  const fake = fakeTransport();
  const { n, connected } = notifier({ NOTIFY_SOCKET: "/run/systemd/notify", WATCHDOG_USEC: "2000000" }, fake.transport);
  assert.deepEqual(connected, ["/run/systemd/notify"]);
  assert.equal(n.watchdogIntervalMs, 1000);

  n.status(sealedStatus("before ready")); // READY=1 carries the status; nothing before it
  t.mock.timers.tick(5000);
  assert.deepEqual(fake.sent, [], "nothing, not even pings, before READY=1");

  n.ready(servingStatus(12));
  assert.deepEqual(fake.sent, ["READY=1\nSTATUS=serving 12 secrets"]);
  t.mock.timers.tick(3000);
  assert.equal(fake.sent.filter((m) => m === "WATCHDOG=1").length, 3);

  n.status(servingStatus(12)); // unchanged: not sent
  n.status(sealedStatus("the TPM is in lockout\nSTOPPING=1")); // one line: no injected assignment
  n.ready(servingStatus(1)); // READY=1 once
  assert.deepEqual(fake.sent.slice(4), ["STATUS=sealed: the TPM is in lockout STOPPING=1"]);

  n.stopping();
  n.stopping();
  t.mock.timers.tick(5000);
  assert.deepEqual(fake.sent.slice(5), ["STOPPING=1\nSTATUS=stopping"], "once, and no ping after it");
  n.status(servingStatus(3));
  assert.equal(fake.sent.length, 6, "no STATUS after stopping");
  n.close();
  assert.equal(fake.closed(), true);
});

test("long status texts are cut; servingStatus counts, never names", () => {
  const fake = fakeTransport();
  const { n } = notifier({ NOTIFY_SOCKET: "/run/n" }, fake.transport);
  n.ready(sealedStatus("x".repeat(5000)));
  assert.ok(fake.sent[0]!.length < 300);
  assert.equal(servingStatus(1), "serving 1 secret");
  assert.equal(servingStatus(0), "serving 0 secrets");
});

test("without NOTIFY_SOCKET nothing is opened or sent, and nothing is logged above debug", (t) => {
  t.mock.timers.enable({ apis: ["setInterval", "setTimeout"] });
  const { n, log, connected } = notifier({ WATCHDOG_USEC: "1000000" });
  n.ready("serving");
  t.mock.timers.tick(10_000);
  n.stopping();
  n.close();
  assert.deepEqual(connected, []);
  assert.equal(n.watchdogIntervalMs, undefined);
  assert.ok(log.lines.every((l) => l.level === "debug"));
  assert.ok(log.lines.length <= 1);
});

test("an unusable NOTIFY_SOCKET costs one warning however many messages fail; recovery is logged", (t) => {
  t.mock.timers.enable({ apis: ["setInterval", "setTimeout"] });
  const fake = fakeTransport(Array(20).fill(ECONNREFUSED));
  const { n, log } = notifier({ NOTIFY_SOCKET: "/run/n", WATCHDOG_USEC: "200000" }, fake.transport);
  n.ready("serving");
  t.mock.timers.tick(1900); // 19 failed pings
  assert.equal(log.at("warn").length, 1);
  assert.match(JSON.stringify(log.at("warn")[0]), /ECONNREFUSED/);
  t.mock.timers.tick(200); // accepted again
  assert.equal(log.at("info").length, 1);
  assert.equal(log.at("warn").length, 1);

  const refused = notifier({ NOTIFY_SOCKET: "vsock:2:1234" }, "not an absolute path or @abstract socket name");
  refused.n.ready("serving");
  refused.n.stopping();
  assert.equal(refused.log.at("warn").length, 1);
  const thrown = new SystemdNotifier({
    logger: capture().logger,
    env: { NOTIFY_SOCKET: "/run/n" },
    connect: () => {
      throw new Error("cannot load libc.so.6");
    },
  });
  thrown.ready("serving"); // does not throw
});

test("READY=1 is retried when systemd's queue is momentarily full (EAGAIN); pings are not", (t) => {
  t.mock.timers.enable({ apis: ["setInterval", "setTimeout"] });
  const fake = fakeTransport([EAGAIN, EAGAIN]);
  const { n, log } = notifier({ NOTIFY_SOCKET: "/run/n" }, fake.transport);
  n.ready("serving");
  for (let i = 0; i < 5; i++) t.mock.timers.tick(200);
  assert.deepEqual(fake.sent, Array(3).fill("READY=1\nSTATUS=serving"));
  assert.equal(log.at("warn").length, 0);

  const pinged = fakeTransport([0, EAGAIN]);
  const w = notifier({ NOTIFY_SOCKET: "/run/n", WATCHDOG_USEC: "2000000" }, pinged.transport);
  w.n.ready("serving");
  for (let i = 0; i < 19; i++) t.mock.timers.tick(100);
  assert.deepEqual(pinged.sent.slice(1), ["WATCHDOG=1"], "a refused ping waits for the next interval");
});

test("sockaddr_un: path sockets NUL-terminated, abstract ones with a leading NUL and exact length", () => {
  const p = unixAddress("/run/systemd/notify");
  assert.ok(typeof p !== "string");
  assert.equal(p.length, 2 + "/run/systemd/notify".length + 1);
  assert.equal(p.path.subarray(0, p.length - 2).toString(), "/run/systemd/notify\0");

  const a = unixAddress("@sealcache/notify");
  assert.ok(typeof a !== "string");
  assert.equal(a.path[0], 0);
  assert.equal(a.path.subarray(1, a.length - 2).toString(), "sealcache/notify");
  assert.equal(a.length, 2 + 1 + "sealcache/notify".length, "no trailing NUL: it would be part of the name");

  assert.equal(typeof unixAddress(`/${"x".repeat(106)}`), "object");
  assert.match(String(unixAddress(`/${"x".repeat(107)}`)), /longer than the 107 bytes/);
  assert.match(String(unixAddress(`@${"x".repeat(108)}`)), /1 to 107 bytes/);
  assert.match(String(unixAddress("@")), /1 to 107 bytes/);
  assert.match(String(unixAddress("run/notify")), /absolute path/);
  assert.match(String(unixAddress("vsock:2:1234")), /absolute path/);
  assert.match(String(unixAddress("/run/\0x")), /NUL/);

  // The platform's own layout (koffi computes offsetof(sockaddr_un, sun_path)).
  assert.deepEqual(notifyAddress("/run/systemd/notify"), p);
});
