import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { overridesOf, type GlobalOptions } from "../../../src/cli/context.js";
import { parseConfig } from "../../../src/config/load.js";
import { scalarLeaves } from "../../../src/config/overrides.js";
import { configSchema } from "../../../src/config/schema.js";
import { isConfigError } from "../../../src/errors.js";

const FILE = "/etc/sealcache/sealcache.yaml";
const YAML = "sync: { interval: 5m, jitter: 0.2 }\nlog: { level: info }\n";
const flags = (o: Partial<GlobalOptions>): GlobalOptions => ({ config: undefined, socket: undefined, dataDir: undefined, logLevel: undefined, json: false, ...o });

describe("SEALCACHE_<PATH> environment overrides and precedence", () => {
  test("names are derived from the schema path", () => {
    const envs = scalarLeaves(configSchema("/"), []).map((l) => l.env);
    for (const e of ["SEALCACHE_DATA_DIR", "SEALCACHE_SOCKET", "SEALCACHE_SEAL_TYPE", "SEALCACHE_SYNC_INTERVAL", "SEALCACHE_SYNC_MAX_STALE", "SEALCACHE_LOG_LEVEL", "SEALCACHE_MQTT_URL"]) {
      assert.ok(envs.includes(e), `${e} missing from ${envs.join(", ")}`);
    }
    // Records and lists are file-only: their keys are data, not schema.
    assert.ok(!envs.some((e) => e.startsWith("SEALCACHE_PROVIDERS") || e.startsWith("SEALCACHE_SECRETS") || e.startsWith("SEALCACHE_POLICY")), envs.join(", "));
  });

  test("the file alone", () => {
    const c = parseConfig(YAML, { file: FILE, env: {} }).config;
    assert.equal(c.sync.interval, 300_000);
    assert.equal(c.log.level, "info");
  });

  test("SEALCACHE_SYNC_INTERVAL and SEALCACHE_LOG_LEVEL override the file", () => {
    const c = parseConfig(YAML, { file: FILE, env: { SEALCACHE_SYNC_INTERVAL: "1m", SEALCACHE_LOG_LEVEL: "debug" } }).config;
    assert.equal(c.sync.interval, 60_000);
    assert.equal(c.log.level, "debug");
    assert.equal(c.sync.jitter, 0.2, "keys not overridden keep the file's value");
  });

  test("an override applies when the file does not have the section at all; numbers are coerced", () => {
    const c = parseConfig("{}\n", { file: FILE, env: { SEALCACHE_SYNC_JITTER: "0.5", SEALCACHE_SYNC_CONCURRENCY: "8", SEALCACHE_LOG_LEVEL: "warn" } }).config;
    assert.equal(c.sync.jitter, 0.5);
    assert.equal(c.sync.concurrency, 8);
    assert.equal(c.log.level, "warn");
  });

  test("CLI flags beat the environment, which beats the file", () => {
    const env = { SEALCACHE_LOG_LEVEL: "debug", SEALCACHE_SOCKET: "/run/env.sock", SEALCACHE_SYNC_INTERVAL: "1m" };
    const c = parseConfig(YAML + "socket: /run/file.sock\n", {
      file: FILE,
      env,
      overrides: overridesOf(flags({ logLevel: "error", socket: "/run/flag.sock" })),
    }).config;
    assert.equal(c.log.level, "error");
    assert.equal(c.socket, "/run/flag.sock");
    assert.equal(c.sync.interval, 60_000, "no flag for sync.interval: the environment wins over the file");
  });

  test("relative --data-dir and --socket flags are taken from the working directory, not the config's folder", () => {
    const o = overridesOf(flags({ dataDir: "./mydata", socket: "s.sock" }));
    const c = parseConfig("{}\n", { file: FILE, env: {}, overrides: o }).config;
    assert.equal(c.data_dir, `${process.cwd()}/mydata`);
    assert.equal(c.socket, `${process.cwd()}/s.sock`);
  });

  test("a bad value from the environment is refused naming the key path", () => {
    assert.throws(
      () => parseConfig(YAML, { file: FILE, env: { SEALCACHE_SYNC_INTERVAL: "soon" } }),
      (e: unknown) => isConfigError(e) && e.issues.length === 1 && e.issues[0] === 'sync.interval: expected a duration such as "30s", "5m" or "1h", got "soon"',
    );
    assert.throws(
      () => parseConfig(YAML, { file: FILE, env: { SEALCACHE_LOG_LEVEL: "loud" } }),
      (e: unknown) => isConfigError(e) && /^log\.level: must be one of .*got "loud"$/.test(e.issues[0]!),
    );
  });

  test("SEALCACHE_ variables that are not config keys (SEALCACHE_CONFIG) are not treated as keys", () => {
    const c = parseConfig(YAML, { file: FILE, env: { SEALCACHE_CONFIG: "/elsewhere.yaml", SEALCACHE_SOCKET_PATH: "x" } }).config;
    assert.equal(c.socket, "/run/sealcache/sealcache.sock");
  });
});
