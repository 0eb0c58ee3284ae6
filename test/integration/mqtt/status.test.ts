import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import { after, before, describe, test } from "node:test";
import { captureBus, gatewayConfig, startGateway } from "../../support/fleet-core.js";
import { Mosquitto } from "../../support/mosquitto.js";
import { assertNoLeaks } from "../../support/planted.js";
import { tmpDir } from "../../support/tmp.js";
import { ROOT, sleep } from "../../support/daemon.js";

const GATEWAYS = ["gw-1", "gw-2", "gw-3", "gw-4", "gw-5"];

describe("fleet channel: retained status and the will, on a real mosquitto (TLS, client certificates, passwords, ACL)", () => {
  let broker: Mosquitto;
  let dir: string;
  const cleanup: (() => void | Promise<void>)[] = [];
  before(async () => {
    dir = tmpDir({ after: (fn) => cleanup.push(fn) });
    broker = await Mosquitto.start({ after: (fn) => cleanup.push(fn) }, dir, ["admin", "ops", ...GATEWAYS]);
  });
  after(async () => {
    for (const fn of cleanup.reverse()) await fn();
  });

  test("on connect the gateway publishes a retained status: counts and states, never a value, no names by default", async (t) => {
    const bus = await captureBus(t, broker);
    const gw = await startGateway(t, gatewayConfig(broker, "gw-1", dir));
    const m = await bus.next((m) => m.topic === "sealcache/gw-1/status", 10_000, "a status");
    const s = JSON.parse(m.payload);
    assert.deepEqual(Object.keys(s), ["online", "sealed", "secrets", "stale", "providers", "revision", "version", "at"]);
    assert.deepEqual(
      { ...s, at: undefined },
      { online: true, sealed: false, secrets: 3, stale: 0, providers: { local: "online" }, revision: 1, version: "0.0.0-test", at: undefined },
    );
    assert.ok(Math.abs(Date.parse(s.at) - Date.now()) < 10_000, s.at);
    assert.equal(gw.part.state().state, "connected");
    assert.equal(gw.part.state().subscribed, true);
    assertNoLeaks(bus.text(), "the bus", gw.core.plantedValues());
  });

  test("the status is retained: a client subscribing later gets it at once", async (t) => {
    await startGateway(t, gatewayConfig(broker, "gw-2", dir));
    const first = await captureBus(t, broker);
    await first.next((m) => m.topic === "sealcache/gw-2/status" && JSON.parse(m.payload).online === true, 10_000, "gw-2 online");
    const late = await captureBus(t, broker, "ops", "sealcache/gw-2/status");
    const m = await late.next(() => true, 5_000, "the retained status");
    assert.equal(m.retain, true);
    assert.equal(JSON.parse(m.payload).online, true);
  });

  test("with metrics.secret_names the status carries the names (never values)", async (t) => {
    const bus = await captureBus(t, broker);
    const gw = await startGateway(t, gatewayConfig(broker, "gw-3", dir), { secretNames: true });
    const m = await bus.next((m) => m.topic === "sealcache/gw-3/status", 10_000, "a status");
    assert.deepEqual(JSON.parse(m.payload).names, ["demo/api-token", "demo/db-password", "kafka/password"]);
    assertNoLeaks(bus.text(), "the bus", gw.core.plantedValues());
  });

  test("changes are published debounced: a burst of 50 changes is one or two publishes carrying the last state", async (t) => {
    const bus = await captureBus(t, broker);
    const gw = await startGateway(t, gatewayConfig(broker, "gw-4", dir), { timing: { statusMinIntervalMs: 1_500 } });
    await bus.next((m) => m.topic === "sealcache/gw-4/status", 10_000, "the connect status");
    const before = bus.messages.filter((m) => m.topic === "sealcache/gw-4/status").length;
    for (let i = 0; i < 50; i++) gw.core.change((c) => (c.revision += 1));
    await bus.next((m) => m.topic === "sealcache/gw-4/status" && JSON.parse(m.payload).revision === 51, 10_000, "the last revision");
    await sleep(2_000);
    const statuses = bus.messages.filter((m) => m.topic === "sealcache/gw-4/status").slice(before);
    assert.ok(statuses.length >= 1 && statuses.length <= 2, `${statuses.length} publishes for 50 changes within one debounce interval`);
    assert.equal(JSON.parse(statuses.at(-1)!.payload).revision, 51);
    // A change that leaves the status as it was publishes nothing.
    gw.core.change(() => undefined);
    await sleep(2_000);
    assert.equal(bus.messages.filter((m) => m.topic === "sealcache/gw-4/status").length, before + statuses.length);
    // A provider going offline is a change.
    gw.core.change((c) => (c.providers = { local: "offline" }));
    const off = await bus.next((m) => m.topic === "sealcache/gw-4/status" && JSON.parse(m.payload).providers.local === "offline", 10_000, "provider offline");
    assert.equal(JSON.parse(off.payload).online, true, "online says the gateway is on the bus; backends are per provider");
  });

  test("the will: a gateway killed without a goodbye shows {online: false}, retained; a clean stop publishes offline too", async (t) => {
    const bus = await captureBus(t, broker);
    const file = path.join(dir, "gw-5.json");
    fs.writeFileSync(file, JSON.stringify({ config: gatewayConfig(broker, "gw-5", dir) }));
    const run = () => {
      const child = spawn(process.execPath, ["--import", "tsx", path.join(ROOT, "test/support/gateway-child.ts"), file], { stdio: ["ignore", "pipe", "pipe"] });
      t.after(() => void child.kill("SIGKILL"));
      return child;
    };
    const online = (since: number) =>
      bus.next((m, i) => i >= since && m.topic === "sealcache/gw-5/status" && JSON.parse(m.payload).online === true, 20_000, "gw-5 online");
    let child = run();
    await online(0);
    let seen = bus.messages.length;
    child.kill("SIGKILL");
    const will = await bus.next((m, i) => i >= seen && m.topic === "sealcache/gw-5/status", 20_000, "the will");
    assert.equal(will.payload, '{"online":false}');
    const late = await captureBus(t, broker, "ops", "sealcache/gw-5/status");
    assert.equal((await late.next(() => true, 5_000, "the retained will")).payload, '{"online":false}', "the will is retained");

    seen = bus.messages.length;
    child = run();
    await online(seen);
    seen = bus.messages.length;
    const exited = new Promise((r) => child.once("exit", r));
    child.kill("SIGTERM");
    await exited;
    const offline = JSON.parse((await bus.next((m, i) => i >= seen && m.topic === "sealcache/gw-5/status", 10_000, "the offline status")).payload);
    assert.equal(offline.online, false);
    assert.equal(offline.secrets, 3, "a clean stop says more than the will can: the last counts and the time");
    assert.ok(offline.at);
  });
});
