// The amd64 .deb under a real systemd: a debootstrap root booted with
// systemd-nspawn, the package installed with apt (its postinst enables and starts
// the unit), then the shipped unit as a gateway runs it: Type=notify READY and
// STATUS, the sandbox (user, capabilities, seccomp, directories), peer identity by
// unit through the sandbox, the watchdog restarting a hung daemon, a clean stop.
// Needs the packages `npm run test:package` builds first, and systemd-container.
import assert from "node:assert/strict";
import fs from "node:fs";
import path from "node:path";
import { after, before, test } from "node:test";
import { makeDebianRoot, mustInRoot, repackHostNode } from "../support/chroot.js";
import { eventually } from "../support/daemon.js";
import { bootMachine, inMachine, MACHINE_PACKAGES, mustInMachine, stopMachine, unitProperties, type Machine } from "../support/nspawn.js";
import { assertNoLeaks, DEMO_VALUES } from "../support/planted.js";
import { builtPackage, packagedConfig } from "../support/packages.js";

const work = fs.mkdtempSync("/tmp/sc-pkg-sd-");
const root = path.join(work, "root");
const consoleLog = path.join(work, "console.log");
const [token] = DEMO_VALUES;
const UNIT = "sealcache.service";
const STATE = ["ActiveState", "SubState", "MainPID", "StatusText", "NRestarts", "Result", "ExecMainStatus"];
const timings: string[] = [];
let machine: Machine | undefined;

const CONFIG = packagedConfig("{ user: agent, unit: edge-agent }");

async function timed<T>(label: string, fn: () => T | Promise<T>): Promise<T> {
  const start = Date.now();
  try {
    return await fn();
  } finally {
    timings.push(`${label}: ${((Date.now() - start) / 1000).toFixed(1)} s`);
  }
}

function m(): Machine {
  assert.ok(machine, "the machine booted");
  return machine;
}

function state(): Record<string, string> {
  return unitProperties(m(), UNIT, STATE);
}

function get(name: string): { status: number; stdout: string; stderr: string } {
  return inMachine(m(), ["sealcache", "get", "--raw", name]);
}

before(async () => {
  // /tmp inside the machine is a fresh tmpfs; the packages go where apt can see them.
  const pkgs = path.join(root, "srv/pkgs");
  await timed("debootstrap", () => makeDebianRoot(root));
  await timed("nodejs repack", () => {
    fs.mkdirSync(pkgs);
    repackHostNode(pkgs);
    fs.copyFileSync(builtPackage("deb", "amd64"), path.join(pkgs, "sealcache.deb"));
  });
  await timed(`apt install ${MACHINE_PACKAGES.join(" ")}`, () => {
    mustInRoot(root, ["apt-get", "update"]);
    mustInRoot(root, ["apt-get", "install", "-y", "--no-install-recommends", ...MACHINE_PACKAGES]);
  });
  const booted = await timed("boot", () => bootMachine(root, `sc-test-${process.pid}`, consoleLog));
  machine = booted.machine;
  assert.equal(booted.state, "running", `systemd's boot ends without failed units: ${inMachine(machine, ["systemctl", "--failed", "--no-legend"]).stdout}`);
});

after(async () => {
  if (machine) await stopMachine(machine);
  if (fs.existsSync(consoleLog)) assertNoLeaks(fs.readFileSync(consoleLog), "the machine's console");
  fs.rmSync(work, { recursive: true, force: true });
});

test("apt installs the .deb in a booted root; the postinst enables and starts the unit", async (t) => {
  const pkgs = path.join(root, "srv/pkgs");
  const node = fs.readdirSync(pkgs).find((f) => f.startsWith("nodejs_"))!;
  await timed("apt install nodejs sealcache", () => mustInMachine(m(), ["apt-get", "install", "-y", `/srv/pkgs/${node}`, "/srv/pkgs/sealcache.deb"]));
  for (const line of timings) t.diagnostic(line);
  assert.equal(inMachine(m(), ["systemctl", "is-enabled", UNIT]).stdout.trim(), "enabled");
  // The shipped config seals to a TPM and there is none: active, serving `sealed`.
  const s = await eventually(
    () => {
      const s = state();
      return s.ActiveState === "active" && s.StatusText !== "" && s;
    },
    20_000,
    "the unit the postinst started",
  );
  assert.match(s.StatusText!, /^sealed: .*TPM/, "STATUS= says why it is sealed");
});

test("with a host-sealed config the restarted unit is active, STATUS says what it serves, root gets the secret", async (t) => {
  fs.writeFileSync(path.join(root, "etc/sealcache/sealcache.yaml"), CONFIG);
  fs.mkdirSync(path.join(root, "etc/sealcache/files"));
  fs.writeFileSync(path.join(root, "etc/sealcache/files/api-token"), token);
  mustInMachine(m(), ["chgrp", "-R", "sealcache", "/etc/sealcache/files"]);
  mustInMachine(m(), ["chmod", "-R", "g+rX,o-rwx", "/etc/sealcache/files"]);
  mustInMachine(m(), ["useradd", "--create-home", "--groups", "sealcache", "agent"]);

  const start = Date.now();
  mustInMachine(m(), ["systemctl", "restart", UNIT]);
  // restart returns once READY=1 arrived (Type=notify).
  t.diagnostic(`systemctl restart (to READY=1): ${Date.now() - start} ms`);
  const s = await eventually(
    () => {
      const s = state();
      return /^serving 1 secret/.test(s.StatusText!) && s;
    },
    20_000,
    "STATUS=serving 1 secret",
  );
  assert.equal(s.ActiveState, "active");
  assert.equal(s.SubState, "running");
  assert.equal(s.NRestarts, "0");
  const r = get("demo/api-token");
  assert.equal(r.status, 0, r.stderr);
  assert.equal(r.stdout, token);
});

test("the service runs as sealcache with no capabilities, no new privileges and a seccomp filter; 0750 runtime and 0700 state dirs", () => {
  const pid = state().MainPID!;
  const status = mustInMachine(m(), ["cat", `/proc/${pid}/status`]).stdout;
  const field = (k: string) => new RegExp(`^${k}:\\s*(.*)$`, "m").exec(status)?.[1];
  const uid = mustInMachine(m(), ["id", "-u", "sealcache"]).stdout.trim();
  assert.deepEqual(field("Uid")!.split(/\s+/), [uid, uid, uid, uid], "real, effective, saved and fs uid are sealcache");
  for (const cap of ["CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"]) assert.equal(field(cap), "0000000000000000", `${cap} is empty`);
  assert.equal(field("NoNewPrivs"), "1");
  assert.equal(field("Seccomp"), "2", "a seccomp filter is in force");
  // prctl(PR_SET_DUMPABLE, 0) through koffi got past the filter: the kernel gives
  // the files in a non-dumpable process's /proc/PID to root.
  assert.equal(mustInMachine(m(), ["stat", "-c", "%U", `/proc/${pid}/status`]).stdout.trim(), "root", "the daemon is not dumpable");
  const modes = mustInMachine(m(), ["stat", "-c", "%a %U %G %n", "/run/sealcache", "/var/lib/sealcache", "/run/sealcache/sealcache.sock"]).stdout;
  assert.deepEqual(modes.trim().split("\n"), [
    "750 sealcache sealcache /run/sealcache",
    "700 sealcache sealcache /var/lib/sealcache",
    "660 sealcache sealcache /run/sealcache/sealcache.sock",
  ]);
});

test("peer identity works through the sandbox: a rule for agent in edge-agent.service admits it there and not in another unit", () => {
  const run = (unit: string) =>
    inMachine(m(), ["systemd-run", "--quiet", "--wait", "--pipe", `--unit=${unit}`, "-p", "User=agent", "sealcache", "get", "--raw", "demo/api-token"]);
  const admitted = run("edge-agent");
  assert.equal(admitted.status, 0, admitted.stderr);
  assert.equal(admitted.stdout, token);
  const refused = run("other-agent");
  assert.equal(refused.status, 4, `forbidden outside edge-agent.service: ${refused.stderr}`);
  assertNoLeaks(refused.stdout + refused.stderr, "a refused CLI's output");
});

test("systemd's watchdog restarts a hung daemon, which serves again", async (t) => {
  const dropIn = path.join(root, "etc/systemd/system/sealcache.service.d");
  fs.mkdirSync(dropIn, { recursive: true });
  fs.writeFileSync(path.join(dropIn, "watchdog.conf"), "[Service]\nWatchdogSec=4s\nRestartSec=1s\n");
  mustInMachine(m(), ["systemctl", "daemon-reload"]);
  mustInMachine(m(), ["systemctl", "restart", UNIT]);
  const prior = state();
  assert.equal(unitProperties(m(), UNIT, ["WatchdogUSec"]).WatchdogUSec, "4s");
  // Pings go out every 2 s while it is alive; stay past two of them first.
  await new Promise((r) => setTimeout(r, 4_500));
  assert.equal(state().MainPID, prior.MainPID, "an alive daemon keeps the watchdog fed");

  const start = Date.now();
  mustInMachine(m(), ["systemctl", "kill", "--kill-whom=main", "--signal=SIGSTOP", UNIT]);
  const restarted = await eventually(
    () => {
      const s = state();
      return s.NRestarts === String(Number(prior.NRestarts) + 1) && s.ActiveState === "active" && s;
    },
    20_000,
    "a restart by the watchdog",
  );
  t.diagnostic(`SIGSTOP to active again: ${Date.now() - start} ms`);
  assert.notEqual(restarted.MainPID, prior.MainPID);
  const journal = mustInMachine(m(), ["journalctl", "-u", UNIT, "--no-pager", "-o", "cat", "--since", "-1min"]).stdout;
  assert.match(journal, /Watchdog timeout \(limit 4s\)!/);
  await eventually(() => get("demo/api-token").stdout === token, 20_000, "the restarted daemon serving");
});

test("systemctl stop ends the daemon with exit status 0; no warning but host sealing's, and no planted value, in the journal", () => {
  const invocation = unitProperties(m(), UNIT, ["InvocationID"]).InvocationID!;
  mustInMachine(m(), ["systemctl", "stop", UNIT]);
  const s = state();
  assert.equal(s.ActiveState, "inactive");
  assert.equal(s.Result, "success");
  assert.equal(s.ExecMainStatus, "0");
  const journal = mustInMachine(m(), ["journalctl", "--no-pager", "-o", "export"]).stdout;
  assert.match(journal, /"msg":"unsealed; serving"/, "the daemon's logs reached the journal");
  assertNoLeaks(journal, "the machine's journal");
  // A sandbox option or syscall the daemon needs and is denied shows up here.
  const lines = mustInMachine(m(), ["journalctl", `_SYSTEMD_INVOCATION_ID=${invocation}`, "--no-pager", "-o", "cat"]).stdout.split("\n");
  const logged = lines.filter((l) => l.startsWith("{")).map((l) => JSON.parse(l) as { level: string; msg: string });
  assert.ok(
    logged.some((e) => e.msg === "stopped"),
    `the last run logged its stop:\n${lines.join("\n")}`,
  );
  const bad = logged.filter((e) => !["debug", "info"].includes(e.level) && !e.msg.startsWith("seal.type host"));
  assert.deepEqual(bad, [], "warnings or errors from the daemon under the unit");
});
