import assert from "node:assert/strict";
import fs from "node:fs";
import path from "node:path";
import { describe, test } from "node:test";
import { loadConfig, parseConfig } from "../../../src/config/load.js";
import { MAX_CONFIG_BYTES } from "../../../src/config/read.js";
import { type ConfigError, isConfigError } from "../../../src/errors.js";
import { assertNoLeaks, planted } from "../../support/planted.js";
import { tmpDir } from "../../support/tmp.js";

// Configs written to hurt: alias bombs, huge files and values, NUL bytes and bad UTF-8.
const FILE = "/etc/sealcache/sealcache.yaml";
const BASE = "providers: { demo: { type: file, dir: /run/secrets } }\n";

function refused(fn: () => unknown): ConfigError {
  try {
    fn();
  } catch (e) {
    assert.ok(isConfigError(e), `expected a ConfigError, got ${String(e)}`);
    return e;
  }
  assert.fail("the config was accepted; it must be refused");
}

function writeConfig(t: Parameters<typeof tmpDir>[0], bytes: string | Uint8Array): string {
  const file = path.join(tmpDir(t), "sealcache.yaml");
  fs.writeFileSync(file, bytes);
  return file;
}

/** The nine-level "billion laughs": 9^9 leaves once every alias is expanded. */
function aliasBomb(): string {
  const L = "abcdefghi";
  let s = `a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]\n`;
  for (let i = 1; i < 9; i++)
    s += `${L[i]}: &${L[i]} [${Array(9)
      .fill(`*${L[i - 1]}`)
      .join(",")}]\n`;
  return s;
}

describe("hostile configs", () => {
  // The timeout only stops a hang (the old code walked the expansion for minutes); no timing is asserted.
  test("a nine-level YAML alias bomb is refused as one, wherever it sits", { timeout: 30_000 }, () => {
    const top = refused(() => parseConfig(aliasBomb(), { file: FILE, env: {} }));
    assert.deepEqual(top.issues, [
      `YAML aliases (*name) expand this config to more than 1000000 values; refused as an alias bomb (see "Config reference" in README.md)`,
    ]);
    // Inside a section, and re-used where the schema would walk it (a policy's allow list).
    const nested = `sync:\n${aliasBomb().replace(/^(?=.)/gm, "  ")}policy: [{ match: { uid: 0 }, allow: *i }]\n`;
    assert.match(refused(() => parseConfig(nested, { file: FILE, env: {} })).issues[0]!, /refused as an alias bomb/);
  });

  test("aliases an operator writes (a shared allow list) still work", () => {
    const text = `${BASE}policy:\n  - { match: { uid: 0 }, allow: &ops ["a/*", "b/**"], admin: true }\n  - { match: { uid: 1000 }, allow: *ops }\n`;
    const c = parseConfig(text, { file: FILE, env: {} }).config;
    assert.deepEqual(c.policy?.[1]?.allow, ["a/*", "b/**"]);
  });

  test("a secret entry shared by an alias is checked once: its refresh is converted once, not twice", () => {
    const text = `${BASE}secrets:\n  a: &x { provider: demo, path: q, refresh: 60 }\n  b: *x\n  c: { provider: demo, path: r, refresh: 1m }\n`;
    const c = parseConfig(text, { file: FILE, env: {} }).config;
    assert.deepEqual([c.secrets.a?.refresh, c.secrets.b?.refresh, c.secrets.c?.refresh], [60_000, 60_000, 60_000]);
  });

  test(`a config file over ${MAX_CONFIG_BYTES / 1024 / 1024} MiB is refused without being read`, (t) => {
    const file = writeConfig(t, "");
    fs.truncateSync(file, MAX_CONFIG_BYTES + 1); // sparse: nothing to read, had it been read
    const e = refused(() => loadConfig({ file, env: {} }));
    assert.deepEqual(e.issues, [`the file is ${MAX_CONFIG_BYTES + 1} bytes, over the 32 MiB limit for a config (see "Config reference" in README.md)`]);
  });

  test("100,000 secrets fit under the size limit", { timeout: 120_000 }, (t) => {
    let text = BASE + "secrets:\n";
    for (let i = 0; i < 100_000; i++) {
      text += `  team-a/service-${String(i).padStart(6, "0")}/kafka-password:\n    provider: demo\n    path: team-a/service-${String(i).padStart(6, "0")}/kafka.json\n    key: kafka_password\n    refresh: 1m\n`;
    }
    assert.ok(text.length < MAX_CONFIG_BYTES);
    const file = writeConfig(t, text);
    const { config } = loadConfig({ file, env: {} });
    assert.equal(Object.keys(config.secrets).length, 100_000);
  });

  test("no error message quotes more than a short prefix of any value: wrong keys, ${VAR} expansions, names, paths", (t) => {
    // A value that is 60 harmless characters, then a secret: the secret part must never show.
    const long = (tag: string) => `${"x".repeat(60)}${planted(tag)}${"y".repeat(1000)}`;
    const huge = `${"x".repeat(60)}${planted("huge")}${"z".repeat(10 * 1024 * 1024)}`;
    const dir = tmpDir(t);
    const cases: [string, string, NodeJS.ProcessEnv, RegExp][] = [
      ["10 MB log.level", `log: { level: "${huge}" }\n`, {}, /^log\.level: must be one of .*, got "x{60}"… \(\d+ bytes\)$/],
      ["log.level from ${VAR}", `log: { level: "\${LEVEL}" }\n`, { LEVEL: long("env") }, /^log\.level: must be one of .*, got "x{60}"…/],
      ["seal.type", `seal: { type: "${long("seal")}" }\n`, {}, /^seal\.type: must be one of/],
      ["sync.interval", `sync: { interval: "${long("iv")}" }\n`, {}, /^sync\.interval: expected a duration such as "30s", "5m" or "1h", got "x{60}"…/],
      ["secret refresh", `${BASE}secrets: { a: { provider: demo, path: p, refresh: "${long("rf")}" } }\n`, {}, /^secrets\.a\.refresh: expected a duration/],
      [
        "secret name",
        `${BASE}secrets: { "${long("name")}": { provider: demo, path: p } }\n`,
        {},
        /^secrets\.x{60}… \(\d+ bytes\): secret name "x{60}"… \(\d+ bytes\) is longer than 256 bytes$/,
      ],
      [
        "provider reference",
        `${BASE}secrets: { a: { provider: "${long("prov")}", path: p } }\n`,
        {},
        /^secrets\.a\.provider: no provider named "x{60}"… \(\d+ bytes\); defined providers: demo$/,
      ],
      ["unknown key", `sync: { "${long("key")}": 1 }\n`, {}, /^sync\.x{60}… \(\d+ bytes\): unknown key/],
      ["mqtt.password_secret", `mqtt: { url: "mqtt://b", password_secret: "a${long("pw")}" }\n`, {}, /^mqtt\.password_secret: /],
      [
        "a *_file holding a secret",
        `mqtt: { url: "mqtts://b", ca_file: "${path.join(dir, long("file"))}" }\n`,
        {},
        /^mqtt\.ca_file: cannot read …y{60} \(ENAMETOOLONG\)$/,
      ],
      ["malformed ${ reference", `socket: "\${${long("ref")}"\n`, {}, /^socket: "\$\{x{58}"… \(\d+ bytes\) is not a valid reference/],
      ["unset variable with a long name", `socket: "\${${"V".repeat(200)}}"\n`, {}, /^socket: environment variable V{60}… \(200 bytes\) is not set$/],
      ["flag value", `{}\n`, {}, /^flag --log-level: must be one of .*, got "x{60}"…/],
      ["environment value", `{}\n`, { SEALCACHE_SYNC_TIMEOUT: long("envtimeout") }, /^environment SEALCACHE_SYNC_TIMEOUT: expected a duration .*got "x{60}"…/],
      ["environment number", `{}\n`, { SEALCACHE_SYNC_JITTER: long("envjitter") }, /^environment SEALCACHE_SYNC_JITTER: expected a number, got "x{60}"…/],
    ];
    for (const [what, text, env, want] of cases) {
      const overrides = what === "flag value" ? { "log.level": { value: long("flag"), source: "flag --log-level" } } : undefined;
      const e = refused(() => parseConfig(text, { file: FILE, env, overrides, checkFiles: true }));
      assert.ok(e.issues.length <= 2, `${what}: ${e.issues.join(" | ").slice(0, 2000)}`);
      assert.match(e.issues[0]!, want, what);
      assertNoLeaks(e.message, `the config error for ${what}`);
      assert.ok(e.message.length < 800, `${what}: a ${e.message.length}-character message`);
    }
  });

  test("a file with thousands of bad entries lists the first twenty and a count", () => {
    let text = BASE + "secrets:\n";
    for (let i = 0; i < 5000; i++) text += `  s${i}: { provider: nowhere, path: p }\n`;
    const e = refused(() => parseConfig(text, { file: FILE, env: {} }));
    assert.equal(e.issues.length, 21);
    assert.equal(e.issues[20], "... and 4980 more problems");
  });

  test("a NUL in any string (a path above all) is refused with its key path: a \\0 escape, or a raw NUL byte", (t) => {
    const escaped = refused(() => parseConfig(`${BASE}secrets: { a: { provider: demo, path: "tok\\0en" } }\n`, { file: FILE, env: {} }));
    assert.deepEqual(escaped.issues, ["secrets.a.path: contains a NUL character; config strings may not"]);
    const key = refused(() => parseConfig(`${BASE}secrets: { "a\\x00b": { provider: demo, path: p } }\n`, { file: FILE, env: {} }));
    assert.deepEqual(key.issues, ["secrets.a\\u0000b: the key contains a NUL character; config strings may not"]);

    const raw = writeConfig(t, Buffer.concat([Buffer.from(`${BASE}secrets:\n  a: { provider: demo, path: "tok`), Buffer.from([0]), Buffer.from(`en" }\n`)]));
    assert.deepEqual(refused(() => loadConfig({ file: raw, env: {} })).issues, ["secrets.a.path: contains a NUL byte; config strings may not"]);
  });

  test("invalid UTF-8 is refused with the key path that holds it, or its line when no value does", (t) => {
    const inPath = writeConfig(
      t,
      Buffer.concat([Buffer.from(`${BASE}secrets:\n  a: { provider: demo, path: tok`), Buffer.from([0xff, 0xfe]), Buffer.from(` }\n`)]),
    );
    assert.deepEqual(refused(() => loadConfig({ file: inPath, env: {} })).issues, [
      "secrets.a.path: contains bytes that are not valid UTF-8 (the config must be UTF-8 text)",
    ]);
    // An overlong encoding of "/" and a UTF-16 surrogate encoded as UTF-8 are not UTF-8 either.
    for (const bytes of [
      [0xc0, 0xaf],
      [0xed, 0xa0, 0x80],
    ]) {
      const f = writeConfig(t, Buffer.concat([Buffer.from(`${BASE}socket: /run/a`), Buffer.from(bytes), Buffer.from(`.sock\n`)]));
      assert.deepEqual(refused(() => loadConfig({ file: f, env: {} })).issues, [
        "socket: contains bytes that are not valid UTF-8 (the config must be UTF-8 text)",
      ]);
    }
    const inComment = writeConfig(t, Buffer.concat([Buffer.from(`${BASE}# caf`), Buffer.from([0xe9]), Buffer.from(`\nsocket: /run/s.sock\n`)]));
    assert.deepEqual(refused(() => loadConfig({ file: inComment, env: {} })).issues, [
      "line 2, column 6: bytes that are not valid UTF-8; the config must be UTF-8 text without NUL bytes",
    ]);
    // Real UTF-8 (and U+FFFD written as such) is fine.
    const good = writeConfig(t, `${BASE}secrets: { a: { provider: demo, path: "café/\uFFFD" } }\n`);
    assert.equal(loadConfig({ file: good, env: {} }).config.secrets.a?.path, "café/\uFFFD");
  });
});
