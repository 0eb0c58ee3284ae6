// sd_notify against real daemon processes: a receiver plays systemd's side of
// NOTIFY_SOCKET (test/support/notify-receiver.ts) and checks READY=1 once the
// socket answers, STATUS for serving and sealed, WATCHDOG=1 at half of
// WATCHDOG_USEC (only for our pid), STOPPING=1 on SIGTERM with a prompt clean
// exit, abstract sockets, and that a missing or unusable socket never costs the
// service more than one warning.
import assert from "node:assert/strict";
import fs from "node:fs";
import path from "node:path";
import { test } from "node:test";
import { demoConfig, eventually, launch, sleep, type RunningDaemon } from "../../support/daemon.js";
import { abstractAddress, notifyReceiver, type NotifyReceiver } from "../../support/notify-receiver.js";
import { assertNoLeaks, DEMO_VALUES } from "../../support/planted.js";
import { tmpDir } from "../../support/tmp.js";

const [API_TOKEN] = DEMO_VALUES;
const WARNING = /cannot notify systemd/g;

/** The sd_notify variables exactly as given: the test runner's own (if any) never leak in. */
function notifyEnv(vars: { NOTIFY_SOCKET?: string; WATCHDOG_USEC?: string; WATCHDOG_PID?: string }): NodeJS.ProcessEnv {
  return { NOTIFY_SOCKET: undefined, WATCHDOG_USEC: undefined, WATCHDOG_PID: undefined, ...vars };
}

async function lookupWorks(d: RunningDaemon): Promise<void> {
  await eventually(async () => (await d.get("/v1/secrets/demo/api-token?format=raw")).body === API_TOKEN, 10_000, "demo/api-token served");
}

async function stopPromptly(d: RunningDaemon): Promise<void> {
  const t0 = Date.now();
  assert.equal(await d.stop(), 0, "SIGTERM: clean exit");
  assert.ok(Date.now() - t0 < 5_000, `exited ${Date.now() - t0} ms after SIGTERM`);
}

function assertNoSecretsSent(rx: NotifyReceiver): void {
  assertNoLeaks(rx.messages.map((m) => m.text).join("\n"), "sd_notify messages");
}

test("READY=1 as soon as the socket listens (before the key is unsealed), from the daemon's own pid; STATUS follows the unseal; STOPPING=1 on SIGTERM and a prompt clean exit", async (t) => {
  const dir = tmpDir(t);
  const rx = await notifyReceiver(t, path.join(dir, "notify.sock"));
  const d = await launch(t, dir, demoConfig(dir), { env: notifyEnv({ NOTIFY_SOCKET: rx.address }), waitFor: "none" });

  const ready = await rx.waitFor("READY", "1");
  const h = await d.get("/v1/health", { timeoutMs: 1_000 });
  assert.ok(h.status === 200 || h.status === 503, `the socket answers as soon as READY=1 is seen (${h.status})`);
  assert.equal(ready.pid, d.child.pid, "sent by the main process itself (NotifyAccess=main)");
  assert.equal(ready.fields.STATUS, "sealed: unsealing the cache key");
  const serving = await rx.waitFor("STATUS", "serving 3 secrets");
  assert.ok(serving.at >= ready.at);
  assert.equal((await d.get("/v1/health")).json().sealed, false);
  assert.equal(rx.count("READY", "1"), 1, "READY=1 is sent once");
  await lookupWorks(d);

  await stopPromptly(d);
  const stopping = await rx.waitFor("STOPPING", "1", 5_000);
  assert.equal(stopping.fields.STATUS, "stopping");
  assert.equal(stopping.pid, d.child.pid);
  assert.equal(rx.count("WATCHDOG", "1"), 0, "no pings without WATCHDOG_USEC");
  assert.equal(d.output().match(WARNING), null, "no warning when systemd is reachable");
  assertNoSecretsSent(rx);
});

test("WATCHDOG=1 pings at about half of WATCHDOG_USEC from the main process, and none after STOPPING=1", async (t) => {
  const dir = tmpDir(t);
  const rx = await notifyReceiver(t, path.join(dir, "notify.sock"));
  const usec = 300_000; // pings every 150 ms
  const d = await launch(t, dir, demoConfig(dir), { env: notifyEnv({ NOTIFY_SOCKET: rx.address, WATCHDOG_USEC: String(usec) }), waitFor: "none" });
  const ready = await rx.waitFor("READY", "1");

  await sleep((3 * usec) / 1000);
  const pings = rx.messages.filter((m) => m.fields.WATCHDOG === "1");
  assert.ok(pings.length >= 2, `at least 2 pings within 3 x WATCHDOG_USEC (got ${pings.length})`);
  assert.ok(pings.length <= 12, `pings at about WATCHDOG_USEC/2, not faster (got ${pings.length} in ${(3 * usec) / 1000} ms)`);
  assert.ok(
    pings.every((p) => p.pid === d.child.pid && p.at >= ready.at),
    "pings come from the daemon, after READY=1",
  );

  await stopPromptly(d);
  await rx.waitFor("STOPPING", "1", 5_000);
  const after = rx.messages.slice(rx.messages.findIndex((m) => m.fields.STOPPING === "1"));
  assert.equal(after.filter((m) => m.fields.WATCHDOG === "1").length, 0, "no ping after STOPPING=1");
  assertNoSecretsSent(rx);
});

test("an abstract NOTIFY_SOCKET (@name) receives READY=1, pings and STOPPING=1", async (t) => {
  const dir = tmpDir(t);
  const rx = await notifyReceiver(t, abstractAddress());
  const d = await launch(t, dir, demoConfig(dir), { env: notifyEnv({ NOTIFY_SOCKET: rx.address, WATCHDOG_USEC: "200000" }), waitFor: "none" });
  const ready = await rx.waitFor("READY", "1");
  assert.equal(ready.pid, d.child.pid);
  await rx.waitFor("WATCHDOG", "1", 5_000);
  await stopPromptly(d);
  await rx.waitFor("STOPPING", "1", 5_000);
  assert.equal(d.output().match(WARNING), null);
});

test("WATCHDOG_PID naming another process: READY=1 but no pings", async (t) => {
  const dir = tmpDir(t);
  const rx = await notifyReceiver(t, path.join(dir, "notify.sock"));
  const d = await launch(t, dir, demoConfig(dir), {
    env: notifyEnv({ NOTIFY_SOCKET: rx.address, WATCHDOG_USEC: "100000", WATCHDOG_PID: String(process.pid) }),
    waitFor: "none",
  });
  await rx.waitFor("READY", "1");
  await sleep(1_000); // 20 intervals of 50 ms
  assert.equal(rx.count("WATCHDOG", "1"), 0);
  await stopPromptly(d);
  await rx.waitFor("STOPPING", "1", 5_000);
});

test("without NOTIFY_SOCKET the daemon serves normally and says nothing about systemd above debug", async (t) => {
  const dir = tmpDir(t);
  const d = await launch(t, dir, demoConfig(dir), { env: notifyEnv({ WATCHDOG_USEC: "100000" }) });
  await lookupWorks(d);
  const out = d.output();
  assert.equal(out.match(WARNING), null);
  assert.ok((out.match(/NOTIFY_SOCKET/g) ?? []).length <= 1, "at most one (debug) line");
  for (const line of out.split("\n").filter((l) => l.includes("NOTIFY_SOCKET"))) assert.equal(JSON.parse(line).level, "debug");
  await stopPromptly(d);
});

test("a NOTIFY_SOCKET that cannot be used costs one warning, never the service", async (t) => {
  for (const [what, address] of [
    ["a path nothing listens on", "missing/notify.sock"],
    ["a relative path", "relative/notify.sock"],
    ["an abstract name nothing listens on", abstractAddress()],
  ] as const) {
    const dir = tmpDir(t);
    const value = address.startsWith("missing/") ? path.join(dir, address) : address;
    const d = await launch(t, dir, demoConfig(dir), { env: notifyEnv({ NOTIFY_SOCKET: value, WATCHDOG_USEC: "100000" }) });
    await lookupWorks(d);
    await sleep(500); // ~10 failed pings
    const warnings = d.output().match(WARNING) ?? [];
    assert.equal(warnings.length, 1, `${what}: exactly one warning (got ${warnings.length})`);
    await stopPromptly(d);
  }
});

test("a daemon that comes up sealed sends READY=1 with STATUS=sealed: <reason>, then STATUS=serving once it unseals", async (t) => {
  const dir = tmpDir(t);
  const cfg = demoConfig(dir);
  const first = await launch(t, dir, cfg, { env: notifyEnv({}), waitFor: "synced" });
  assert.equal(await first.stop(), 0);
  const hostKey = path.join(dir, "data", "host.key");
  fs.chmodSync(hostKey, 0o644); // refused: the host key must not be readable by others

  const rx = await notifyReceiver(t, path.join(dir, "notify.sock"));
  const d = await launch(t, dir, cfg, { env: notifyEnv({ NOTIFY_SOCKET: rx.address }), waitFor: "none" });
  const ready = await rx.waitFor("READY", "1");
  assert.match(ready.fields.STATUS ?? "", /^sealed: /);
  const problem = await eventually(() => rx.messages.find((m) => m.fields.STATUS?.includes(hostKey)), 10_000, "a STATUS naming the problem");
  assert.match(problem.fields.STATUS!, /^sealed: /);
  assert.equal((await d.get("/v1/health")).json().status, "sealed", "the socket answers, sealed");

  fs.chmodSync(hostKey, 0o600);
  await rx.waitFor("STATUS", "serving 3 secrets", 20_000);
  assert.equal(rx.count("READY", "1"), 1, "READY=1 is not repeated on unseal");
  await lookupWorks(d);
  await stopPromptly(d);
  assertNoSecretsSent(rx);
});
