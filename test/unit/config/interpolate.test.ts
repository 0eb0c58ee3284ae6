import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { interpolateEnv } from "../../../src/config/interpolate.js";
import { parseConfig } from "../../../src/config/load.js";
import { isConfigError } from "../../../src/errors.js";

const FILE = "/etc/sealcache/sealcache.yaml";

function run(node: unknown, env: NodeJS.ProcessEnv): { out: unknown; problems: string[] } {
  const problems: string[] = [];
  const out = interpolateEnv(node, env, [], problems);
  return { out, problems };
}

describe("${ENV} interpolation", () => {
  test("replaces references in strings at any depth, in maps and lists; leaves other types alone", () => {
    const { out, problems } = run(
      { mqtt: { url: "mqtts://${HOST}:${PORT}", username: "gw-${ID}" }, policy: [{ allow: ["${NS}/*"] }], sync: { jitter: 0.2, on: true, none: null } },
      { HOST: "broker", PORT: "8883", ID: "17", NS: "kafka" },
    );
    assert.deepEqual(problems, []);
    assert.deepEqual(out, {
      mqtt: { url: "mqtts://broker:8883", username: "gw-17" },
      policy: [{ allow: ["kafka/*"] }],
      sync: { jitter: 0.2, on: true, none: null },
    });
  });

  test("$${ is a literal ${ and is not looked up", () => {
    const { out, problems } = run({ a: "$${HOME}/x", b: "$${NOT_SET}-${B}", c: "cost: $5 and $$ and {braces}" }, { HOME: "/root", B: "b" });
    assert.deepEqual(problems, []);
    assert.deepEqual(out, { a: "${HOME}/x", b: "${NOT_SET}-b", c: "cost: $5 and $$ and {braces}" });
  });

  test("a substituted value is not interpolated again", () => {
    const { out } = run({ a: "${A}" }, { A: "${B}", B: "no" });
    assert.deepEqual(out, { a: "${B}" });
  });

  test("an unset variable is an error naming the key path (list indexes included), never an empty string", () => {
    const { problems } = run({ providers: { vault: { address: "https://${VAULT_HOST}:8200" } }, policy: [{ allow: ["a", "${NS}/*"] }] }, {});
    assert.deepEqual(problems, ["providers.vault.address: environment variable VAULT_HOST is not set", "policy.0.allow.1: environment variable NS is not set"]);
  });

  test("a malformed reference is an error that says how to write one", () => {
    for (const bad of ["${1A}", "${A-B}", "${}", "${A"]) {
      const { problems } = run({ socket: bad }, { A: "x" });
      assert.equal(problems.length, 1, bad);
      assert.match(problems[0]!, /^socket: ".*" is not a valid reference; use \$\{NAME\} .*\(or \$\$\{ for a literal\)$/, bad);
    }
  });

  test("parseConfig interpolates before validation, and refuses the file naming every unset variable", () => {
    const ok = parseConfig('socket: ${RUN}/s.sock\nsync: { interval: "${IV}" }\n', { file: FILE, env: { RUN: "/run/x", IV: "1m" } }).config;
    assert.equal(ok.socket, "/run/x/s.sock");
    assert.equal(ok.sync.interval, 60_000);
    assert.throws(
      () => parseConfig("socket: ${RUN}/s.sock\ndata_dir: ${DATA}\n", { file: FILE, env: {} }),
      (e: unknown) =>
        isConfigError(e) &&
        e.issues.length === 2 &&
        e.issues[0] === "socket: environment variable RUN is not set" &&
        e.issues[1] === "data_dir: environment variable DATA is not set",
    );
  });

  test("an environment variable set to a literal ${...} in the file with $${ stays literal through parseConfig", () => {
    const c = parseConfig("mqtt: { url: 'mqtt://b:1883', topic_prefix: 'fleet/$${GATEWAY}' }\n", { file: FILE, env: { GATEWAY: "gw" } }).config;
    assert.equal(c.mqtt?.topic_prefix, "fleet/${GATEWAY}");
  });
});
