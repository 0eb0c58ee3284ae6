// Fail read-only, not down: a data_dir that fills up (an SD card, a small
// partition) keeps the cached values served and says so, and recovers by itself;
// the WAL never grows past a small bound.
import assert from "node:assert/strict";
import fs from "node:fs";
import path from "node:path";
import { describe, test } from "node:test";
import { cli, demoConfig, eventually, launch, sleep, type RunningDaemon } from "../../support/daemon.js";
import { DEMO_VALUES, planted } from "../../support/planted.js";
import { mountTmpfs } from "../../support/tmpfs.js";
import { tmpDir } from "../../support/tmp.js";

interface Health {
  status: string;
  store: { writable: boolean; since: string | null; reason: string | null };
  providers: { name: string; online: boolean; last_error: string | null }[];
  quarantined: unknown[];
}

const health = async (d: RunningDaemon) => (await d.get("/v1/health")).json<Health>();
const raw = async (d: RunningDaemon, name: string) => (await d.get(`/v1/secrets/${name}?format=raw`)).body;

/** 100 file secrets refreshed every second: the load that filled a 2 MiB data_dir with WAL in seconds. */
function manySecrets(dir: string): Record<string, unknown> {
  const src = path.join(dir, "many");
  fs.mkdirSync(src, { recursive: true });
  const secrets: Record<string, unknown> = {};
  for (let i = 0; i < 100; i++) {
    fs.writeFileSync(path.join(src, `s${i}`), `value-${i}-${"x".repeat(40)}`);
    secrets[`many/s${i}`] = { provider: "many", path: `s${i}` };
  }
  const base = demoConfig(dir);
  return {
    ...base,
    sync: { interval: "1s", jitter: 0.1, backoff_min: "200ms", backoff_max: "1s" },
    providers: { ...(base.providers as object), many: { type: "file", dir: src } },
    secrets: { ...(base.secrets as object), ...secrets },
  };
}

describe("a data_dir that fills up", { timeout: 120_000 }, () => {
  test("the WAL stays bounded: 100 secrets confirmed every second for 8 s", async (t) => {
    const dir = tmpDir(t);
    const disk = mountTmpfs(t, 16 * 1024);
    const d = await launch(t, dir, { ...manySecrets(dir), data_dir: disk.dir }, { waitFor: "synced" });
    let maxWal = 0;
    const until = Date.now() + 8_000;
    while (Date.now() < until) {
      maxWal = Math.max(maxWal, disk.used("cache.db-wal"));
      await sleep(100);
    }
    const db = disk.used("cache.db");
    assert.ok(maxWal <= 1024 * 1024, `the WAL reached ${maxWal} bytes (database ${db} bytes)`);
    assert.equal((await health(d)).store.writable, true);
  });

  test("filled while serving: cached values served, the disk named as the cause (not the provider), recovered by itself", async (t) => {
    const dir = tmpDir(t);
    const disk = mountTmpfs(t, 4 * 1024);
    const config = demoConfig(dir, { data_dir: disk.dir, sync: { interval: "1s", jitter: 0.1, backoff_min: "200ms", backoff_max: "1s" } });
    const d = await launch(t, dir, config, { waitFor: "synced" });
    assert.equal(await raw(d, "demo/api-token"), DEMO_VALUES[0]);
    disk.fill();
    const rotated = planted("after-disk-full");
    fs.writeFileSync(path.join(dir, "secrets/api-token"), `${rotated}\n`);
    const h = await eventually(
      async () => {
        const x = await health(d);
        return !x.store.writable && x;
      },
      10_000,
      "the store reported not writable",
    );
    assert.match(String(h.store.reason), /data_dir .* is full/);
    assert.equal(h.status, "degraded");
    assert.equal(h.providers.find((p) => p.name === "demo")!.online, true, "the provider is not blamed");
    assert.doesNotMatch(String(h.providers.find((p) => p.name === "demo")!.last_error), /unexpected error/);
    await d.waitForLog(/is full: serving cached values, not recording new ones/);
    for (let i = 0; i < 3; i++) {
      assert.equal(await raw(d, "demo/api-token"), DEMO_VALUES[0], "the cached value is served");
      assert.equal(await raw(d, "demo/db-password"), DEMO_VALUES[1]);
      await sleep(300);
    }
    const st = await cli(["status", "--config", d.configFile]);
    assert.match(st.stdout, /^NOT RECORDING since .*is full: serving cached values, not recording new ones$/m);
    disk.free();
    await eventually(async () => (await raw(d, "demo/api-token")) === rotated, 10_000, "the rotation recorded once there is space");
    assert.equal((await health(d)).store.writable, true);
    await d.waitForLog(/data_dir takes writes again/);
    assert.deepEqual((await health(d)).quarantined, []);
  });

  test("started on a full disk: the cached values are served read-only, and new ones recorded once there is space", async (t) => {
    const dir = tmpDir(t);
    const disk = mountTmpfs(t, 4 * 1024);
    const config = demoConfig(dir, { data_dir: disk.dir, sync: { interval: "1s", jitter: 0.1, backoff_min: "200ms", backoff_max: "1s" } });
    const first = await launch(t, dir, config, { waitFor: "synced" });
    assert.equal(await first.stop(), 0);
    disk.fill();
    const d = await launch(t, dir, config, { waitFor: "socket" });
    const served = await eventually(
      async () => {
        const r = await d.get("/v1/secrets/demo/api-token?format=raw");
        return r.status === 200 && r.body;
      },
      10_000,
      "the cached value served",
    );
    assert.equal(served, DEMO_VALUES[0]);
    const h = await health(d);
    assert.equal(h.store.writable, false);
    assert.match(String(h.store.reason), /is full/);
    assert.deepEqual(h.quarantined, [], "a full disk is not damage");
    const rotated = planted("after-start-full");
    fs.writeFileSync(path.join(dir, "secrets/api-token"), `${rotated}\n`);
    await sleep(1_500);
    assert.equal(await raw(d, "demo/api-token"), DEMO_VALUES[0], "not recorded while full");
    disk.free();
    await eventually(async () => (await raw(d, "demo/api-token")) === rotated, 10_000, "recorded once there is space");
    assert.equal((await health(d)).store.writable, true);
  });
});

describe("files that are not the daemon's in its own folders", { timeout: 60_000 }, () => {
  test("a regular file at the socket path is refused and left as it was", async (t) => {
    const dir = tmpDir(t);
    const config = demoConfig(dir);
    fs.writeFileSync(String(config.socket), "someone's data");
    const d = await launch(t, dir, config, { waitFor: "none" });
    const code = await new Promise<number | null>((r) => d.child.on("exit", (c) => r(c)));
    assert.equal(code, 5, "unavailable, as for a socket another process serves");
    assert.match(d.output(), /socket path .*s\.sock exists and is not a socket \(a regular file\)/);
    assert.equal(fs.readFileSync(String(config.socket), "utf8"), "someone's data");
  });

  test("a dangling symlink at the socket path gets a clear error, not a bare EADDRINUSE", async (t) => {
    const dir = tmpDir(t);
    const config = demoConfig(dir);
    fs.symlinkSync(path.join(dir, "nowhere"), String(config.socket));
    const d = await launch(t, dir, config, { waitFor: "none" });
    const code = await new Promise<number | null>((r) => d.child.on("exit", (c) => r(c)));
    assert.equal(code, 5);
    assert.match(d.output(), /socket path .*s\.sock is a symbolic link \(dangling\)/);
    assert.doesNotMatch(d.output(), /EADDRINUSE/);
    assert.equal(fs.lstatSync(String(config.socket)).isSymbolicLink(), true);
  });

  test("cache.db replaced by a symlink: never opened through it, the target's mode and content untouched; the daemon says why", async (t) => {
    const dir = tmpDir(t);
    const config = demoConfig(dir);
    const first = await launch(t, dir, config, { waitFor: "synced" });
    assert.equal(await first.stop(), 0);
    const dataDir = String(config.data_dir);
    const target = path.join(dir, "elsewhere.db");
    fs.renameSync(path.join(dataDir, "cache.db"), target);
    fs.chmodSync(target, 0o644);
    const before = fs.readFileSync(target);
    fs.symlinkSync(target, path.join(dataDir, "cache.db"));
    const d = await launch(t, dir, config, { waitFor: "socket" });
    const h = (await d.get("/v1/health")).json<{ sealed: boolean; sealed_reason: string }>();
    assert.equal(h.sealed, true);
    assert.match(h.sealed_reason, /cache\.db is a symbolic link; the cache is never opened through one/);
    assert.equal((await d.get("/v1/secrets/demo/api-token")).status, 503);
    assert.equal(fs.statSync(target).mode & 0o777, 0o644, "mode not changed through the link");
    assert.ok(fs.readFileSync(target).equals(before), "content not changed through the link");
    assert.equal(fs.existsSync(path.join(dataDir, "quarantine")), false, "a symlink is not damage to quarantine");
  });
});
