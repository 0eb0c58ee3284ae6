import assert from "node:assert/strict";
import crypto from "node:crypto";
import fs from "node:fs";
import path from "node:path";
import { describe, test } from "node:test";
import { generateSigningKey, parseSigningKey, signCommand } from "../../../src/fleet/sign.js";
import { loadTrust } from "../../../src/fleet/trust.js";
import { MAX_COMMAND_BYTES, peekClaims, verifyCommand, type VerifyOptions } from "../../../src/fleet/verify.js";
import { isFleetRefusal, type RefusalCode } from "../../../src/fleet/refusal.js";
import { claims, joseToken, rawToken, testKey } from "../../support/fleet-tokens.js";
import { tmpDir } from "../../support/tmp.js";

const NOW = Date.UTC(2026, 10, 20, 12, 0, 0);
const NOW_S = NOW / 1000;
const DAY = 86_400;
const key = testKey("fleet-ops");
const other = testKey("fleet-ops");
const opts: VerifyOptions = { deviceId: "gw-17", keys: new Map([[key.kid, key.publicKey]]), maxLifetimeMs: 30 * DAY * 1000 };
const bytes = (s: string) => new TextEncoder().encode(s);

async function refusal(token: string | Uint8Array, o: VerifyOptions = opts): Promise<{ code: RefusalCode; message: string }> {
  try {
    await verifyCommand(typeof token === "string" ? bytes(token) : token, o, NOW);
  } catch (e) {
    assert.ok(isFleetRefusal(e), `a FleetRefusal, got ${String(e)}`);
    return { code: e.code, message: e.message };
  }
  assert.fail("the command was accepted; it must be refused");
}

describe("fleet command verification: every rule, each with its stable code", () => {
  test("a valid command: refresh of names, revoke of all, aud as a list, the fleet audience", async () => {
    const c = claims("gw-17", NOW_S);
    const cmd = await verifyCommand(bytes(await joseToken(key, c)), opts, NOW);
    assert.deepEqual(cmd, { jti: c.jti, kid: "fleet-ops", cmd: "refresh", target: { names: ["demo/api-token"] }, iat: NOW_S, exp: NOW_S + 3600 });
    const all = await verifyCommand(bytes(await joseToken(key, claims("fleet", NOW_S, { cmd: "revoke", names: undefined, all: true }))), opts, NOW);
    assert.deepEqual([all.cmd, all.target], ["revoke", { all: true }]);
    const list = await verifyCommand(bytes(await joseToken(key, claims(["gw-3", "gw-17"] as unknown as string, NOW_S, { names: ["a", "b", "a"] }))), opts, NOW);
    assert.deepEqual(list.target, { names: ["a", "b"] }, "duplicates are dropped");
    // Whitespace around the token (mosquitto_pub -m "$(...)" adds none, a file may end in a newline) is fine.
    await verifyCommand(bytes(`${await joseToken(key, claims("gw-17", NOW_S))}\n`), opts, NOW);
  });

  const cases: [string, () => Promise<string | Uint8Array>, RefusalCode, RegExp][] = [
    ["an oversized payload (1 MiB)", async () => new Uint8Array(1024 * 1024).fill(0x41), "too_large", /1048576 bytes; a command is at most 64 KiB/],
    ["one byte over the limit", async () => new Uint8Array(MAX_COMMAND_BYTES + 1).fill(0x41), "too_large", /at most 64 KiB/],
    [
      "plain JSON, unsigned",
      async () => JSON.stringify({ cmd: "revoke", all: true }),
      "not_jwt",
      /JSON, not a signed token: an unsigned command is never carried out/,
    ],
    ["garbage", async () => "hello world", "not_jwt", /not a JWS compact token/],
    ["two parts", async () => "eyJhbGciOiJFZERTQSJ9.eyJ9", "not_jwt", /not a JWS compact token/],
    ["a header that is not JSON", async () => `${Buffer.from("nope").toString("base64url")}.e30.AAAA`, "not_jwt", /header is not JSON/],
    ["a header that is a JSON list", async () => `${Buffer.from("[1]").toString("base64url")}.e30.AAAA`, "not_jwt", /header is not a JSON object/],
    [
      "alg none",
      async () => rawToken({ alg: "none", kid: key.kid }, claims("gw-17", NOW_S)),
      "bad_alg",
      /alg "none" is not accepted.*unsigned command is never carried out/,
    ],
    [
      "alg HS256 (HMAC with the public key as secret)",
      async () =>
        rawToken({ alg: "HS256", kid: key.kid }, claims("gw-17", NOW_S), undefined, crypto.createHmac("sha256", key.publicPem).update("x").digest("base64url")),
      "bad_alg",
      /alg "HS256"/,
    ],
    ["alg RS256", async () => rawToken({ alg: "RS256", kid: key.kid }, claims("gw-17", NOW_S), key.privateKey), "bad_alg", /alg "RS256"/],
    ["alg missing", async () => rawToken({ kid: key.kid }, claims("gw-17", NOW_S), key.privateKey), "bad_alg", /alg undefined/],
    ["no kid", async () => rawToken({ alg: "EdDSA" }, claims("gw-17", NOW_S), key.privateKey), "unknown_kid", /no kid/],
    [
      "an unknown kid",
      async () => joseToken(testKey("someone"), claims("gw-17", NOW_S)),
      "unknown_kid",
      /kid "someone" names no key in mqtt.commands.trust \(known: fleet-ops\)/,
    ],
    [
      "a bad signature (another key under the trusted name)",
      async () => joseToken(other, claims("gw-17", NOW_S)),
      "bad_signature",
      /does not verify with trust key "fleet-ops"/,
    ],
    [
      "a tampered payload",
      async () => {
        const t = (await joseToken(key, claims("gw-17", NOW_S))).split(".");
        return `${t[0]}.${Buffer.from(JSON.stringify(claims("gw-17", NOW_S, { cmd: "revoke", names: undefined, all: true }))).toString("base64url")}.${t[2]}`;
      },
      "bad_signature",
      /does not verify/,
    ],
    ["an empty signature", async () => rawToken({ alg: "EdDSA", kid: key.kid }, claims("gw-17", NOW_S), undefined, ""), "bad_signature", /does not verify/],
    [
      "an unknown crit header",
      async () => rawToken({ alg: "EdDSA", kid: key.kid, crit: ["x-policy"], "x-policy": 1 }, claims("gw-17", NOW_S), key.privateKey),
      "not_jwt",
      /a JWS feature this gateway does not support \(a crit or b64 header\)/,
    ],
    ["a signed payload that is not JSON", async () => rawToken({ alg: "EdDSA", kid: key.kid }, "not json", key.privateKey), "not_jwt", /payload is not JSON/],
    ["aud missing", async () => joseToken(key, claims("gw-17", NOW_S, { aud: undefined })), "bad_claims", /aud is missing/],
    ["aud for another gateway", async () => joseToken(key, claims("gw-18", NOW_S)), "wrong_audience", /for "gw-18", not this device \("gw-17"\) or fleet/],
    [
      "aud a list without this gateway",
      async () => joseToken(key, claims(["gw-1", "gw-2", "gw-3", "gw-4"] as unknown as string, NOW_S)),
      "wrong_audience",
      /"gw-1", "gw-2", "gw-3" and 1 more/,
    ],
    ["jti missing", async () => joseToken(key, claims("gw-17", NOW_S, { jti: undefined })), "bad_claims", /jti must be a string/],
    ["jti too long", async () => joseToken(key, claims("gw-17", NOW_S, { jti: "j".repeat(129) })), "bad_claims", /1-128 characters/],
    ["exp missing", async () => joseToken(key, claims("gw-17", NOW_S, { exp: undefined })), "no_expiry", /exp is missing: every command must expire/],
    ["exp not a number", async () => joseToken(key, claims("gw-17", NOW_S, { exp: "tomorrow" })), "bad_claims", /exp must be a number/],
    [
      "expired",
      async () => joseToken(key, claims("gw-17", NOW_S - 7200, { exp: NOW_S - 60 })),
      "expired",
      /expired at 2026-11-20T11:59:00Z, 60 s ago by this gateway's clock \(2026-11-20T12:00:00Z\)/,
    ],
    ["exp exactly now", async () => joseToken(key, claims("gw-17", NOW_S - 60, { exp: NOW_S })), "expired", /expired/],
    ["iat missing", async () => joseToken(key, claims("gw-17", NOW_S, { iat: undefined })), "bad_claims", /iat is missing/],
    [
      "iat more than 5 minutes in the future",
      async () => joseToken(key, claims("gw-17", NOW_S + 301, { exp: NOW_S + 3600 })),
      "not_yet_valid",
      /ahead of this gateway's clock.*at most 5 minutes of skew.*NTP/,
    ],
    ["nbf more than 5 minutes in the future", async () => joseToken(key, claims("gw-17", NOW_S, { nbf: NOW_S + 600 })), "not_yet_valid", /nbf is/],
    ["exp before iat", async () => joseToken(key, claims("gw-17", NOW_S + 200, { exp: NOW_S + 100 })), "bad_claims", /exp is before iat/],
    [
      "a lifetime past max_lifetime",
      async () => joseToken(key, claims("gw-17", NOW_S, { exp: NOW_S + 31 * DAY })),
      "lifetime_too_long",
      /valid for 31 d, longer than mqtt.commands.max_lifetime \(30 d\)/,
    ],
    ["an unknown cmd", async () => joseToken(key, claims("gw-17", NOW_S, { cmd: "reboot" })), "unknown_cmd", /cmd "reboot" is not one of refresh, revoke/],
    ["no cmd", async () => joseToken(key, claims("gw-17", NOW_S, { cmd: undefined })), "unknown_cmd", /cmd undefined/],
    ["neither names nor all", async () => joseToken(key, claims("gw-17", NOW_S, { names: undefined })), "bad_names", /names no secrets/],
    ["names and all", async () => joseToken(key, claims("gw-17", NOW_S, { all: true })), "bad_names", /exclude each other/],
    ["all: false", async () => joseToken(key, claims("gw-17", NOW_S, { names: undefined, all: false })), "bad_names", /all must be true/],
    ["an empty names list", async () => joseToken(key, claims("gw-17", NOW_S, { names: [] })), "bad_names", /non-empty list/],
    [
      "a name with ..",
      async () => joseToken(key, claims("gw-17", NOW_S, { names: ["ok", "demo/../etc"] })),
      "bad_names",
      /names\[1\] "demo\/\.\.\/etc" must not contain/,
    ],
    ["an upper-case name", async () => joseToken(key, claims("gw-17", NOW_S, { names: ["Demo"] })), "bad_names", /names\[0\] "Demo" must match/],
    ["a name that is not a string", async () => joseToken(key, claims("gw-17", NOW_S, { names: [7] })), "bad_names", /names\[0\] is not a string/],
    [
      "too many names",
      async () => joseToken(key, claims("gw-17", NOW_S, { names: Array.from({ length: 1001 }, (_, i) => `n${i}`) })),
      "bad_names",
      /at most 1000/,
    ],
  ];
  for (const [what, make, code, message] of cases) {
    test(`${what}: ${code}`, async () => {
      const r = await refusal(await make());
      assert.equal(r.code, code, r.message);
      assert.match(r.message, message);
    });
  }

  test("a trust key that could not be loaded is named with its reason", async () => {
    const r = await refusal(await joseToken(testKey("old-ops"), claims("gw-17", NOW_S)), {
      ...opts,
      keyProblems: new Map([["old-ops", "cannot read /etc/sealcache/old-ops.pub (ENOENT)"]]),
    });
    assert.equal(r.code, "unknown_kid");
    assert.match(r.message, /trust key "old-ops" could not be loaded: cannot read \/etc\/sealcache\/old-ops.pub \(ENOENT\)/);
    const none = await refusal(await joseToken(key, claims("gw-17", NOW_S)), { ...opts, keys: new Map() });
    assert.match(none.message, /\(none is configured\)/);
  });

  test("messages quote at most a short prefix of what the command carried", async () => {
    const long = "x".repeat(10_000);
    for (const token of [
      await joseToken(key, claims(long, NOW_S)),
      await joseToken(key, claims("gw-17", NOW_S, { cmd: long })),
      await joseToken(key, claims("gw-17", NOW_S, { names: [long] })),
      await joseToken(testKey(long), claims("gw-17", NOW_S)),
      rawToken({ alg: long }, {}),
    ]) {
      const r = await refusal(token);
      assert.ok(r.message.length < 400, `${r.code}: ${r.message.length} characters`);
      assert.ok(!r.message.includes("x".repeat(61)), r.message);
    }
  });

  test("peekClaims reads the claimed kid and jti without trusting them, clipped; nothing from non-tokens or big messages", async () => {
    const c = claims("gw-17", NOW_S, { jti: "j-1" });
    assert.deepEqual(peekClaims(bytes(await joseToken(testKey("unknown"), c))), { kid: "unknown", jti: "j-1" });
    assert.deepEqual(peekClaims(bytes("not a token")), {});
    assert.deepEqual(peekClaims(new Uint8Array(1024 * 1024)), {});
    assert.match(peekClaims(bytes(rawToken({ alg: "none" }, { jti: "y".repeat(500) }))).jti!, /^y{60}… \(500 bytes\)$/);
  });
});

describe("fleet sign and trust keys", () => {
  test("a key pair from generateSigningKey signs commands the gateway accepts, with the claims asked for", async () => {
    const pair = generateSigningKey();
    const dir = fs.mkdtempSync("/tmp/sc-trust-");
    try {
      fs.writeFileSync(path.join(dir, "ops.pub"), pair.publicPem);
      const trust = loadTrust({ ops: path.join(dir, "ops.pub") });
      assert.deepEqual([...trust.problems], []);
      const signed = await signCommand({
        key: parseSigningKey(pair.privatePem, "ops.key"),
        kid: "ops",
        aud: "fleet",
        cmd: "revoke",
        target: { names: ["db/password"] },
        ttlMs: 7 * DAY * 1000,
        nowMs: NOW,
      });
      const cmd = await verifyCommand(bytes(signed.token), { ...opts, keys: trust.keys }, NOW + 1000);
      assert.deepEqual(cmd, { jti: signed.jti, kid: "ops", cmd: "revoke", target: { names: ["db/password"] }, iat: NOW_S, exp: NOW_S + 7 * DAY });
      assert.match(signed.jti, /^[0-9a-f-]{36}$/);
    } finally {
      fs.rmSync(dir, { recursive: true });
    }
  });

  test("loadTrust reports each unusable key and keeps the others: missing, a private key, RSA, not PEM", (t) => {
    const dir = tmpDir(t);
    const write = (f: string, s: string) => (fs.writeFileSync(path.join(dir, f), s), path.join(dir, f));
    const rsa = crypto.generateKeyPairSync("rsa", { modulusLength: 1024 }).publicKey.export({ type: "spki", format: "pem" }).toString();
    const trust = loadTrust({
      good: write("good.pub", key.publicPem),
      missing: path.join(dir, "missing.pub"),
      private: write("private.key", key.privatePem),
      rsa: write("rsa.pub", rsa),
      junk: write("junk.pub", "hello\n"),
    });
    assert.deepEqual([...trust.keys.keys()], ["good"]);
    assert.match(trust.problems.get("missing")!, /cannot read .*missing\.pub \(ENOENT\)/);
    assert.match(trust.problems.get("private")!, /holds a private key; commands.trust takes the public key/);
    assert.match(trust.problems.get("rsa")!, /is a rsa key; fleet commands are signed with Ed25519/);
    assert.match(trust.problems.get("junk")!, /is not a PEM public key/);
  });

  test("parseSigningKey refuses what is not an Ed25519 private key", () => {
    assert.throws(() => parseSigningKey(key.publicPem, "ops.pub"), /ops.pub is not a PEM private key/);
    const ec = crypto.generateKeyPairSync("ec", { namedCurve: "P-256" }).privateKey.export({ type: "pkcs8", format: "pem" }).toString();
    assert.throws(() => parseSigningKey(ec, "ec.key"), /ec.key is a ec key; fleet commands are signed with Ed25519/);
  });
});
