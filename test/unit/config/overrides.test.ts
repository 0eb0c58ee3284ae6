import assert from "node:assert/strict";
import fs from "node:fs";
import path from "node:path";
import { describe, test } from "node:test";
import { fileURLToPath } from "node:url";
import { overridesOf, type GlobalOptions } from "../../../src/cli/context.js";
import { parseConfig } from "../../../src/config/load.js";
import { NOT_CONFIG_KEYS, scalarLeaves } from "../../../src/config/overrides.js";
import { configSchema } from "../../../src/config/schema.js";
import { isConfigError } from "../../../src/errors.js";

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../../..");

const FILE = "/etc/sealcache/sealcache.yaml";
const YAML = "sync: { interval: 5m, jitter: 0.2 }\nlog: { level: info }\n";
const flags = (o: Partial<GlobalOptions>): GlobalOptions => ({
  config: undefined,
  socket: undefined,
  dataDir: undefined,
  logLevel: undefined,
  json: false,
  ...o,
});

describe("SEALCACHE_<PATH> environment overrides and precedence", () => {
  test("names are derived from the schema path", () => {
    const envs = scalarLeaves(configSchema("/"), []).map((l) => l.env);
    for (const e of [
      "SEALCACHE_DATA_DIR",
      "SEALCACHE_SOCKET",
      "SEALCACHE_SEAL_TYPE",
      "SEALCACHE_SYNC_INTERVAL",
      "SEALCACHE_SYNC_MAX_STALE",
      "SEALCACHE_LOG_LEVEL",
      "SEALCACHE_MQTT_URL",
    ]) {
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

  test("a bad value from the environment is refused naming the variable, and the header does not blame the file", () => {
    assert.throws(
      () => parseConfig(YAML, { file: FILE, env: { SEALCACHE_SYNC_INTERVAL: "soon" } }),
      (e: unknown) =>
        isConfigError(e) &&
        e.issues.length === 1 &&
        e.issues[0] === 'environment SEALCACHE_SYNC_INTERVAL: expected a duration such as "30s", "5m" or "1h", got "soon"' &&
        e.message.startsWith(`invalid config overrides (environment or flags) for ${FILE}:\n`),
    );
    assert.throws(
      () => parseConfig(YAML, { file: FILE, env: { SEALCACHE_LOG_LEVEL: "loud" } }),
      (e: unknown) => isConfigError(e) && /^environment SEALCACHE_LOG_LEVEL: must be one of .*got "loud"$/.test(e.issues[0]!),
    );
    assert.throws(
      () => parseConfig(YAML, { file: FILE, env: { SEALCACHE_SYNC_CONCURRENCY: "lots", SEALCACHE_METRICS_SECRET_NAMES: "yes" } }),
      (e: unknown) =>
        isConfigError(e) &&
        e.issues.join("\n") ===
          'environment SEALCACHE_SYNC_CONCURRENCY: expected a number, got "lots"\nenvironment SEALCACHE_METRICS_SECRET_NAMES: expected true or false, got "yes"',
    );
  });

  test("a bad value from a flag is refused naming the flag", () => {
    assert.throws(
      () => parseConfig(YAML, { file: FILE, env: {}, overrides: overridesOf(flags({ logLevel: "loud" })) }),
      (e: unknown) =>
        isConfigError(e) &&
        e.issues.length === 1 &&
        e.issues[0] === 'flag --log-level: must be one of "fatal", "error", "warn", "info", "debug", "trace", "silent", got "loud"' &&
        e.message.startsWith("invalid config overrides (environment or flags) for "),
    );
    // The flag wins over the environment, so it is the flag that is named.
    assert.throws(
      () => parseConfig(YAML, { file: FILE, env: { SEALCACHE_LOG_LEVEL: "debug" }, overrides: overridesOf(flags({ logLevel: "loud" })) }),
      (e: unknown) => isConfigError(e) && e.issues.length === 1 && e.issues[0]!.startsWith("flag --log-level: "),
    );
  });

  test("problems in the file and in the environment together: the file is named, each issue by its source", () => {
    assert.throws(
      () => parseConfig("sync: { interval: 5m, jitter: 3 }\n", { file: FILE, env: { SEALCACHE_LOG_LEVEL: "loud" } }),
      (e: unknown) =>
        isConfigError(e) &&
        e.message.startsWith(`invalid config ${FILE}:\n`) &&
        e.issues.length === 2 &&
        e.issues.includes("sync.jitter: must be at most 1") &&
        e.issues.some((i) => i.startsWith("environment SEALCACHE_LOG_LEVEL: must be one of")),
    );
  });

  test("an unknown SEALCACHE_* name is refused with the nearest valid one, like an unknown key in the file", () => {
    const refused = (env: NodeJS.ProcessEnv, issue: string) =>
      assert.throws(
        () => parseConfig(YAML, { file: FILE, env }),
        (e: unknown) => isConfigError(e) && e.issues.length === 1 && e.issues[0] === issue,
      );
    const see = '; see "Config reference" in README.md for the SEALCACHE_* names';
    refused({ SEALCACHE_SYNC_INTERVALL: "1m" }, `environment SEALCACHE_SYNC_INTERVALL: not a config key (did you mean SEALCACHE_SYNC_INTERVAL?)${see}`);
    refused({ SEALCACHE_SYNC_INTREVAL: "1m" }, `environment SEALCACHE_SYNC_INTREVAL: not a config key (did you mean SEALCACHE_SYNC_INTERVAL?)${see}`);
    refused({ SEALCACHE_SOCKET_PATH: "/run/x.sock" }, `environment SEALCACHE_SOCKET_PATH: not a config key (did you mean SEALCACHE_SOCKET?)${see}`);
    refused({ SEALCACHE_SECRETS: "x" }, `environment SEALCACHE_SECRETS: not a config key${see}`);
  });

  test("SEALCACHE_ variables that are not config keys (SEALCACHE_CONFIG, ...) are allowed and not treated as keys", () => {
    const env = { SEALCACHE_CONFIG: "/elsewhere.yaml", SEALCACHE_FAILPOINT: "none", SEALCACHE_DEBIAN_MIRROR: "http://127.0.0.1:1/debian" };
    const c = parseConfig(YAML, { file: FILE, env }).config;
    assert.equal(c.socket, "/run/sealcache/sealcache.sock");
  });

  test("a SEALCACHE_* variable the file itself uses as ${NAME} is the operator's own, not a misspelt key", () => {
    const c = parseConfig('socket: "${SEALCACHE_GW_SOCKET}"\n', { file: FILE, env: { SEALCACHE_GW_SOCKET: "/run/gw.sock" } }).config;
    assert.equal(c.socket, "/run/gw.sock");
  });

  test("a SEALCACHE_* variable an env provider reads (prefix + path) is a secret, not a misspelt key", () => {
    const text =
      "providers: { e: { type: env, prefix: SEALCACHE_SECRET_ }, bare: { type: env } }\nsecrets: { a: { provider: e, path: TOKEN }, b: { provider: bare, path: SEALCACHE_PW } }\n";
    const c = parseConfig(text, { file: FILE, env: { SEALCACHE_SECRET_TOKEN: "x", SEALCACHE_PW: "y" } }).config;
    assert.equal(c.secrets.a?.path, "TOKEN");
    assert.throws(
      () => parseConfig(text, { file: FILE, env: { SEALCACHE_SECRET_OTHER: "x" } }),
      (e: unknown) => isConfigError(e) && /^environment SEALCACHE_SECRET_OTHER: not a config key/.test(e.issues[0]!),
    );
  });

  test("every SEALCACHE_* name the code reads is a config key or on the allow-list, and the allow-list is in the README", () => {
    const keys = new Set(scalarLeaves(configSchema("/"), []).map((l) => l.env));
    const readme = fs.readFileSync(path.join(ROOT, "README.md"), "utf8");
    for (const name of NOT_CONFIG_KEYS) assert.ok(readme.includes(`\`${name}\``), `${name} is not documented in README.md`);
    const read = new Set<string>();
    const walk = (dir: string) => {
      for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
        const p = path.join(dir, e.name);
        if (e.isDirectory()) walk(p);
        else if (/\.(ts|mjs|js|sh)$/.test(e.name))
          for (const m of fs.readFileSync(p, "utf8").matchAll(/process\.env\.(SEALCACHE_\w+)|process\.env\[["'](SEALCACHE_\w+)["']\]/g))
            read.add(m[1] ?? m[2]!);
      }
    };
    for (const d of ["src", "native", "test/support", "scripts", "packaging"]) if (fs.existsSync(path.join(ROOT, d))) walk(path.join(ROOT, d));
    assert.ok(read.has("SEALCACHE_CONFIG") && read.has("SEALCACHE_FAILPOINT"), [...read].join(", "));
    for (const name of read)
      assert.ok(
        keys.has(name) || NOT_CONFIG_KEYS.has(name),
        `${name} is read by the code but is neither a config key nor in NOT_CONFIG_KEYS (src/config/overrides.ts)`,
      );
  });
});
