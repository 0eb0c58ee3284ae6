import assert from "node:assert/strict";
import fs from "node:fs";
import path from "node:path";
import { after, before, describe, test } from "node:test";
import type { MqttClient } from "mqtt";
import { busClient, captureBus, FakeFleetCore, gatewayConfig, startGateway, type Capture, type Gateway } from "../../support/fleet-core.js";
import { claims, joseToken, rawToken, testKey } from "../../support/fleet-tokens.js";
import { Mosquitto } from "../../support/mosquitto.js";
import { assertNoLeaks } from "../../support/planted.js";
import { tmpDir } from "../../support/tmp.js";
import { eventually } from "../../support/daemon.js";

const key = testKey("fleet-ops");
const stranger = testKey("fleet-ops");
const now = () => Math.floor(Date.now() / 1000);

describe("fleet commands over a real mosquitto: signed refresh and revoke, every refusal answered and audited", () => {
  let broker: Mosquitto;
  let dir: string;
  let ops: MqttClient;
  let bus: Capture;
  let gw: Gateway;
  let trustFile: string;
  const cleanup: (() => void | Promise<void>)[] = [];
  const ctx = { after: (fn: () => void | Promise<void>) => cleanup.push(fn) };

  before(async () => {
    dir = tmpDir(ctx);
    broker = await Mosquitto.start(ctx, dir, ["admin", "ops", "gw-c1", "gw-c2", "gw-c3"]);
    trustFile = path.join(dir, "fleet-ops.pub");
    fs.writeFileSync(trustFile, key.publicPem);
    bus = await captureBus(ctx, broker);
    ops = await busClient(ctx, broker, "ops");
    gw = await startGateway(ctx, gatewayConfig(broker, "gw-c1", dir, { commands: { trust: { "fleet-ops": trustFile }, max_lifetime: 30 * 86_400_000 } }));
    await bus.next((m) => m.topic === "sealcache/gw-c1/status", 10_000, "gw-c1 online");
  });
  after(async () => {
    for (const fn of cleanup.reverse()) await fn();
  });

  /** Publishes `payload` on a command topic and returns the gateway's next result. */
  async function send(
    payload: string | Buffer,
    topic = "sealcache/gw-c1/cmd",
    device = "gw-c1",
  ): Promise<{ jti: string | null; ok: boolean; code: string; message: string }> {
    const from = bus.messages.length;
    await ops.publishAsync(topic, payload, { qos: 1 });
    const m = await bus.next((m, i) => i >= from && m.topic === `sealcache/${device}/result`, 10_000, `a result on ${device}`);
    const r = JSON.parse(m.payload);
    assert.deepEqual(Object.keys(r), ["jti", "ok", "code", "message"]);
    return r;
  }

  test("a signed refresh of names: carried out by the core with the fleet principal, answered ok, audited", async () => {
    const c = claims("gw-c1", now(), { names: ["demo/api-token", "kafka/password"] });
    const r = await send(await joseToken(key, c));
    assert.deepEqual(r, { jti: c.jti, ok: true, code: "ok", message: "a sync of 2 secrets is queued" });
    assert.deepEqual(gw.core.calls.at(-1), {
      op: "refresh",
      principal: { kind: "fleet", issuer: "fleet-ops", jti: c.jti },
      target: { names: ["demo/api-token", "kafka/password"] },
    });
    const a = gw.core.audits.at(-1)!;
    assert.deepEqual(
      [a.principal, a.cmd, a.ok, a.code, a.topic],
      [{ kind: "fleet", issuer: "fleet-ops", jti: c.jti }, "refresh", true, "ok", "sealcache/gw-c1/cmd"],
    );
  });

  test("a device revoke: the names are shredded, the answer counts them, the status follows", async () => {
    const c = claims("gw-c1", now(), { cmd: "revoke", names: ["demo/db-password"] });
    const from = bus.messages.length;
    const r = await send(await joseToken(key, c));
    assert.deepEqual(r, { jti: c.jti, ok: true, code: "ok", message: "revoked 1 secret" });
    assert.equal(gw.core.values.has("demo/db-password"), false);
    const s = await bus.next(
      (m, i) => i >= from && m.topic === "sealcache/gw-c1/status" && JSON.parse(m.payload).secrets === 2,
      10_000,
      "the status after the revoke",
    );
    assert.equal(JSON.parse(s.payload).revision, 2);
  });

  test("a fleet-wide revoke of all on the fleet topic reaches every gateway; each answers on its own result topic", async (t) => {
    const trust = { "fleet-ops": trustFile };
    const gw2 = await startGateway(t, gatewayConfig(broker, "gw-c2", dir, { commands: { trust, max_lifetime: 86_400_000 } }));
    await eventually(async () => gw2.part.state().subscribed, 10_000, "gw-c2 subscribed");
    const c = claims("fleet", now(), { cmd: "revoke", names: undefined, all: true });
    const from = bus.messages.length;
    await ops.publishAsync("sealcache/fleet/cmd", await joseToken(key, c), { qos: 1 });
    for (const [device, g] of [
      ["gw-c1", gw],
      ["gw-c2", gw2],
    ] as const) {
      const m = await bus.next((m, i) => i >= from && m.topic === `sealcache/${device}/result`, 10_000, `${device}'s result`);
      const r = JSON.parse(m.payload);
      assert.deepEqual([r.jti, r.ok, r.code], [c.jti, true, "ok"], device);
      assert.equal(g.core.values.size, 0, `${device}: everything revoked`);
      assert.deepEqual(g.core.calls.at(-1)?.target, { all: true });
    }
    // Put gw-c1's secrets back for the tests that follow.
    gw.core.change((core) => {
      for (const [n, v] of new FakeFleetCore().values) core.values.set(n, v);
    });
  });

  const refusals: [string, () => Promise<string | Buffer>, string, RegExp][] = [
    ["not JSON, not a JWT", async () => "revoke everything please", "not_jwt", /not a JWS compact token/],
    ["unsigned JSON", async () => JSON.stringify({ cmd: "revoke", all: true, aud: "gw-c1" }), "not_jwt", /an unsigned command is never carried out/],
    [
      "alg none",
      async () => rawToken({ alg: "none", kid: "fleet-ops" }, claims("gw-c1", now(), { cmd: "revoke", names: undefined, all: true })),
      "bad_alg",
      /alg "none"/,
    ],
    ["alg HS256", async () => rawToken({ alg: "HS256", kid: "fleet-ops" }, claims("gw-c1", now()), undefined, "c2lnbmF0dXJl"), "bad_alg", /alg "HS256"/],
    ["an unknown kid", async () => joseToken(testKey("intruder"), claims("gw-c1", now())), "unknown_kid", /kid "intruder" names no key/],
    [
      "a bad signature",
      async () => joseToken(stranger, claims("gw-c1", now(), { cmd: "revoke", names: undefined, all: true })),
      "bad_signature",
      /does not verify/,
    ],
    ["the wrong audience", async () => joseToken(key, claims("gw-c2", now())), "wrong_audience", /for "gw-c2", not this device \("gw-c1"\)/],
    ["no exp", async () => joseToken(key, claims("gw-c1", now(), { exp: undefined })), "no_expiry", /every command must expire/],
    ["expired", async () => joseToken(key, claims("gw-c1", now() - 7200, { exp: now() - 3600 })), "expired", /expired at/],
    [
      "iat 10 minutes in the future",
      async () => joseToken(key, claims("gw-c1", now() + 600, { exp: now() + 7200 })),
      "not_yet_valid",
      /ahead of this gateway's clock/,
    ],
    [
      "a lifetime past max_lifetime",
      async () => joseToken(key, claims("gw-c1", now(), { exp: now() + 40 * 86_400 })),
      "lifetime_too_long",
      /longer than mqtt.commands.max_lifetime/,
    ],
    ["an unknown cmd", async () => joseToken(key, claims("gw-c1", now(), { cmd: "reboot" })), "unknown_cmd", /cmd "reboot"/],
    ["a bad name", async () => joseToken(key, claims("gw-c1", now(), { cmd: "revoke", names: ["../../etc/passwd"] })), "bad_names", /names\[0\]/],
    ["a 1 MiB payload", async () => Buffer.alloc(1024 * 1024, 0x41), "too_large", /1048576 bytes; a command is at most 64 KiB/],
  ];
  for (const [what, make, code, message] of refusals) {
    test(`refused: ${what} → ${code}, nothing done, audited`, async () => {
      const calls = gw.core.calls.length;
      const values = [...gw.core.values.keys()];
      const audits = gw.core.audits.length;
      const payload = await make();
      const r = await send(payload);
      assert.deepEqual([r.ok, r.code], [false, code], r.message);
      assert.match(r.message, message);
      assert.equal(gw.core.calls.length, calls, "the core was not asked to do anything");
      assert.deepEqual([...gw.core.values.keys()], values, "nothing revoked");
      const a = gw.core.audits.at(-1)!;
      assert.equal(gw.core.audits.length, audits + 1);
      assert.deepEqual(
        [a.ok, a.code, a.principal, a.topic],
        [false, code, null, "sealcache/gw-c1/cmd"],
        "audited, without a principal: nothing it claims is verified",
      );
      if (typeof payload === "string" && payload.split(".").length === 3) {
        const jti = JSON.parse(Buffer.from(payload.split(".")[1]!, "base64url").toString()).jti;
        if (jti) assert.equal(r.jti, jti, "the claimed jti is echoed so the operator can tell which command it was");
      }
    });
  }

  test("refused: a replayed jti → replayed; the audit names the verified principal", async () => {
    const c = claims("gw-c1", now());
    const token = await joseToken(key, c);
    assert.equal((await send(token)).ok, true);
    const calls = gw.core.calls.length;
    const r = await send(token);
    assert.deepEqual([r.jti, r.ok, r.code], [c.jti, false, "replayed"]);
    assert.equal(gw.core.calls.length, calls);
    assert.deepEqual(gw.core.audits.at(-1)!.principal, { kind: "fleet", issuer: "fleet-ops", jti: c.jti });
    // Sent on the fleet topic as well (as an operator might): the same command, still carried out once.
    const r2 = await send(token, "sealcache/fleet/cmd");
    assert.deepEqual([r2.ok, r2.code], [false, "replayed"]);
  });

  test("a command the core cannot carry out is answered with the core's code and may be sent again as it is", async () => {
    gw.core.sealed = true;
    const c = claims("gw-c1", now(), { cmd: "revoke", names: ["kafka/password"] });
    const token = await joseToken(key, c);
    const r = await send(token);
    assert.deepEqual([r.jti, r.ok, r.code], [c.jti, false, "sealed"]);
    assert.match(r.message, /^revoke failed: the cache is sealed$/);
    assert.equal(gw.core.values.has("kafka/password"), true);
    gw.core.sealed = false;
    assert.deepEqual(
      [(await send(token)).ok, gw.core.values.has("kafka/password")],
      [true, false],
      "not remembered when it failed: the same token works once the core can",
    );
    const missing = await send(await joseToken(key, claims("gw-c1", now(), { names: ["no/such"] })));
    assert.deepEqual([missing.ok, missing.code], [false, "not_found"]);
  });

  test("1,000 commands in a second: the burst is carried out, the rest answered rate_limited, every one answered and audited", async (t) => {
    const g = await startGateway(t, gatewayConfig(broker, "gw-c3", dir, { commands: { trust: { "fleet-ops": trustFile }, max_lifetime: 86_400_000 } }));
    await eventually(async () => g.part.state().subscribed, 10_000, "gw-c3 subscribed");
    const tokens = await Promise.all(Array.from({ length: 1000 }, () => joseToken(key, claims("gw-c3", now()))));
    const from = bus.messages.length;
    const started = Date.now();
    await Promise.all(tokens.map((tk) => ops.publishAsync("sealcache/gw-c3/cmd", tk, { qos: 1 })));
    const results = () =>
      bus.messages
        .slice(from)
        .filter((m) => m.topic === "sealcache/gw-c3/result")
        .map((m) => JSON.parse(m.payload));
    await eventually(async () => results().length === 1000, 60_000, "1,000 results").catch((e) =>
      assert.fail(`${e}: ${results().length} results, ${JSON.stringify(g.part.state())}`),
    );
    const seconds = (Date.now() - started) / 1000;
    const r = results();
    const ok = r.filter((x) => x.ok).length;
    const limited = r.filter((x) => x.code === "rate_limited");
    assert.equal(ok + limited.length, 1000, JSON.stringify(r.filter((x) => !x.ok && x.code !== "rate_limited").slice(0, 3)));
    assert.ok(ok >= 20 && ok <= 20 + Math.ceil(seconds * 5) + 1, `${ok} carried out in ${seconds.toFixed(1)} s: the burst (20) plus 5/s`);
    assert.match(
      limited[0].message,
      /^more commands arrived than this gateway takes \(20 at once or 5 a second\); this one was not read: send it again in \d+ s or later$/,
    );
    assert.ok(
      limited.every((x) => typeof x.jti === "string"),
      "each answer names the jti it refuses",
    );
    assert.equal(g.core.calls.length, ok);
    assert.equal(g.core.audits.length, 1000, "each one audited");
    assert.ok(
      g
        .log()
        .split("\n")
        .filter((l) => l.includes("rate_limited")).length <= 2,
      "the flood is counted in the log, not logged line by line",
    );
  });

  test("the whole bus, captured as admin, holds no secret value and no MQTT password", () => {
    assert.ok(bus.messages.length > 1000);
    // Every value a FakeFleetCore holds is a planted() one, which assertNoLeaks finds by its prefix.
    assertNoLeaks(bus.text(), "the bus", [broker.user("gw-c1").password, broker.user("gw-c2").password, broker.user("gw-c3").password]);
    assertNoLeaks(gw.log(), "the gateway's log", [broker.user("gw-c1").password]);
  });
});
