// The fleet channel of the real daemon across the lives of the daemon and of the
// broker: the broker down at start, the will on SIGKILL, the persistent session
// delivering a revoke sent while the daemon was stopped (its cache sealed to a
// TPM, so the command arrives while the key is still being unsealed), the replay
// memory surviving a restart, a broker restart. The TPM answers slowly (a relay that
// holds each chunk), as a real one on a busy bus does.
import assert from "node:assert/strict";
import fs from "node:fs";
import path from "node:path";
import { after, before, describe, test } from "node:test";
import type { MqttClient } from "mqtt";
import { cli, eventually, launch, type RunningDaemon } from "../../support/daemon.js";
import { gatewayDaemonConfig, jtiOf, operatorKey, retained, signWithCli, type OperatorKey } from "../../support/fleet-daemon.js";
import { busClient, captureBus, type Capture } from "../../support/fleet-core.js";
import { fleetAcl, Mosquitto } from "../../support/mosquitto.js";
import { DEMO_VALUES, assertNoLeaks } from "../../support/planted.js";
import { slowTpm, type SlowTpm } from "../../support/slow-tpm.js";
import { startSwtpm } from "../../support/swtpm.js";
import { tmpDir } from "../../support/tmp.js";
import { suiteScope } from "../../support/scope.js";

type Result = { jti: string | null; ok: boolean; code: string; message: string };

describe("the daemon's fleet channel across restarts of the daemon and the broker", () => {
  let dir: string;
  let broker: Mosquitto;
  let key: OperatorKey;
  let tpm: SlowTpm;
  let bus: Capture;
  let ops: MqttClient;
  const values: string[] = [];
  const scope = suiteScope();
  const health = async (d: RunningDaemon) => (await d.get("/v1/health")).json().mqtt;
  const status = (device: string) => retained(broker, "viewer", `sealcache/${device}/status`);
  /** The bus clients, (re)connected: a broker restart drops them. */
  const connectBus = async () => {
    bus = await captureBus(scope, broker);
    ops = await busClient(scope, broker, "ops");
  };
  const result = async (device: string, jti: string): Promise<Result> =>
    JSON.parse(
      (await bus.next((m) => m.topic === `sealcache/${device}/result` && JSON.parse(m.payload).jti === jti, 20_000, `${device}'s result for ${jti}`)).payload,
    );

  before(async () => {
    dir = tmpDir(scope);
    broker = await Mosquitto.start(
      scope,
      path.join(dir, "broker"),
      ["admin", "ops", "viewer", "gw-s1", "gw-s2"],
      `${fleetAcl()}\nuser viewer\ntopic read sealcache/+/status\n`,
    );
    values.push(broker.user("gw-s1").password, broker.user("gw-s2").password);
    key = await operatorKey(dir);
    // Slow enough that the broker delivers the session's queued commands well before the key is unsealed.
    tpm = await slowTpm(scope, await startSwtpm(scope), 40);
  });
  after(async () => {
    await scope.run();
  });

  test("the broker down at daemon start: the daemon serves, health and status show the broker state, and it connects once the broker is up", async (t) => {
    await broker.stop();
    const gwDir = path.join(dir, "gw-s2");
    fs.mkdirSync(gwDir, { mode: 0o700 });
    const d = await launch(t, gwDir, gatewayDaemonConfig(gwDir, broker, "gw-s2", { trust: { "fleet-ops": key.pub } }), {
      waitFor: "synced",
      extraSecrets: values,
    });
    assert.equal((await d.get("/v1/secrets/demo/api-token?format=raw")).body, DEMO_VALUES[0], "serving without the broker");
    const h = await eventually(
      async () => {
        const m = await health(d);
        return m.attempts >= 2 && m;
      },
      10_000,
      "attempts against the stopped broker",
    );
    assert.ok(["connecting", "backoff"].includes(h.state), h.state);
    assert.equal(h.subscribed, false);
    assert.match(String(h.last_error), /ECONNREFUSED/);
    const st = await cli(["status", "--config", d.configFile]);
    assert.equal(st.code, 0, st.stderr);
    assert.match(st.stdout, /^mqtt: (connecting|backoff) \(mqtts:\/\/127\.0\.0\.1:\d+ as gw-s2\): .*ECONNREFUSED/m);
    const doc = JSON.parse((await cli(["--json", "doctor", "--config", d.configFile])).stdout).checks as { check: string; level: string; message: string }[];
    // Unreachable is a warning, like an offline backend: the daemon serves meanwhile.
    assert.ok(
      doc.some(
        (x) =>
          x.check === "broker" &&
          x.level === "warn" &&
          /cannot connect \(ECONNREFUSED\); the daemon keeps retrying with backoff and serves meanwhile/.test(x.message),
      ),
      JSON.stringify(doc),
    );

    await broker.start();
    await eventually(
      async () => {
        const m = await health(d);
        return m.state === "connected" && m.subscribed && m.last_error === null;
      },
      15_000,
      "connected once the broker is up",
    );
    const s = await eventually(() => status("gw-s2"), 10_000, "gw-s2's retained status");
    assert.deepEqual([s.retain, s.payload.online, s.payload.sealed, s.payload.secrets], [true, true, false, 3]);
    assert.equal(s.payload.names, undefined, "no names without metrics.secret_names");
    assert.equal(await d.stop(), 0);
    assert.deepEqual((await status("gw-s2"))?.payload.online, false, "a clean stop leaves online: false retained");
  });

  let gw: RunningDaemon;
  let gwDir: string;
  let config: Record<string, unknown>;
  const start = async () => {
    gw = await launch(scope, gwDir, config, { waitFor: "socket", extraSecrets: values });
    await eventually(async () => (await health(gw))?.subscribed === true, 20_000, "gw-s1 subscribed");
  };

  test("the will: a SIGKILLed daemon is shown {online: false}, retained; started again it is online", async () => {
    await connectBus();
    gwDir = path.join(dir, "gw-s1");
    fs.mkdirSync(gwDir, { mode: 0o700 });
    config = gatewayDaemonConfig(gwDir, broker, "gw-s1", { trust: { "fleet-ops": key.pub }, patch: { seal: { type: "tpm2", tcti: tpm.tcti } } });
    await start();
    await eventually(async () => (await status("gw-s1"))?.payload.online === true, 10_000, "online");
    const from = bus.messages.length;
    await gw.kill("SIGKILL");
    const will = await bus.next((m, i) => i >= from && m.topic === "sealcache/gw-s1/status", 15_000, "the will");
    assert.deepEqual(JSON.parse(will.payload), { online: false });
    const r = await status("gw-s1");
    assert.deepEqual([r?.retain, r?.payload], [true, { online: false }], "the will is retained");
    await start();
    await eventually(async () => (await status("gw-s1"))?.payload.online === true, 10_000, "online again");
  });

  test("a revoke published while the daemon is stopped is carried out when it starts (persistent session), even as its TPM-sealed key is still being unsealed", async () => {
    // The command must reach the daemon before its cache opens, or this proves nothing about that case.
    const order = () => [...gw.output().matchAll(/"msg":"(mqtt: connected|unsealed; serving)"/g)].map((m) => m[1]).slice(-2);
    assert.equal((await gw.get("/v1/secrets/demo/api-token?format=raw")).body, DEMO_VALUES[0]);
    await gw.stop();
    const token = await signWithCli(key, ["--aud", "gw-s1", "--cmd", "revoke", "--name", "demo/api-token", "--ttl", "1h"]);
    await ops.publishAsync("sealcache/gw-s1/cmd", token, { qos: 1 });
    await start();
    const r = await result("gw-s1", jtiOf(token));
    assert.deepEqual(order(), ["mqtt: connected", "unsealed; serving"], "connected (and handed the queued command) while still unsealing");
    assert.deepEqual([r.ok, r.code, r.message], [true, "ok", "revoked 1 secret"], r.message);
    const got = await gw.get("/v1/secrets/demo/api-token");
    assert.deepEqual([got.status, got.json().error], [410, "revoked"]);
    assert.equal((await gw.get("/v1/secrets/demo/db-password?format=raw")).body, DEMO_VALUES[1]);
  });

  test("a replayed jti is refused also after a restart: the replay memory is sealed in the cache", async () => {
    const token = await signWithCli(key, ["--aud", "gw-s1", "--cmd", "refresh", "--name", "demo/db-password", "--ttl", "1h"]);
    await ops.publishAsync("sealcache/gw-s1/cmd", token, { qos: 1 });
    assert.equal((await result("gw-s1", jtiOf(token))).ok, true);
    await gw.stop();
    // Sent again while the daemon is down: delivered at its next start, before its cache is open,
    // so the replay memory must be read from the cache before the jti is looked up.
    const from = bus.messages.length;
    await ops.publishAsync("sealcache/gw-s1/cmd", token, { qos: 1 });
    await start();
    const replayed = async (since: number) => {
      const m = await bus.next((m, i) => i >= since && m.topic === "sealcache/gw-s1/result", 15_000, "the replay's result");
      const r = JSON.parse(m.payload) as Result;
      assert.deepEqual([r.jti, r.ok, r.code], [jtiOf(token), false, "replayed"], r.message);
    };
    await replayed(from);
    // And once more with the daemon up.
    const again = bus.messages.length;
    await ops.publishAsync("sealcache/gw-s1/cmd", token, { qos: 1 });
    await replayed(again);
    const audit = JSON.parse((await cli(["--json", "audit", "--since", "5m", "--config", gw.configFile])).stdout).entries as {
      principal: string;
      code: string;
    }[];
    assert.deepEqual(
      audit.filter((e) => e.principal === `fleet:fleet-ops:${jtiOf(token)}`).map((e) => e.code),
      ["ok", "replayed", "replayed"],
      "each audited with the verified principal",
    );
  });

  test("a broker restart: the daemon reconnects and republishes its status; commands work again", async () => {
    const before = (await health(gw)).attempts as number;
    const t0 = Date.now();
    await broker.stop();
    await eventually(async () => (await health(gw)).state !== "connected", 10_000, "the daemon noticed");
    assert.equal((await gw.get("/v1/secrets/demo/db-password?format=raw")).body, DEMO_VALUES[1], "serving throughout");
    await broker.start();
    await eventually(
      async () => {
        const m = await health(gw);
        return m.state === "connected" && m.subscribed;
      },
      15_000,
      "reconnected",
    );
    assert.ok((await health(gw)).attempts > before);
    const s = await eventually(
      async () => {
        const r = await status("gw-s1");
        return r && Date.parse(r.payload.at) >= t0 && r;
      },
      10_000,
      "a status published after the restart",
    );
    assert.equal(s.payload.online, true);
    await connectBus();
    const token = await signWithCli(key, ["--aud", "gw-s1", "--cmd", "refresh", "--all", "--ttl", "1h"]);
    await ops.publishAsync("sealcache/gw-s1/cmd", token, { qos: 1 });
    assert.equal((await result("gw-s1", jtiOf(token))).ok, true);
    assert.match(broker.log(), /New client connected .* as gw-s1/);
    assertNoLeaks(bus.text(), "the MQTT bus", values);
  });
  test("a fleet revoke of all: every name 410, the key rotated and the counter advanced; the replay memory, re-wrapped with the rest, still refuses the token after a restart", async () => {
    const kek = fs.readFileSync(path.join(gwDir, "data", "kek.sealed"));
    const token = await signWithCli(key, ["--aud", "gw-s1", "--cmd", "revoke", "--all", "--ttl", "1h"]);
    await ops.publishAsync("sealcache/gw-s1/cmd", token, { qos: 1 });
    const r = await result("gw-s1", jtiOf(token));
    assert.deepEqual([r.ok, r.code, r.message], [true, "ok", "revoked 3 secrets"], r.message);
    for (const n of ["demo/api-token", "demo/db-password", "demo/kafka-password"]) assert.equal((await gw.get(`/v1/secrets/${n}`)).status, 410, n);
    assert.notDeepEqual(fs.readFileSync(path.join(gwDir, "data", "kek.sealed")), kek, "a new cache key");
    await gw.stop();
    const from = bus.messages.length;
    await ops.publishAsync("sealcache/gw-s1/cmd", token, { qos: 1 });
    await start();
    const m = await bus.next((m, i) => i >= from && m.topic === "sealcache/gw-s1/result", 15_000, "the replay's result");
    assert.deepEqual([JSON.parse(m.payload).ok, JSON.parse(m.payload).code], [false, "replayed"]);
    assert.equal((await gw.get("/v1/health")).json().sealed, false, "the new key and counter open the cache");
    assert.equal(await gw.stop(), 0);
  });

  test("a gateway whose key cannot be unsealed reports sealed on the bus and answers commands sealed (after its first attempt, not after a long wait)", async (t) => {
    const sealedDir = path.join(dir, "gw-s2-sealed");
    fs.mkdirSync(sealedDir, { mode: 0o700 });
    // A TCTI nobody listens on: the first unseal attempt fails at once.
    const cfg = gatewayDaemonConfig(sealedDir, broker, "gw-s2", {
      trust: { "fleet-ops": key.pub },
      patch: { seal: { type: "tpm2", tcti: "swtpm:host=127.0.0.1,port=1" } },
    });
    const d = await launch(t, sealedDir, cfg, { waitFor: "socket", extraSecrets: values });
    assert.equal((await d.get("/v1/health")).json().status, "sealed");
    await eventually(async () => (await health(d))?.subscribed === true, 15_000, "gw-s2 subscribed");
    const s = await eventually(
      async () => {
        const x = await status("gw-s2");
        return x?.payload.online === true && x;
      },
      10_000,
      "gw-s2 online",
    );
    assert.deepEqual([s.payload.sealed, s.payload.secrets], [true, 0]);
    const token = await signWithCli(key, ["--aud", "gw-s2", "--cmd", "revoke", "--name", "demo/api-token", "--ttl", "1h"]);
    await ops.publishAsync("sealcache/gw-s2/cmd", token, { qos: 1 });
    const r = await result("gw-s2", jtiOf(token));
    assert.deepEqual([r.ok, r.code], [false, "sealed"]);
    assert.match(r.message, /^revoke failed: the cache is sealed: /);
    assert.equal(await d.stop(), 0);
  });
});
