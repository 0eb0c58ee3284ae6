// The fleet channel through the real daemon: a real mosquitto (TLS, client
// certificates, the fleet ACL), gateways that are `sealcache daemon` processes,
// operator keys made and commands signed with the CLI, and the effects read back
// through the socket and `sealcache audit`. The whole bus is captured from the
// start and searched for secret values at the end.
import assert from "node:assert/strict";
import fs from "node:fs";
import path from "node:path";
import { after, before, describe, test } from "node:test";
import type { MqttClient } from "mqtt";
import { cli, eventually, launch, type RunningDaemon } from "../../support/daemon.js";
import { gatewayDaemonConfig, jtiOf, operatorKey, retained, signWithCli, type OperatorKey } from "../../support/fleet-daemon.js";
import { busClient, captureBus, type Capture } from "../../support/fleet-core.js";
import { claims, joseToken, rawToken, testKey } from "../../support/fleet-tokens.js";
import { fleetAcl, Mosquitto } from "../../support/mosquitto.js";
import { DEMO_VALUES, assertNoLeaks, planted } from "../../support/planted.js";
import { tmpDir } from "../../support/tmp.js";
import { suiteScope } from "../../support/scope.js";

const now = () => Math.floor(Date.now() / 1000);
type Result = { jti: string | null; ok: boolean; code: string; message: string };
type AuditRow = { route: string; name: string | null; status: number; code: string; principal: string; at: string };

describe("the fleet channel through the real daemon", () => {
  let dir: string;
  let broker: Mosquitto;
  let bus: Capture;
  let ops: MqttClient;
  let key: OperatorKey;
  let gw: RunningDaemon;
  let gwDir: string;
  let c: string[];
  /** Every value that must never be published: planted ones, the broker password the daemon reads from its cache. */
  const values: string[] = [];
  const scope = suiteScope();

  before(async () => {
    dir = tmpDir(scope);
    broker = await Mosquitto.start(
      scope,
      path.join(dir, "broker"),
      ["admin", "ops", "viewer", "gw-e1", "gw-e2"],
      `${fleetAcl()}\nuser viewer\ntopic read sealcache/+/status\n`,
    );
    values.push(broker.user("gw-e1").password, broker.user("gw-e2").password);
    bus = await captureBus(scope, broker);
    ops = await busClient(scope, broker, "ops");
    key = await operatorKey(dir);
    gwDir = path.join(dir, "gw-e1");
    fs.mkdirSync(gwDir, { mode: 0o700 });
    // The broker password is a secret of the cache itself (password_secret); status may name secrets.
    const config = gatewayDaemonConfig(gwDir, broker, "gw-e1", {
      trust: { "fleet-ops": key.pub },
      password: "secret",
      patch: { metrics: { secret_names: true } },
    });
    gw = await launch(scope, gwDir, config, { waitFor: "synced", extraSecrets: values });
    c = ["--config", gw.configFile];
    await eventually(async () => (await gw.get("/v1/health")).json().mqtt?.subscribed === true, 15_000, "gw-e1 connected and subscribed");
  });
  after(async () => {
    await scope.run();
  });

  /** Publishes `payload` on a command topic; the gateway's next result (the one for the token's jti when it claims one). */
  async function send(payload: string | Buffer, o: { topic?: string; device?: string } = {}): Promise<Result> {
    const device = o.device ?? "gw-e1";
    let jti: string | undefined;
    try {
      jti = typeof payload === "string" ? jtiOf(payload) : undefined;
    } catch {
      jti = undefined;
    }
    const from = bus.messages.length;
    await ops.publishAsync(o.topic ?? `sealcache/${device}/cmd`, payload, { qos: 1 });
    const m = await bus.next(
      (m, i) => i >= from && m.topic === `sealcache/${device}/result` && (jti === undefined || JSON.parse(m.payload).jti === jti),
      15_000,
      `a result from ${device}`,
    );
    return JSON.parse(m.payload) as Result;
  }
  const audit = async (q: string[]): Promise<AuditRow[]> => {
    const r = await cli(["--json", "audit", ...q, ...c]);
    assert.equal(r.code, 0, r.stderr);
    return JSON.parse(r.stdout).entries;
  };
  const raw = async (name: string) => gw.get(`/v1/secrets/${name}?format=raw`);

  test("status: retained on connect, states and counts (names with metrics.secret_names), never a value; health, status and doctor show the connection", async () => {
    const live = await bus.next((m) => m.topic === "sealcache/gw-e1/status" && JSON.parse(m.payload).online === true, 10_000, "gw-e1's status");
    const r = await retained(broker, "viewer", "sealcache/gw-e1/status");
    assert.equal(r?.retain, true, "retained: a dashboard that subscribes later gets it at once");
    const s = r!.payload;
    assert.deepEqual(Object.keys(s).sort(), ["at", "names", "online", "providers", "revision", "sealed", "secrets", "stale", "version"]);
    assert.deepEqual([s.online, s.sealed, s.secrets, s.stale, s.providers], [true, false, 4, 0, { demo: "online" }]);
    assert.deepEqual(s.names, ["demo/api-token", "demo/db-password", "demo/kafka-password", "mqtt/password"]);
    assert.ok(Date.parse(s.at) > 0);
    assertNoLeaks(live.payload, "the status", values);

    const h = (await gw.get("/v1/health")).json().mqtt;
    assert.deepEqual([h.state, h.subscribed, h.client_id, h.broker, h.trust.keys], ["connected", true, "gw-e1", broker.url, ["fleet-ops"]]);
    const st = await cli(["status", ...c]);
    assert.match(st.stdout, new RegExp(`^mqtt: connected to ${broker.url.replaceAll(".", "\\.")} as gw-e1, subscribed since `, "m"));
    const doc = JSON.parse((await cli(["--json", "doctor", ...c])).stdout).checks as { check: string; level: string; message: string }[];
    assert.ok(
      doc.some((x) => x.check === "broker" && x.level === "ok" && /the daemon is connected as gw-e1, subscribed to its command topics/.test(x.message)),
      JSON.stringify(doc),
    );
    assert.ok(
      doc.some((x) => x.check === "trust" && x.level === "ok"),
      JSON.stringify(doc),
    );
    // Logged in with the password from its own cache: the config names no password file.
    assert.doesNotMatch(fs.readFileSync(gw.configFile, "utf8"), /password_file/);
    assert.match(fs.readFileSync(gw.configFile, "utf8"), /password_secret: mqtt\/password/);
  });

  test("push refresh with sync.interval 1h: a rotated value is served within seconds", async () => {
    const v = planted("pushed");
    values.push(v);
    fs.writeFileSync(path.join(gwDir, "secrets", "api-token"), v);
    assert.equal((await raw("demo/api-token")).body, DEMO_VALUES[0], "not fetched on its own: the interval is an hour");
    const token = await signWithCli(key, ["--aud", "gw-e1", "--cmd", "refresh", "--name", "demo/api-token", "--ttl", "1h"]);
    const r = await send(token);
    assert.deepEqual(r, { jti: jtiOf(token), ok: true, code: "ok", message: "a sync of 1 secret is queued: demo/api-token" });
    await eventually(async () => (await raw("demo/api-token")).body === v, 10_000, "the rotated value served");
    const a = (await audit(["--since", "1m"])).find((e) => e.principal === `fleet:fleet-ops:${jtiOf(token)}`);
    assert.deepEqual([a?.route, a?.name, a?.status, a?.code], ["fleet:refresh", "demo/api-token", 200, "ok"]);
  });

  test("a signed revoke (fleet keygen / fleet sign): shredded, 410 revoked, audited with the fleet principal; the retained status follows", async () => {
    const before = (await retained(broker, "viewer", "sealcache/gw-e1/status"))!.payload.revision as number;
    const token = await signWithCli(key, ["--aud", "gw-e1", "--cmd", "revoke", "--name", "demo/db-password"]);
    const r = await send(token);
    assert.deepEqual(r, { jti: jtiOf(token), ok: true, code: "ok", message: "revoked 1 secret: demo/db-password" });
    const got = await gw.get("/v1/secrets/demo/db-password");
    assert.deepEqual([got.status, got.json().error], [410, "revoked"]);
    assert.match(got.json().message, new RegExp(`revoked \\(by fleet command "${jtiOf(token)}" \\(key "fleet-ops"\\) at `));
    const rows = await audit(["--since", "1m", "--name", "demo/db-password"]);
    assert.ok(
      rows.some((e) => e.route === "fleet:revoke" && e.principal === `fleet:fleet-ops:${jtiOf(token)}` && e.status === 200),
      JSON.stringify(rows),
    );
    const human = await cli(["audit", "--since", "1m", "--name", "demo/db-password", ...c]);
    assert.match(human.stdout, /fleet:revoke\s+demo\/db-password\s+200\s+ok/);
    await eventually(
      async () => (await retained(broker, "viewer", "sealcache/gw-e1/status"))!.payload.revision > before,
      15_000,
      "a new status after the revoke",
    );
    // The same token again: refused, nothing done twice.
    const again = await send(token);
    assert.deepEqual([again.jti, again.ok, again.code], [jtiOf(token), false, "replayed"]);
  });

  test("a command the core refuses (an unknown name) is answered with the core's code and audited with the socket's status for it", async () => {
    const token = await signWithCli(key, ["--aud", "gw-e1", "--cmd", "revoke", "--name", "demo/nothing"]);
    const r = await send(token);
    assert.deepEqual([r.ok, r.code], [false, "not_found"]);
    assert.match(r.message, /^revoke failed: no secret named "demo\/nothing" is configured or cached$/);
    const row = (await audit(["--since", "1m", "--name", "demo/nothing"])).find((e) => e.principal === `fleet:fleet-ops:${jtiOf(token)}`);
    assert.deepEqual([row?.route, row?.status, row?.code], ["fleet:revoke", 404, "not_found"]);
    // Not remembered: the same token may be sent again once the name exists (and is refused the same way now).
    assert.equal((await send(token)).code, "not_found");
  });

  const refusals: [string, () => Promise<string | Buffer>, string, RegExp][] = [
    ["not JSON, not a JWT", async () => "revoke everything please", "not_jwt", /not a JWS compact token/],
    [
      "alg none",
      async () => rawToken({ alg: "none", kid: "fleet-ops" }, claims("gw-e1", now(), { cmd: "revoke", names: undefined, all: true })),
      "bad_alg",
      /alg "none"/,
    ],
    [
      "alg HS256",
      async () => rawToken({ alg: "HS256", kid: "fleet-ops" }, claims("gw-e1", now(), { cmd: "revoke", names: ["demo/api-token"] }), undefined, "c2lnbmF0dXJl"),
      "bad_alg",
      /alg "HS256"/,
    ],
    [
      "an unknown kid",
      async () => joseToken(testKey("intruder"), claims("gw-e1", now(), { cmd: "revoke", names: ["demo/api-token"] })),
      "unknown_kid",
      /kid "intruder" names no key/,
    ],
    [
      "a bad signature",
      async () => joseToken(testKey("fleet-ops"), claims("gw-e1", now(), { cmd: "revoke", names: undefined, all: true })),
      "bad_signature",
      /does not verify/,
    ],
    [
      "the wrong audience",
      async () => joseToken(key, claims("gw-e2", now(), { cmd: "revoke", names: ["demo/api-token"] })),
      "wrong_audience",
      /for "gw-e2", not this device \("gw-e1"\)/,
    ],
    [
      "no exp",
      async () => joseToken(key, claims("gw-e1", now(), { cmd: "revoke", names: ["demo/api-token"], exp: undefined })),
      "no_expiry",
      /every command must expire/,
    ],
    [
      "expired",
      async () => joseToken(key, claims("gw-e1", now() - 7200, { cmd: "revoke", names: ["demo/api-token"], exp: now() - 3600 })),
      "expired",
      /expired at/,
    ],
    [
      "iat 10 minutes ahead",
      async () => joseToken(key, claims("gw-e1", now() + 600, { cmd: "revoke", names: ["demo/api-token"], exp: now() + 7200 })),
      "not_yet_valid",
      /ahead of this gateway's clock/,
    ],
    [
      "a lifetime past max_lifetime",
      async () => joseToken(key, claims("gw-e1", now(), { cmd: "revoke", names: ["demo/api-token"], exp: now() + 40 * 86_400 })),
      "lifetime_too_long",
      /longer than mqtt.commands.max_lifetime/,
    ],
    ["an unknown cmd", async () => joseToken(key, claims("gw-e1", now(), { cmd: "reboot" })), "unknown_cmd", /cmd "reboot"/],
    [
      "a name that breaks the name rules",
      async () => joseToken(key, claims("gw-e1", now(), { cmd: "revoke", names: ["../../etc/passwd"] })),
      "bad_names",
      /names\[0\]/,
    ],
    ["a 1 MiB payload", async () => Buffer.alloc(1024 * 1024, 0x41), "too_large", /1048576 bytes; a command is at most 64 KiB/],
  ];
  test("every refusal: answered not ok with its code, audited (the claimed principal shown by sealcache audit), nothing changed", async () => {
    const state = async () => [(await raw("demo/api-token")).body, (await raw("demo/kafka-password")).body, (await gw.get("/v1/health")).json().revision];
    const before = await state();
    for (const [what, make, code, message] of refusals) {
      const payload = await make();
      const r = await send(payload);
      assert.deepEqual([r.ok, r.code], [false, code], `${what}: ${r.message}`);
      assert.match(r.message, message, what);
      // What the refused message claims (unverified) is what identifies it in the result and the trail.
      const part = (i: number, k: string) => {
        try {
          return typeof payload === "string"
            ? (JSON.parse(Buffer.from(payload.split(".")[i]!, "base64url").toString()) as Record<string, string>)[k]
            : undefined;
        } catch {
          return undefined;
        }
      };
      const [kid, jti] = [part(0, "kid"), part(1, "jti")];
      if (jti) assert.equal(r.jti, jti, `${what}: the claimed jti is echoed`);
      const row = (await audit(["--since", "1m", "--limit", "10000"])).filter((e) => e.code === code).at(-1);
      assert.ok(row, `${what}: audited`);
      assert.equal(row.status, 400, what);
      assert.match(row.route, /^fleet:/);
      assert.equal(row.principal, `fleet:unverified:${kid ?? "-"}:${jti ?? "-"}`, what);
    }
    assert.deepEqual(await state(), before, "no refusal changed anything");
  });

  test("1,000 commands in a second: the excess answered rate_limited, the socket keeps serving, commands work again after", async () => {
    const from = bus.messages.length;
    const flood = Array.from({ length: 1000 }, (_, i) => ops.publishAsync("sealcache/gw-e1/cmd", `flood ${i}`, { qos: 0 }));
    // The socket meanwhile: every lookup answered.
    const lookups: number[] = [];
    const reading = (async () => {
      for (let i = 0; i < 50; i++) lookups.push((await raw("demo/kafka-password")).status);
    })();
    await Promise.all(flood);
    await reading;
    assert.deepEqual([...new Set(lookups)], [200], "every lookup during the flood was served");
    const results = () =>
      bus.messages
        .slice(from)
        .filter((m) => m.topic === "sealcache/gw-e1/result")
        .map((m) => JSON.parse(m.payload) as Result);
    await eventually(() => results().length >= 900, 20_000, "answers to the flood");
    const codes = new Map<string, number>();
    for (const r of results()) codes.set(r.code, (codes.get(r.code) ?? 0) + 1);
    assert.ok((codes.get("rate_limited") ?? 0) >= 800, JSON.stringify([...codes]));
    assert.ok((codes.get("not_jwt") ?? 0) >= 1 && (codes.get("not_jwt") ?? 0) <= 100, JSON.stringify([...codes]));
    assert.match(results().find((r) => r.code === "rate_limited")!.message, /more commands arrived than this gateway takes \(20 at once or 5 a second\)/);
    // Each one answered is audited too (429, as the socket's rate limit is).
    const limited = codes.get("rate_limited")!;
    await eventually(
      async () => (await audit(["--since", "1m", "--limit", "10000"])).filter((e) => e.code === "rate_limited" && e.status === 429).length >= limited,
      10_000,
      "the rate-limited commands audited",
    );
    // Once the flood is over a valid command goes through (the bucket refills at 5 a second);
    // its result is told from the flood's late answers by its jti.
    const done = await eventually(
      async () => {
        const r = await send(await joseToken(key, claims("gw-e1", now(), { cmd: "refresh", names: ["demo/kafka-password"] })));
        return r.ok && r;
      },
      20_000,
      "a command accepted after the flood",
    );
    assert.equal(done.code, "ok");
  });

  test("a fleet-wide command (aud fleet, on the fleet topic) reaches two daemons; each answers on its own result topic", async (t) => {
    const dir2 = path.join(dir, "gw-e2");
    fs.mkdirSync(dir2, { mode: 0o700 });
    const gw2 = await launch(t, dir2, gatewayDaemonConfig(dir2, broker, "gw-e2", { trust: { "fleet-ops": key.pub } }), {
      waitFor: "synced",
      extraSecrets: values,
    });
    await eventually(async () => (await gw2.get("/v1/health")).json().mqtt?.subscribed === true, 15_000, "gw-e2 subscribed");
    const rotated = [planted("fleet-e1"), planted("fleet-e2")];
    values.push(...rotated);
    fs.writeFileSync(path.join(gwDir, "secrets", "pipeline.env"), `KAFKA_PASSWORD=${rotated[0]}\n`);
    fs.writeFileSync(path.join(dir2, "secrets", "pipeline.env"), `KAFKA_PASSWORD=${rotated[1]}\n`);
    const token = await signWithCli(key, ["--aud", "fleet", "--cmd", "refresh", "--all", "--ttl", "1h"]);
    const from = bus.messages.length;
    await ops.publishAsync("sealcache/fleet/cmd", token, { qos: 1 });
    for (const device of ["gw-e1", "gw-e2"]) {
      const m = await bus.next(
        (m, i) => i >= from && m.topic === `sealcache/${device}/result` && JSON.parse(m.payload).jti === jtiOf(token),
        15_000,
        `${device}'s result`,
      );
      const r = JSON.parse(m.payload) as Result;
      assert.deepEqual([r.jti, r.ok, r.code], [jtiOf(token), true, "ok"], device);
    }
    await eventually(async () => (await raw("demo/kafka-password")).body === rotated[0], 10_000, "gw-e1 serves its rotated value");
    await eventually(async () => (await gw2.get("/v1/secrets/demo/kafka-password?format=raw")).body === rotated[1], 10_000, "gw-e2 serves its rotated value");
    assert.equal(await gw2.stop(), 0);
  });

  test("the whole bus, captured since the broker started, holds no secret value (nor the broker password the daemon read from its cache)", () => {
    assert.ok(bus.messages.length > 1000, "the capture saw the traffic");
    assert.ok(bus.messages.some((m) => m.topic === "sealcache/gw-e1/status") && bus.messages.some((m) => m.topic === "sealcache/gw-e2/result"));
    assertNoLeaks(bus.text(), "the MQTT bus", values);
  });
});
