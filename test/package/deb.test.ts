// The amd64 .deb installed with apt into a clean debootstrap root, as an operator
// would: doctor, a real daemon as the sealcache user serving a secret over its
// socket, an upgrade that keeps the cache and a changed conffile, remove, purge.
// Needs the packages `npm run test:package` builds first (releases 1 and 2).
import assert from "node:assert/strict";
import fs from "node:fs";
import path from "node:path";
import { after, before, test } from "node:test";
import type { ChildProcess } from "node:child_process";
import { inRoot, makeDebianRoot, mustInRoot, repackHostNode, spawnInRoot, stopChild } from "../support/chroot.js";
import { eventually } from "../support/daemon.js";
import { assertNoLeaks, DEMO_VALUES } from "../support/planted.js";
import { req } from "../support/http.js";
import { builtPackage, packagedConfig } from "../support/packages.js";

const work = fs.mkdtempSync("/tmp/sc-pkg-deb-");
const root = path.join(work, "root");
const log = path.join(work, "daemon.log");
const socket = path.join(root, "run/sealcache/sealcache.sock");
const [token] = DEMO_VALUES;
let daemon: ChildProcess | undefined;

const CONFIG = `# changed by the operator\n${packagedConfig("{ user: agent }")}`;

before(() => {
  makeDebianRoot(root);
  const pkgs = path.join(root, "tmp/pkgs");
  fs.mkdirSync(pkgs);
  repackHostNode(pkgs);
  for (const release of [1, 2]) fs.copyFileSync(builtPackage("deb", "amd64", release), path.join(pkgs, `sealcache-${release}.deb`));
});

after(async () => {
  if (daemon) await stopChild(daemon, "SIGKILL");
  if (fs.existsSync(log)) assertNoLeaks(fs.readFileSync(log), "the packaged daemon's output");
  fs.rmSync(work, { recursive: true, force: true });
});

function apt(...args: string[]) {
  return mustInRoot(root, ["apt-get", "-y", "-o", "Dpkg::Options::=--force-confdef", "-o", "Dpkg::Options::=--force-confold", ...args]);
}

async function startDaemon(): Promise<number> {
  // A test that failed midway leaves its daemon running; it holds data_dir's lock.
  if (daemon) await stopChild(daemon, "SIGKILL");
  // What systemd's RuntimeDirectory= does before ExecStart.
  mustInRoot(root, ["install", "-d", "-o", "sealcache", "-g", "sealcache", "-m", "0750", "/run/sealcache"]);
  daemon = spawnInRoot(root, ["setpriv", "--reuid=sealcache", "--regid=sealcache", "--init-groups", "/usr/bin/sealcache", "daemon"], log);
  const pid = daemon.pid!;
  await eventually(
    async () => fs.existsSync(socket) && (await req(socket, "/v1/health").catch(() => undefined))?.status === 200,
    30_000,
    "the packaged daemon's socket",
  );
  return pid;
}

async function stopDaemon(): Promise<void> {
  const code = await stopChild(daemon!);
  daemon = undefined;
  assert.equal(code, 0, "the daemon exits 0 on SIGTERM");
}

test("apt installs the .deb into a clean root: user, group, 0700 data dir, unit, man page, conffile", () => {
  mustInRoot(root, ["apt-get", "update"]);
  apt("install", "/tmp/pkgs/" + fs.readdirSync(path.join(root, "tmp/pkgs")).find((f) => f.startsWith("nodejs_")), "/tmp/pkgs/sealcache-1.deb");
  assert.match(mustInRoot(root, ["getent", "passwd", "sealcache"]).stdout, /^sealcache:x:\d+:\d+:.*:\/var\/lib\/sealcache:\/usr\/sbin\/nologin$/m);
  assert.match(mustInRoot(root, ["getent", "group", "sealcache"]).stdout, /^sealcache:/);
  assert.equal(mustInRoot(root, ["stat", "-c", "%a %U %G", "/var/lib/sealcache"]).stdout.trim(), "700 sealcache sealcache");
  for (const f of [
    "usr/lib/systemd/system/sealcache.service",
    "usr/share/man/man1/sealcache.1.gz",
    "etc/sealcache/sealcache.yaml",
    "usr/share/doc/sealcache/copyright",
  ]) {
    assert.ok(fs.existsSync(path.join(root, f)), `${f} is installed`);
  }
  assert.match(mustInRoot(root, ["dpkg-query", "-W", "-f=${Conffiles}", "sealcache"]).stdout, /\/etc\/sealcache\/sealcache\.yaml [0-9a-f]{32}/);
  assert.match(mustInRoot(root, ["sealcache", "--version"]).stdout, /^sealcache \d+\.\d+\.\d+/);
});

test("the packaged doctor reads the shipped config and says how to run without a TPM", () => {
  const r = inRoot(root, ["sealcache", "doctor"]);
  assert.notEqual(r.status, 0, "no TPM in the root: doctor reports a failure");
  assert.match(r.stdout, /ok\s+config: \/etc\/sealcache\/sealcache\.yaml is valid/);
  assert.match(r.stdout + r.stderr, /seal\.type: host/);
});

test("the daemon runs as the sealcache user and serves a secret over its socket to root and to an agent in group sealcache", async (t) => {
  fs.writeFileSync(path.join(root, "etc/sealcache/sealcache.yaml"), CONFIG);
  fs.mkdirSync(path.join(root, "etc/sealcache/files"));
  fs.writeFileSync(path.join(root, "etc/sealcache/files/api-token"), token);
  // As the conffile says: backend files belong to the sealcache user alone, not to its group (the agents').
  mustInRoot(root, ["chown", "-R", "sealcache:root", "/etc/sealcache/files"]);
  mustInRoot(root, ["chmod", "-R", "u=rX,go=", "/etc/sealcache/files"]);
  mustInRoot(root, ["useradd", "--create-home", "--groups", "sealcache", "agent"]);
  mustInRoot(root, ["useradd", "--create-home", "stranger"]);

  const pid = await startDaemon();
  assert.equal(fs.statSync(`/proc/${pid}`).uid, Number(mustInRoot(root, ["id", "-u", "sealcache"]).stdout.trim()), "the daemon runs as sealcache");
  assert.equal(fs.statSync(socket).mode & 0o777, 0o660);
  await eventually(() => inRoot(root, ["sealcache", "get", "--raw", "demo/api-token"]).stdout === token, 20_000, "the first sync");

  const agent = inRoot(root, ["setpriv", "--reuid=agent", "--regid=agent", "--init-groups", "sealcache", "get", "--raw", "demo/api-token"]);
  assert.equal(agent.stdout, token, agent.stderr);
  const peek = inRoot(root, ["setpriv", "--reuid=agent", "--regid=agent", "--init-groups", "cat", "/etc/sealcache/files/api-token"]);
  assert.notEqual(peek.status, 0, "an agent in group sealcache cannot read the backend file behind the socket");
  const stranger = inRoot(root, ["setpriv", "--reuid=stranger", "--regid=stranger", "--init-groups", "sealcache", "get", "demo/api-token"]);
  // A permission refusal (4, forbidden), not the daemon being down (5), naming the group to join.
  assert.equal(stranger.status, 4, "a user outside group sealcache cannot reach the socket");
  assert.match(stranger.stderr, /open to its group sealcache only; add uid \d+ to it \(usermod -aG sealcache USER\)/);
  assertNoLeaks(stranger.stderr, "a refused CLI's error");

  const doctor = inRoot(root, ["sealcache", "doctor"]);
  assert.match(doctor.stdout, /ok\s+socket/);

  // Idle RSS of the packaged daemon, for the README's figures.
  await new Promise((r) => setTimeout(r, 2_000));
  const rss = Number(/VmRSS:\s+(\d+) kB/.exec(fs.readFileSync(`/proc/${pid}/status`, "utf8"))![1]) / 1024;
  t.diagnostic(`packaged daemon idle RSS: ${rss.toFixed(1)} MB`);
  await stopDaemon();
});

test("an upgrade to a higher release keeps the sealed cache and the operator's conffile", async () => {
  // The source is gone: after the upgrade the value can only come from the cache.
  fs.rmSync(path.join(root, "etc/sealcache/files/api-token"));
  apt("install", "/tmp/pkgs/sealcache-2.deb");
  assert.match(mustInRoot(root, ["dpkg-query", "-W", "-f=${Version}", "sealcache"]).stdout, /-2$/);
  assert.equal(fs.readFileSync(path.join(root, "etc/sealcache/sealcache.yaml"), "utf8"), CONFIG);
  await startDaemon();
  const r = inRoot(root, ["sealcache", "get", "--raw", "demo/api-token"]);
  assert.equal(r.stdout, token, r.stderr);
  await stopDaemon();
});

test("remove keeps the sealed cache and says so; purge deletes it and says so", () => {
  const removed = apt("remove", "sealcache");
  assert.match(removed.stdout + removed.stderr, /kept the sealed cache in \/var\/lib\/sealcache/);
  assert.ok(fs.existsSync(path.join(root, "var/lib/sealcache/cache.db")));
  assert.ok(fs.existsSync(path.join(root, "etc/sealcache/sealcache.yaml")), "remove keeps the conffile");
  const purged = apt("purge", "sealcache");
  assert.match(purged.stdout + purged.stderr, /deleted the sealed cache \/var\/lib\/sealcache/);
  assert.ok(!fs.existsSync(path.join(root, "var/lib/sealcache")));
  assert.ok(!fs.existsSync(path.join(root, "etc/sealcache/sealcache.yaml")), "purge deletes the conffile");
});
