import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import { describe, test } from "node:test";
import { promisify } from "node:util";
import { loadTrust } from "../../../src/fleet/trust.js";
import { verifyCommand } from "../../../src/fleet/verify.js";
import { cli, MAIN } from "../../support/daemon.js";
import { captureBus, gatewayConfig, startGateway } from "../../support/fleet-core.js";
import { Mosquitto } from "../../support/mosquitto.js";
import { tmpDir } from "../../support/tmp.js";

const SIGN = ["fleet", "sign"];

describe("sealcache fleet keygen / fleet sign (the operator's side)", () => {
  test("keygen writes F (0600) and F.pub, never overwrites, and says how to trust the key", async (t) => {
    const dir = tmpDir(t);
    const out = path.join(dir, "fleet-ops");
    const r = await cli(["fleet", "keygen", "--out", out]);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(fs.statSync(out).mode & 0o777, 0o600);
    assert.equal(fs.statSync(`${out}.pub`).mode & 0o777, 0o644);
    assert.match(fs.readFileSync(out, "utf8"), /^-----BEGIN PRIVATE KEY-----\n/);
    assert.match(r.stdout, /trust: \{ fleet-ops: \/etc\/sealcache\/fleet-ops\.pub \}/);
    assert.equal(loadTrust({ "fleet-ops": `${out}.pub` }).keys.size, 1, "F.pub is a trust key a gateway loads");
    const before = fs.readFileSync(out);
    const again = await cli(["--json", "fleet", "keygen", "--out", out]);
    assert.equal(again.code, 2);
    assert.deepEqual(JSON.parse(again.stderr).error, "bad_request");
    assert.match(JSON.parse(again.stderr).message, /exists; a key is never overwritten/);
    assert.deepEqual(fs.readFileSync(out), before, "the key is untouched");
    const json = await cli(["--json", "fleet", "keygen", "--out", path.join(dir, "ops2.key")]);
    assert.deepEqual(JSON.parse(json.stdout), { private_key: path.join(dir, "ops2.key"), public_key: path.join(dir, "ops2.key.pub"), kid: "ops2" });
  });

  test("sign prints exactly one token, which the gateway verifies with F.pub, carrying what was asked", async (t) => {
    const dir = tmpDir(t);
    const out = path.join(dir, "fleet-ops.key");
    assert.equal((await cli(["fleet", "keygen", "--out", out])).code, 0);
    const r = await cli([...SIGN, "--key", out, "--aud", "gw-17", "--cmd", "revoke", "--name", "db/password", "--name", "kafka/password", "--ttl", "1h"]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\n$/);
    assert.equal(r.stderr, "");
    const trust = loadTrust({ "fleet-ops": `${out}.pub` });
    const cmd = await verifyCommand(new TextEncoder().encode(r.stdout), { deviceId: "gw-17", keys: trust.keys, maxLifetimeMs: 86_400_000 }, Date.now());
    assert.deepEqual([cmd.kid, cmd.cmd, cmd.target, cmd.exp - cmd.iat], ["fleet-ops", "revoke", { names: ["db/password", "kafka/password"] }, 3600]);
    const all = await cli(["--json", ...SIGN, "--key", out, "--aud", "fleet", "--cmd", "refresh", "--all", "--kid", "ops-2026"]);
    const j = JSON.parse(all.stdout);
    assert.deepEqual([j.kid, j.aud, j.cmd, j.exp - j.iat], ["ops-2026", "fleet", "refresh", 7 * 86_400], "--ttl defaults to 7d");
    const long = await cli([...SIGN, "--key", out, "--aud", "fleet", "--cmd", "refresh", "--all", "--ttl", "40d"]);
    assert.equal(long.code, 0);
    assert.match(long.stderr, /warning: --ttl 40d is longer than the default mqtt.commands.max_lifetime \(30d\)/);
  });

  test("sign: each bad invocation is a usage error naming what to fix; nothing printed on stdout", async (t) => {
    const dir = tmpDir(t);
    const key = path.join(dir, "k");
    assert.equal((await cli(["fleet", "keygen", "--out", key])).code, 0);
    const cases: [string[], number, RegExp][] = [
      [["--aud", "gw-1", "--cmd", "refresh", "--all"], 2, /--key F is required/],
      [["--key", key, "--cmd", "refresh", "--all"], 2, /--aud is required/],
      [["--key", key, "--aud", "gw/1", "--cmd", "refresh", "--all"], 2, /--aud "gw\/1" is not a device id/],
      [["--key", key, "--aud", "gw-1", "--cmd", "reboot", "--all"], 2, /--cmd must be one of refresh, revoke, not "reboot"/],
      [["--key", key, "--aud", "gw-1", "--cmd", "revoke"], 2, /name the secrets with --name N \(repeatable\), or --all/],
      [["--key", key, "--aud", "gw-1", "--cmd", "revoke", "--all", "--name", "a"], 2, /--name and --all exclude each other/],
      [["--key", key, "--aud", "gw-1", "--cmd", "revoke", "--name", "A/B"], 2, /--name "A\/B" must match/],
      [["--key", key, "--aud", "gw-1", "--cmd", "revoke", "--all", "--ttl", "soon"], 2, /--ttl must be a duration/],
      [["--key", key, "--aud", "gw-1", "--cmd", "revoke", "--all", "--ttl", "400d"], 2, /--ttl may be at most 365d/],
      [["--key", path.join(dir, "none"), "--aud", "gw-1", "--cmd", "revoke", "--all"], 2, /cannot read the key .*none \(ENOENT\)/],
      [["--key", `${key}.pub`, "--aud", "gw-1", "--cmd", "revoke", "--all", "--kid", "k"], 2, /is not a PEM private key/],
      [["--key", key, "--aud", "gw-1", "--cmd", "revoke", "--all", "--kid", "bad kid"], 2, /"bad kid" is not a valid kid/],
      [["--key", key, "--aud", "gw-1", "--cmd", "revoke", "--all", "--out", "x"], 2, /option --out does not apply to fleet sign/],
    ];
    for (const [args, code, message] of cases) {
      const r = await cli([...SIGN, ...args]);
      assert.equal(r.code, code, `${args.join(" ")}: ${r.stderr}`);
      assert.equal(r.stdout, "");
      assert.match(r.stderr, message, args.join(" "));
    }
    const none = await cli(["fleet"]);
    assert.equal(none.code, 2);
    assert.match(none.stderr, /fleet takes a subcommand: sealcache fleet keygen --out F \| sealcache fleet sign/);
    assert.match((await cli(["fleet", "rotate"])).stderr, /fleet takes a subcommand \(not "rotate"\)/);
    assert.match((await cli(["fleet", "keygen"])).stderr, /--out F is required/);
  });

  test('the README workflow: mosquitto_pub -t sealcache/gw-17/cmd -m "$(sealcache fleet sign ...)" reaches the gateway, which carries it out', async (t) => {
    const dir = tmpDir(t);
    const broker = await Mosquitto.start(t, path.join(dir, "broker"), ["admin", "ops", "gw-17"]);
    const key = path.join(dir, "fleet-ops");
    assert.equal((await cli(["fleet", "keygen", "--out", key])).code, 0);
    const bus = await captureBus(t, broker);
    const gw = await startGateway(
      t,
      gatewayConfig(broker, "gw-17", dir, { commands: { trust: { "fleet-ops": `${key}.pub` }, max_lifetime: 30 * 86_400_000 } }),
    );
    await bus.next((m) => m.topic === "sealcache/gw-17/status", 10_000, "gw-17 online");
    const ops = broker.user("ops");
    const tls = `-h 127.0.0.1 -p ${broker.port} --cafile ${broker.certs.caFile} --cert ${ops.cert} --key ${ops.key} -u ops -P ${ops.password} -q 1`;
    const sealcache = `${process.execPath} ${MAIN}`;
    await promisify(execFile)("bash", [
      "-c",
      `mosquitto_pub ${tls} -t sealcache/gw-17/cmd -m "$(${sealcache} fleet sign --key ${key} --aud gw-17 --cmd revoke --name demo/api-token)"`,
    ]);
    const r = JSON.parse((await bus.next((m) => m.topic === "sealcache/gw-17/result", 10_000, "the result")).payload);
    assert.deepEqual([r.ok, r.code, r.message], [true, "ok", "revoked 1 secret"]);
    assert.equal(gw.core.values.has("demo/api-token"), false);
    assert.deepEqual(gw.core.calls.at(-1)?.principal.issuer, "fleet-ops");
  });
});
