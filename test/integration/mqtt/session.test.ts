import assert from "node:assert/strict";
import fs from "node:fs";
import path from "node:path";
import { after, before, describe, test } from "node:test";
import { MemoryJtiStore } from "../../../src/fleet/jti-store.js";
import { busClient, captureBus, FakeFleetCore, gatewayConfig, startGateway, type Capture } from "../../support/fleet-core.js";
import { claims, joseToken, testKey } from "../../support/fleet-tokens.js";
import { Mosquitto } from "../../support/mosquitto.js";
import { assertNoLeaks } from "../../support/planted.js";
import { tmpDir } from "../../support/tmp.js";
import { eventually, sleep } from "../../support/daemon.js";

const key = testKey("fleet-ops");
const now = () => Math.floor(Date.now() / 1000);

describe("fleet channel sessions and outages on a real mosquitto", () => {
  let broker: Mosquitto;
  let dir: string;
  let bus: Capture;
  let trust: Record<string, string>;
  const cleanup: (() => void | Promise<void>)[] = [];
  const ctx = { after: (fn: () => void | Promise<void>) => cleanup.push(fn) };

  before(async () => {
    dir = tmpDir(ctx);
    broker = await Mosquitto.start(ctx, dir, ["admin", "ops", "gw-s1", "gw-s2", "gw-s3", "gw-s4", "gw-s5", "gw-s6"]);
    fs.writeFileSync(path.join(dir, "fleet-ops.pub"), key.publicPem);
    trust = { "fleet-ops": path.join(dir, "fleet-ops.pub") };
    bus = await captureBus(ctx, broker);
  });
  after(async () => {
    for (const fn of cleanup.reverse()) await fn();
  });

  test("persistent session: a revoke published while the gateway was stopped is delivered and carried out when it starts", async (t) => {
    const cfg = gatewayConfig(broker, "gw-s1", dir, { commands: { trust, max_lifetime: 86_400_000 } });
    const core = new FakeFleetCore();
    const jtis = new MemoryJtiStore();
    const first = await startGateway(t, cfg, { core, jtis });
    await eventually(async () => first.part.state().subscribed, 10_000, "subscribed");
    await first.part.stop();
    assert.equal(first.part.state().state, "stopped");

    const c = claims("gw-s1", now(), { cmd: "revoke", names: ["demo/api-token"] });
    const ops = await busClient(t, broker, "ops");
    await ops.publishAsync("sealcache/gw-s1/cmd", await joseToken(key, c), { qos: 1 });
    await sleep(300);
    assert.equal(core.values.has("demo/api-token"), true, "nothing happens while the gateway is away");

    const from = bus.messages.length;
    const second = await startGateway(t, cfg, { core, jtis });
    const r = JSON.parse((await bus.next((m, i) => i >= from && m.topic === "sealcache/gw-s1/result", 15_000, "the queued command's result")).payload);
    assert.deepEqual([r.jti, r.ok, r.code], [c.jti, true, "ok"]);
    assert.equal(core.values.has("demo/api-token"), false, "revoked at reconnect");
    assert.ok(second.log().includes('"session_present":true'), "the broker kept the session");
  });

  test("broker restart: the gateway backs off, reconnects, and republishes its status", async (t) => {
    const gw = await startGateway(t, gatewayConfig(broker, "gw-s2", dir));
    await eventually(async () => gw.part.state().state === "connected", 10_000, "connected");
    await broker.stop();
    await eventually(async () => gw.part.state().state === "backoff", 10_000, "backoff");
    const down = gw.part.state();
    assert.ok(down.last_error, "the state says why");
    assert.ok(down.next_attempt_ms !== null && down.next_attempt_ms <= 1_000, JSON.stringify(down));
    await sleep(2_500);
    const attempts = gw.events.filter((e) => e.type === "attempt").length;
    assert.ok(attempts >= 3 && attempts <= 40, `${attempts} attempts in 2.5 s with a backoff of 100 ms to 1 s: retried, not in a tight loop`);

    await broker.start();
    // The capture's connection went with the broker: a new one (the status is retained, so it sees it either way).
    const fresh = await captureBus(t, broker);
    await eventually(async () => gw.part.state().state === "connected", 10_000, "reconnected");
    const s = await fresh.next(
      (m) => m.topic === "sealcache/gw-s2/status" && JSON.parse(m.payload).online === true && Date.parse(JSON.parse(m.payload).at) > Date.now() - 5_000,
      10_000,
      "a fresh status after the restart",
    );
    assert.equal(JSON.parse(s.payload).secrets, 3);
    assert.equal(gw.part.state().last_error, null);
    bus = fresh;
  });

  test("the broker down at start: start() resolves at once, the part backs off, and connects once the broker is up", async (t) => {
    await broker.stop();
    const started = Date.now();
    const gw = await startGateway(t, gatewayConfig(broker, "gw-s3", dir));
    assert.ok(Date.now() - started < 1_000, "start() does not wait for the broker");
    await eventually(async () => gw.part.state().state === "backoff", 5_000, "backoff");
    assert.match(gw.part.state().last_error ?? "", /ECONNREFUSED/);
    await broker.start();
    bus = await captureBus(t, broker);
    await eventually(async () => gw.part.state().state === "connected", 10_000, "connected after the broker came up");
    await bus.next((m) => m.topic === "sealcache/gw-s3/status" && JSON.parse(m.payload).online === true, 10_000, "status once up");
  });

  test("a refusing or misconfigured broker never throws out of the part: each is a state with its reason, retried", async (t) => {
    const cases: [string, Parameters<typeof gatewayConfig>[3], RegExp][] = [
      ["a wrong password", { password_file: writeFile("wrong-pw", "not-the-password\n") }, /Bad User Name or Password|Not authorized/i],
      ["a CA that did not sign the broker", { ca_file: broker.certs.otherCaFile }, /certificate/i],
      ["a missing ca_file", { ca_file: path.join(dir, "no-such-ca.pem") }, /mqtt\.ca_file: cannot read .*no-such-ca\.pem \(ENOENT\)/],
      [
        "password_secret not in the cache",
        { password_file: undefined, password_secret: "mqtt/password" },
        /the MQTT password \(mqtt\.password_secret "mqtt\/password"\) is not in the cache/,
      ],
    ];
    for (const [what, patch, reason] of cases) {
      const gw = await startGateway(t, gatewayConfig(broker, "gw-s4", dir, patch));
      await eventually(
        async () => gw.part.state().state === "backoff" && reason.test(gw.part.state().last_error ?? ""),
        10_000,
        `${what}: backoff with its reason`,
      ).catch(() => assert.fail(`${what}: ${JSON.stringify(gw.part.state())}`));
      await gw.part.stop();
    }
  });

  test("password_secret: the password is served from the cache, and the copy handed over is zeroed once the attempt is over", async (t) => {
    const handed: Uint8Array[] = [];
    const core = new (class extends FakeFleetCore {
      override secret(name: string): Uint8Array | undefined {
        const v = super.secret(name);
        if (v) handed.push(v);
        return v;
      }
    })();
    core.values.set("mqtt/password", new TextEncoder().encode(broker.user("gw-s5").password));
    const gw = await startGateway(t, gatewayConfig(broker, "gw-s5", dir, { password_file: undefined, password_secret: "mqtt/password" }), { core });
    await eventually(async () => gw.part.state().state === "connected", 10_000, "connected with the cached password");
    assert.ok(handed.length >= 1);
    assert.ok(
      handed.every((b) => b.every((x) => x === 0)),
      "zeroed after use",
    );
    assertNoLeaks(gw.log(), "the gateway's log", [broker.user("gw-s5").password]);
  });

  test("a renewed password is read again at the next connection (password_file)", async (t) => {
    const file = writeFile("gw-s6-rotated.password", "stale-password\n");
    const gw = await startGateway(t, gatewayConfig(broker, "gw-s6", dir, { password_file: file }));
    await eventually(async () => gw.part.state().state === "backoff" && gw.part.state().attempts >= 1, 10_000, "refused with the old password");
    fs.writeFileSync(file, `${broker.user("gw-s6").password}\n`);
    await eventually(async () => gw.part.state().state === "connected", 10_000, "connected with the new password, no restart");
  });

  function writeFile(name: string, text: string): string {
    const f = path.join(dir, name);
    fs.writeFileSync(f, text, { mode: 0o600 });
    return f;
  }
});
