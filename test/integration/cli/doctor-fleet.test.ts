import assert from "node:assert/strict";
import fs from "node:fs";
import net from "node:net";
import path from "node:path";
import { after, before, describe, test } from "node:test";
import { stringify } from "yaml";
import { checkFleet, reportDaemonMqtt } from "../../../src/cli/commands/doctor-fleet.js";
import { parseConfig } from "../../../src/config/load.js";
import type { MqttState } from "../../../src/mqtt/part.js";
import { cli, eventually } from "../../support/daemon.js";
import { busClient, captureBus, gatewayConfig, startGateway } from "../../support/fleet-core.js";
import { claims, joseToken, testKey } from "../../support/fleet-tokens.js";
import { Mosquitto } from "../../support/mosquitto.js";
import { tmpDir } from "../../support/tmp.js";

type Check = { check: string; level: string; message: string };
const key = testKey("fleet-ops");

describe("doctor: the fleet channel's broker and trust keys", () => {
  let broker: Mosquitto;
  let dir: string;
  const cleanup: (() => void | Promise<void>)[] = [];
  const ctx = { after: (fn: () => void | Promise<void>) => cleanup.push(fn) };

  before(async () => {
    dir = tmpDir(ctx);
    broker = await Mosquitto.start(ctx, path.join(dir, "broker"), ["admin", "ops", "gw-d1", "gw-d2"]);
    fs.writeFileSync(path.join(dir, "fleet-ops.pub"), key.publicPem);
    fs.writeFileSync(path.join(dir, "leaked.key"), key.privatePem);
  });
  after(async () => {
    for (const fn of cleanup.reverse()) await fn();
  });

  /** A whole config (as doctor loads it) with the mqtt section of gateway `device`, patched. */
  function config(device: string, patch: Record<string, unknown> = {}) {
    const m = gatewayConfig(broker, device, dir);
    const mqtt = {
      url: m.url,
      device_id: device,
      username: device,
      password_file: m.password_file,
      ca_file: m.ca_file,
      cert_file: m.cert_file,
      key_file: m.key_file,
      commands: { trust: { "fleet-ops": path.join(dir, "fleet-ops.pub") } },
      ...patch,
    };
    for (const [k, v] of Object.entries(mqtt)) if (v === undefined) delete (mqtt as Record<string, unknown>)[k];
    const yaml = stringify({ data_dir: path.join(dir, "data"), socket: path.join(dir, `${device}.sock`), seal: { type: "host" }, mqtt });
    fs.writeFileSync(path.join(dir, `${device}.yaml`), yaml);
    return parseConfig(yaml, { file: path.join(dir, `${device}.yaml`), env: {} }).config;
  }

  async function run(c: ReturnType<typeof config>, opts?: Parameters<typeof checkFleet>[2]): Promise<Check[]> {
    const out: Check[] = [];
    await checkFleet(c, (check, level, message) => out.push({ check, level, message }), opts);
    return out;
  }

  test("all good: the trust key, the broker over TLS with our client certificate, the login", async () => {
    const checks = await run(config("gw-d1"));
    assert.deepEqual(
      checks.map((c) => [c.check, c.level]),
      [
        ["trust", "ok"],
        ["broker", "ok"],
        ["broker", "ok"],
      ],
      JSON.stringify(checks),
    );
    assert.match(checks[0]!.message, /^fleet-ops: .*fleet-ops\.pub is an Ed25519 public key$/);
    assert.match(checks[1]!.message, /reachable; TLS verified against .*ca\.pem; our client certificate accepted$/);
    assert.match(checks[2]!.message, /^logged in as gw-d1 with client id gw-d1; the session is (new|present)/);
  });

  test("trust keys: a missing file, a private key, none at all", async () => {
    const bad = await run(config("gw-d1", { commands: { trust: { gone: path.join(dir, "gone.pub"), leaked: path.join(dir, "leaked.key") } } }));
    const trust = bad.filter((c) => c.check === "trust");
    assert.deepEqual(
      trust.map((c) => c.level),
      ["fail", "fail"],
    );
    assert.match(trust[0]!.message, /^gone: cannot read .*gone\.pub \(ENOENT\)$/);
    assert.match(trust[1]!.message, /^leaked: .*holds a private key; commands.trust takes the public key/);
    const none = await run(config("gw-d1", { commands: { trust: {} } }));
    assert.deepEqual(
      [none[0]!.level, none[0]!.message],
      ["warn", "no mqtt.commands.trust keys: every command sent to this gateway is refused (sealcache fleet keygen makes one)"],
    );
  });

  test("the broker refusing (a failure): a wrong password, a CA that did not sign it, no client certificate; nobody listening (a warning)", async () => {
    fs.writeFileSync(path.join(dir, "wrong"), "nope\n");
    const cases: [Record<string, unknown>, RegExp][] = [
      [{ password_file: path.join(dir, "wrong") }, /^Connection refused: Not authorized$/],
      [{ ca_file: broker.certs.otherCaFile }, /TLS: self-signed certificate in certificate chain/],
      [{ cert_file: undefined, key_file: undefined }, /TLS: the broker requires a client certificate \(mqtt\.cert_file \/ key_file\)$/],
    ];
    for (const [patch, message] of cases) {
      const checks = (await run(config("gw-d1", patch))).filter((c) => c.check === "broker");
      const failed = checks.find((c) => c.level === "fail");
      assert.ok(failed, `${JSON.stringify(patch)}: ${JSON.stringify(checks)}`);
      assert.match(failed.message, message);
    }
    const down = (await run(config("gw-d1", { url: "mqtts://127.0.0.1:1" }))).filter((c) => c.check === "broker");
    assert.deepEqual(
      down.map((c) => c.level),
      ["warn"],
    );
    assert.match(down[0]!.message, /^mqtts:\/\/127\.0\.0\.1:1: cannot connect \(ECONNREFUSED\); the daemon keeps retrying with backoff and serves meanwhile$/);
  });

  test("the login check leaves the stopped gateway's session alone: a command queued for it is still delivered to the daemon", async (t) => {
    const trustFile = path.join(dir, "fleet-ops.pub");
    const m = gatewayConfig(broker, "gw-d2", dir, { commands: { trust: { "fleet-ops": trustFile }, max_lifetime: 86_400_000 } });
    const first = await startGateway(t, m);
    await eventually(async () => first.part.state().subscribed, 10_000, "subscribed");
    await first.part.stop();
    const c = claims("gw-d2", Math.floor(Date.now() / 1000), { cmd: "revoke", names: ["demo/api-token"] });
    await (await busClient(t, broker, "ops")).publishAsync("sealcache/gw-d2/cmd", await joseToken(key, c), { qos: 1 });
    const checks = await run(config("gw-d2", { session_expiry: "1h" }));
    assert.match(checks.at(-1)!.message, /logged in as gw-d2 .*the session is present/);
    const bus = await captureBus(t, broker);
    const second = await startGateway(t, m);
    const r = JSON.parse((await bus.next((x) => x.topic === "sealcache/gw-d2/result", 10_000, "the queued command's result")).payload);
    assert.deepEqual([r.jti, r.ok], [c.jti, true]);
    assert.equal(second.core.values.has("demo/api-token"), false);
  });

  test("while the daemon runs doctor does not log in beside it; with password_secret it cannot", async (t) => {
    const c = config("gw-d1");
    const server = net.createServer().listen(c.socket);
    t.after(() => new Promise((r) => server.close(r)));
    await new Promise((r) => server.once("listening", r));
    const running = await run(c);
    assert.match(running.at(-1)!.message, /^the daemon runs and holds the MQTT session; doctor does not log in beside it/);
    await new Promise((r) => server.close(r));
    const yaml = stringify({
      data_dir: path.join(dir, "data"),
      socket: path.join(dir, "ps.sock"),
      seal: { type: "host" },
      providers: { f: { type: "file", dir } },
      secrets: { "mqtt/password": { provider: "f", path: "wrong" } },
      mqtt: { ...c.mqtt, password_file: undefined, password_secret: "mqtt/password", reconnect: undefined, commands: undefined, session_expiry: undefined },
    });
    const ps = parseConfig(yaml, { file: path.join(dir, "ps.yaml"), env: {} }).config;
    assert.match((await run(ps)).at(-1)!.message, /^login not checked: the password is the cached secret mqtt\/password/);
  });

  test("the daemon's own state, when health gives it, is what doctor reports", () => {
    const out: Check[] = [];
    const s: MqttState = {
      state: "backoff",
      since: "",
      broker: "mqtts://b",
      client_id: "gw-1",
      subscribed: false,
      last_error: "Connection refused: Not authorized",
      next_attempt_ms: 42_000,
      attempts: 7,
      trust: { keys: [], problems: { old: "cannot read /x (ENOENT)" } },
    };
    reportDaemonMqtt(s, (check, level, message) => out.push({ check, level, message }));
    assert.deepEqual(out, [
      { check: "broker", level: "fail", message: "the daemon is waiting to retry (next attempt in 42 s, 7 attempts) (Connection refused: Not authorized)" },
      { check: "trust", level: "fail", message: "old: cannot read /x (ENOENT)" },
    ]);
  });

  test("sealcache doctor runs these checks for a config with an mqtt section", async () => {
    config("gw-d1");
    const r = await cli(["--json", "doctor", "--config", path.join(dir, "gw-d1.yaml")]);
    const checks = JSON.parse(r.stdout).checks as Check[];
    assert.ok(
      checks.some((x) => x.check === "trust" && x.level === "ok"),
      r.stdout,
    );
    assert.ok(
      checks.some((x) => x.check === "broker" && /logged in as gw-d1/.test(x.message)),
      r.stdout,
    );
  });
});
