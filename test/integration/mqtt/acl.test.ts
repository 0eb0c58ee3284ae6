import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { busClient, captureBus, gatewayConfig, startGateway, type Capture } from "../../support/fleet-core.js";
import { fleetAcl, Mosquitto } from "../../support/mosquitto.js";
import { tmpDir } from "../../support/tmp.js";
import { eventually, sleep } from "../../support/daemon.js";

describe("the broker ACL of the README (%u / %c patterns): each gateway reads only its own and the fleet's commands", () => {
  let broker: Mosquitto;
  let dir: string;
  let bus: Capture;
  const cleanup: (() => void | Promise<void>)[] = [];
  const ctx = { after: (fn: () => void | Promise<void>) => cleanup.push(fn) };

  before(async () => {
    dir = tmpDir(ctx);
    broker = await Mosquitto.start(ctx, dir, ["admin", "ops", "gw-a1", "gw-a2", "gw-a3"]);
    bus = await captureBus(ctx, broker);
  });
  after(async () => {
    for (const fn of cleanup.reverse()) await fn();
  });

  test("the ACL is the README's", () => {
    assert.match(
      fleetAcl(),
      /pattern read sealcache\/%u\/cmd\npattern read sealcache\/fleet\/cmd\npattern write sealcache\/%c\/status\npattern write sealcache\/%c\/result/,
    );
  });

  test("a gateway that subscribes to another's command topic (or to all) gets none of its commands; the fleet topic it may read", async (t) => {
    const gw2 = await busClient(t, broker, "gw-a2");
    const got: string[] = [];
    gw2.on("message", (topic) => got.push(topic));
    // mosquitto 2.0 grants the subscription and checks the ACL at each delivery (other brokers refuse it with 0x87).
    await gw2.subscribeAsync(["sealcache/gw-a1/cmd", "sealcache/fleet/cmd", "sealcache/+/cmd", "#"], { qos: 1 });
    const ops = await busClient(t, broker, "ops");
    await ops.publishAsync("sealcache/gw-a1/cmd", "for gw-a1 only", { qos: 1 });
    await ops.publishAsync("sealcache/fleet/cmd", "for everyone", { qos: 1 });
    await bus.next((m) => m.payload === "for everyone", 5_000, "the fleet command on the bus");
    await sleep(300);
    assert.deepEqual([...new Set(got)], ["sealcache/fleet/cmd"], "overlapping subscriptions may deliver the fleet command more than once; never gw-a1's");
  });

  test("a gateway cannot write another's status or results, nor send commands", async (t) => {
    const gw2 = await busClient(t, broker, "gw-a2");
    for (const topic of ["sealcache/gw-a1/status", "sealcache/gw-a1/result", "sealcache/gw-a1/cmd", "sealcache/fleet/cmd"]) {
      await assert.rejects(
        gw2.publishAsync(topic, `spoofed by gw-a2 on ${topic}`, { qos: 1, retain: topic.endsWith("status") }),
        (e: { code?: number }) => e.code === 0x87,
        `${topic}: PUBACK 0x87 not authorized`,
      );
    }
    await gw2.publishAsync("sealcache/gw-a2/status", "gw-a2's own", { qos: 1 });
    await bus.next((m) => m.payload === "gw-a2's own", 5_000, "gw-a2's own status");
    await sleep(300);
    assert.deepEqual(
      bus.messages.filter((m) => m.payload.startsWith("spoofed")),
      [],
    );
  });

  test("a client id is no disguise: the broker replaces it by the username, so %c is gw-a2 whatever gw-a2 claims", async (t) => {
    const gw2 = await busClient(t, broker, "gw-a2", { clientId: "gw-a1" });
    await assert.rejects(gw2.publishAsync("sealcache/gw-a1/status", "spoofed with gw-a1's client id", { qos: 1 }), (e: { code?: number }) => e.code === 0x87);
    await sleep(300);
    assert.deepEqual(
      bus.messages.filter((m) => m.payload.startsWith("spoofed")),
      [],
    );
  });

  test("a gateway configured with another's device id is refused by the broker; the part says so in its state", async (t) => {
    // gw-a3's credentials, gw-a1's topics: its will (gw-a1/status) and its subscriptions are not its to have.
    const cfg = { ...gatewayConfig(broker, "gw-a3", dir), device_id: "gw-a1" };
    const gw = await startGateway(t, cfg);
    await eventually(async () => gw.part.state().last_error !== null, 10_000, "a reason");
    const s = gw.part.state();
    assert.match(
      s.last_error!,
      /^the broker refused our publish on sealcache\/gw-a1\/status \(Publish error: Not authorized\): check its ACL/,
      JSON.stringify(s),
    );
    assert.deepEqual(
      bus.messages.filter((m) => m.topic.startsWith("sealcache/gw-a1/") && m.payload.includes('"online":true')),
      [],
    );
  });
});
