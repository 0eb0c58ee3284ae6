// Every error code of the socket API (README "Socket API"), against a real daemon:
// the HTTP status, the `{error, message}` body, the headers each code promises,
// and that no message or header ever carries a secret value.
import assert from "node:assert/strict";
import crypto from "node:crypto";
import fs from "node:fs";
import path from "node:path";
import { test } from "node:test";
import { demoConfig, eventually, launch } from "../../support/daemon.js";
import { req } from "../../support/http.js";
import { planted } from "../../support/planted.js";
import { tmpDir } from "../../support/tmp.js";
import { API_TOKEN, DB_PASSWORD, KAFKA_PASSWORD, assertApiError, assertRawError, exchange } from "./api-helpers.js";
import { LOCK_FILE } from "../../../src/daemon/data-dir-lock.js";

const ME = process.getuid?.() ?? 0;

test("not_found 404: an unconfigured secret name, an unknown endpoint, a refresh of an unknown name", async (t) => {
  const dir = tmpDir(t);
  const d = await launch(t, dir, demoConfig(dir), { waitFor: "synced" });
  for (const p of ["/v1/secrets/demo/nope", "/v1/secrets/nope", "/v1/secrets/demo/api-token/extra", "/v1/secrets/demo/nope?format=raw"]) {
    const j = assertApiError(await d.get(p), 404, "not_found");
    assert.match(j.message, /no secret named/, p);
  }
  for (const p of ["/v1/nothing", "/v2/secrets/demo/api-token", "/", "/v1", "/v1/health/", "/metrics/x", "/V1/HEALTH"]) {
    const j = assertApiError(await d.get(p), 404, "not_found");
    assert.match(j.message, /no endpoint/, p);
  }
  assertApiError(await d.get("/v1/refresh?name=demo/nope", { method: "POST" }), 404, "not_found");
  // A real name still answers: the 404s above were about the names, not the daemon.
  assert.equal((await d.get("/v1/secrets/demo/api-token?format=raw")).body, API_TOKEN);
});

test("forbidden 403: policy decides reads (first match wins), refresh needs admin, list shows only what may be read", async (t) => {
  const dir = tmpDir(t);
  const policy = [
    // Not us: must not be the rule that applies.
    { match: { uid: ME + 4242 }, allow: ["**"], admin: true },
    { match: { uid: ME }, allow: ["demo/api-token"] },
    // Never reached for us: the first matching rule wins.
    { match: { uid: ME }, allow: ["**"], admin: true },
  ];
  const d = await launch(t, dir, demoConfig(dir, { policy }), { waitFor: "synced" });

  const ok = await d.get("/v1/secrets/demo/api-token");
  assert.equal(ok.status, 200);
  assert.equal(ok.json().value, API_TOKEN);

  for (const p of ["/v1/secrets/demo/db-password", "/v1/secrets/demo/db-password?format=raw", "/v1/secrets/demo/kafka-password"]) {
    const j = assertApiError(await d.get(p), 403, "forbidden");
    assert.match(j.message, new RegExp(`uid ${ME}`), "the denial names the caller");
  }
  // Existence is not disclosed to a caller who may not read the name.
  assertApiError(await d.get("/v1/secrets/demo/not-configured"), 403, "forbidden");

  // refresh needs a rule with admin: true
  for (const p of ["/v1/refresh", "/v1/refresh?name=demo/api-token"]) {
    const j = assertApiError(await d.get(p, { method: "POST" }), 403, "forbidden");
    assert.match(j.message, /admin/);
  }

  for (const p of ["/v1/secrets", "/v1/secrets?prefix=demo/"]) {
    const list = await d.get(p);
    assert.equal(list.status, 200);
    assert.deepEqual(
      list.json().secrets.map((s: { name: string }) => s.name),
      ["demo/api-token"],
      `${p} lists only what the caller may read`,
    );
    for (const v of [API_TOKEN, DB_PASSWORD, KAFKA_PASSWORD]) assert.ok(!list.body.includes(v), "a listing never holds values");
  }
  await d.waitForLog(/request denied/);
});

test("not_synced 503 with Retry-After: a configured secret whose file does not exist yet; after the file appears and a refresh, 200", async (t) => {
  const dir = tmpDir(t);
  const cfg = demoConfig(dir);
  (cfg.secrets as Record<string, unknown>)["demo/later"] = { provider: "demo", path: "later-token" };
  const later = planted("later");
  const d = await launch(t, dir, cfg, { waitFor: "socket", extraSecrets: [later] });
  await eventually(async () => (await d.get("/v1/secrets/demo/api-token")).status === 200, 10_000, "demo secrets synced");
  // The first sync attempt has been made and failed for this one secret.
  await eventually(async () => (await d.get("/v1/health")).json().secrets?.errors === 1, 10_000, "the missing file recorded as an error");

  for (const p of ["/v1/secrets/demo/later", "/v1/secrets/demo/later?format=raw"]) {
    const r = await d.get(p);
    const j = assertApiError(r, 503, "not_synced", [later]);
    assert.match(String(r.headers["retry-after"]), /^[1-9]\d*$/, "Retry-After is a positive number of seconds");
    assert.match(j.message, /not been fetched/);
    assert.match(j.message, /does not exist/, "the message says why the last attempt failed");
  }
  assertApiError(await d.get("/v1/secrets/demo/later?format=xml"), 400, "bad_request");
  const listed = (await d.get("/v1/secrets?prefix=demo/later")).json().secrets;
  assert.equal(listed.length, 1);
  assert.equal(listed[0].state, "not_synced");

  fs.writeFileSync(path.join(dir, "secrets", "later-token"), later + "\n", { mode: 0o600 });
  const refresh = await d.get("/v1/refresh?name=demo/later", { method: "POST" });
  assert.equal(refresh.status, 202);
  assert.deepEqual(refresh.json().queued, ["demo/later"]);
  const r = await eventually(
    async () => {
      const x = await d.get("/v1/secrets/demo/later");
      return x.status === 200 ? x : undefined;
    },
    10_000,
    "demo/later served after the refresh",
  );
  assert.equal(r.json().value, later);
  assert.equal(r.json().stale, false);
  assert.equal(r.headers["retry-after"], undefined);
});

test("expired 410: past sync.max_stale while the provider fails; stale:true with Sealcache-Stale before that; back to fresh when the provider returns", async (t) => {
  const dir = tmpDir(t);
  const maxStaleS = 4;
  const cfg = demoConfig(dir, { sync: { interval: "30s", backoff_min: "200ms", backoff_max: "1s", max_stale: `${maxStaleS}s` } });
  const d = await launch(t, dir, cfg, { waitFor: "synced" });
  // Make the last good fetch as recent as possible, then take the folder away.
  const before = (await d.get("/v1/secrets/demo/api-token")).json().fetched_at;
  assert.equal((await d.get("/v1/refresh", { method: "POST" })).status, 202);
  await eventually(async () => (await d.get("/v1/secrets/demo/api-token")).json().fetched_at !== before, 5_000, "a refreshed fetched_at");
  const secrets = path.join(dir, "secrets");
  fs.renameSync(secrets, secrets + ".away");
  assert.equal((await d.get("/v1/refresh", { method: "POST" })).status, 202);

  const stale = await eventually(
    async () => {
      const r = await d.get("/v1/secrets/demo/api-token");
      return r.status === 200 && r.json().stale === true ? r : undefined;
    },
    5_000,
    "the value served marked stale",
  );
  assert.equal(stale.json().value, API_TOKEN, "the last good value is served");
  assert.equal(stale.headers["sealcache-stale"], "true");
  assert.match(String(stale.headers.age), /^\d+$/);
  assert.ok(stale.json().age_s <= maxStaleS);

  const expired = await eventually(
    async () => {
      const r = await d.get("/v1/secrets/demo/api-token");
      return r.status === 410 ? r : undefined;
    },
    (maxStaleS + 6) * 1000,
    "410 once past max_stale",
  );
  const j = assertApiError(expired, 410, "expired");
  assert.match(j.message, /max_stale/);
  assertApiError(await d.get("/v1/secrets/demo/db-password?format=raw"), 410, "expired");
  assertApiError(await d.get("/v1/secrets/demo/kafka-password"), 410, "expired");
  const list = (await d.get("/v1/secrets")).json().secrets as { state: string }[];
  assert.deepEqual(
    list.map((s) => s.state),
    ["expired", "expired", "expired"],
  );
  const health = await d.get("/v1/health");
  assert.equal(health.status, 200, "an expired value is degraded service, not a sealed daemon");
  assert.equal(health.json().secrets.expired, 3);

  // Nothing was lost: with the folder back, a refresh serves fresh values again.
  fs.renameSync(secrets + ".away", secrets);
  assert.equal((await d.get("/v1/refresh", { method: "POST" })).status, 202);
  const fresh = await eventually(
    async () => {
      const r = await d.get("/v1/secrets/demo/api-token");
      return r.status === 200 && r.json().stale === false ? r : undefined;
    },
    10_000,
    "fresh again after the provider returned",
  );
  assert.equal(fresh.json().value, API_TOKEN);
  assert.equal(fresh.headers["sealcache-stale"], "false");
});

test("bad_request 400: bad names, bad percent-encoding, bad format; a wrong method is 405 bad_request with Allow", async (t) => {
  const dir = tmpDir(t);
  const d = await launch(t, dir, demoConfig(dir), { waitFor: "synced" });
  const bad = [
    "/v1/secrets/Demo/API-Token", // upper case
    "/v1/secrets/demo/Api-token",
    "/v1/secrets/demo/../demo/api-token", // '..' segment: must not resolve to demo/api-token
    "/v1/secrets/other/../demo/api-token",
    "/v1/secrets/demo/%2e%2e/demo/api-token",
    "/v1/secrets/demo/%2E%2E/demo/api-token",
    "/v1/secrets/demo%2f..%2fdemo%2fapi-token",
    "/v1/secrets/demo/./api-token",
    "/v1/secrets/demo//api-token", // empty segment
    "/v1/secrets/demo/api-token/",
    "/v1/secrets/..",
    "/v1/secrets/",
    "/v1/secrets/-demo",
    "/v1/secrets/demo/api%20token",
    "/v1/secrets/demo/api-token%00",
    "/v1/secrets/demo%5capi-token",
    "/v1/secrets/demo/" + "a".repeat(252), // 257 bytes
    "/v1/secrets/demo/%zz", // bad percent-encoding
    "/v1/secrets/demo/%E0%A4%A",
    "/v1/secrets/%",
    "/v1/secrets/demo/api-token?format=xml", // bad format
    "/v1/secrets/demo/api-token?format=RAW",
    "/v1/secrets/demo/api-token?format=",
    "/v1/secrets?prefix=" + "a".repeat(257),
    "/v1/refresh?name=Demo/API",
  ];
  for (const p of bad) {
    const r = await d.get(p, { method: p.startsWith("/v1/refresh") ? "POST" : "GET" });
    assertApiError(r, 400, "bad_request");
  }
  // A bad format is a bad request whatever the secret's state (refused before any lookup).
  assertApiError(await d.get("/v1/secrets/demo/nope?format=xml"), 400, "bad_request");
  // The boundary: a valid 256-byte name is a name (not configured), not a bad request.
  assertApiError(await d.get("/v1/secrets/demo/" + "a".repeat(251)), 404, "not_found");

  const wrongMethod: [string, string, string][] = [
    ["POST", "/v1/secrets/demo/api-token", "GET, PUT"],
    ["DELETE", "/v1/secrets/demo/api-token", "GET, PUT"],
    ["PUT", "/v1/secrets", "GET"],
    ["GET", "/v1/refresh", "POST"],
    ["DELETE", "/v1/health", "GET"],
    ["POST", "/metrics", "GET"],
    ["POST", "/v1/watch?names=demo/api-token", "GET"],
  ];
  for (const [method, p, allow] of wrongMethod) {
    const r = await req(d.socket, p, { method });
    const j = assertApiError(r, 405, "bad_request");
    assert.equal(r.headers.allow, allow, `${method} ${p} names the allowed method`);
    assert.match(j.message, new RegExp(`use ${allow.replace(", ", " or ")}`));
  }
  assert.equal((await d.get("/v1/secrets/demo/api-token?format=raw")).body, API_TOKEN);
});

test("CONNECT is 405 bad_request with Allow and the JSON body, whatever the target form; Upgrade requests are answered as plain requests", async (t) => {
  const dir = tmpDir(t);
  const d = await launch(t, dir, demoConfig(dir), { waitFor: "synced" });
  const connects: [target: string, allow: string][] = [
    ["host:443", "GET, POST"], // authority-form, what a proxy client sends
    ["sealcache:80", "GET, POST"],
    ["/v1/secrets/demo/api-token", "GET, PUT"],
    ["/v1/refresh", "POST"],
    ["http://sealcache/v1/health", "GET"], // absolute-form
    ["*", "GET, POST"],
  ];
  for (const [target, allow] of connects) {
    const x = await exchange(d.socket, `CONNECT ${target} HTTP/1.1\r\nHost: ${target}\r\n\r\n`, { untilClose: true, timeoutMs: 3_000 });
    assert.ok(!x.timedOut, `CONNECT ${target}: answered and closed, not left hanging: ${JSON.stringify(x.raw.slice(0, 200))}`);
    assert.equal(x.responses.length, 1, `CONNECT ${target}: one answer: ${JSON.stringify(x.raw.slice(0, 300))}`);
    const r = x.responses[0]!;
    assertRawError(r, 405, "bad_request");
    assert.equal(r.headers.allow, allow, `CONNECT ${target}: Allow`);
    assert.equal(r.headers.connection, "close");
    assert.match(JSON.parse(r.body).message, new RegExp(`^CONNECT is not allowed on .*use ${allow}`));
    assert.ok(x.closed, "the connection is closed after the answer");
  }
  // Bytes sent after the CONNECT (a client starting its tunnel) are not read as a request.
  const tunnel = await exchange(
    d.socket,
    "CONNECT host:443 HTTP/1.1\r\nHost: host:443\r\n\r\nGET /v1/secrets/demo/api-token?format=raw HTTP/1.1\r\nHost: x\r\n\r\n",
    {
      untilClose: true,
      timeoutMs: 3_000,
    },
  );
  assert.deepEqual(
    tunnel.responses.map((r) => r.status),
    [405],
  );
  assert.ok(!tunnel.raw.includes(API_TOKEN));
  // The metrics count CONNECT like any answered request; an audited route is audited.
  assert.match((await d.get("/metrics")).body, /^sealcache_http_requests_total\{route="secret",code="405"\} [1-9]\d*$/m);
  const rows = (await d.get("/v1/audit?name=demo/api-token&since=1m")).json<{ entries: { status: number; code: string }[] }>().entries;
  assert.ok(
    rows.some((r) => r.status === 405 && r.code === "bad_request"),
    JSON.stringify(rows),
  );

  // node:http treats an Upgrade it has no listener for as a plain request: answered, never switched.
  for (const upgrade of ["websocket", "h2c", "TLS/1.2"]) {
    const x = await exchange(d.socket, `GET /v1/secrets/demo/api-token?format=raw HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: ${upgrade}\r\n\r\n`, {
      timeoutMs: 3_000,
    });
    assert.equal(x.responses[0]?.status, 200, `Upgrade: ${upgrade}: ${JSON.stringify(x.raw.slice(0, 200))}`);
    assert.equal(x.responses[0]!.body, API_TOKEN);
    assert.equal(x.responses[0]!.headers.upgrade, undefined);
  }
  const bad = await exchange(d.socket, "POST /v1/health HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n", { timeoutMs: 3_000 });
  assertRawError(bad.responses[0], 405, "bad_request");
  assert.equal((await d.get("/v1/secrets/demo/api-token?format=raw")).body, API_TOKEN, "the daemon serves on");
});

test("sealed 503: a host key opened to others is refused at restart; the cache file is untouched; fixing the mode unseals", async (t) => {
  const dir = tmpDir(t);
  const cfg = demoConfig(dir);
  const data = path.join(dir, "data");
  const first = await launch(t, dir, cfg, { waitFor: "synced" });
  assert.equal((await first.get("/v1/secrets/demo/api-token?format=raw")).body, API_TOKEN);
  assert.equal(await first.stop(), 0);

  const hostKey = path.join(data, "host.key");
  fs.chmodSync(hostKey, 0o644);
  const snapshot = () =>
    Object.fromEntries(
      fs
        .readdirSync(data)
        .filter((f) => f !== LOCK_FILE) // it holds each holder's pid
        .sort()
        .map((f) => {
          const p = path.join(data, f);
          const st = fs.statSync(p);
          return [f, { mtimeMs: st.mtimeMs, size: st.size, mode: st.mode, sha256: crypto.createHash("sha256").update(fs.readFileSync(p)).digest("hex") }];
        }),
    );
  const before = snapshot();
  assert.ok("cache.db" in before, "the first run left a cache");

  const d = await launch(t, dir, cfg, { waitFor: "socket" });
  for (const p of ["/v1/secrets/demo/api-token", "/v1/secrets/demo/api-token?format=raw", "/v1/secrets", "/v1/watch?names=demo/api-token"]) {
    const r = await d.get(p);
    const j = assertApiError(r, 503, "sealed");
    assert.match(String(r.headers["retry-after"]), /^[1-9]\d*$/, `${p}: Retry-After`);
    assert.ok(j.message.includes(hostKey), `${p}: the message names the host key file`);
  }
  assertApiError(await d.get("/v1/refresh", { method: "POST" }), 503, "sealed");

  const h = await d.get("/v1/health");
  assert.equal(h.status, 503);
  const hj = h.json();
  assert.equal(hj.status, "sealed");
  assert.equal(hj.sealed, true);
  assert.ok(String(hj.sealed_reason).includes(hostKey), `reason names the file: ${hj.sealed_reason}`);
  assert.match(hj.sealed_reason, /0644/, "reason names the mode");
  assert.equal(hj.seal.type, "host");
  assert.equal(hj.seal.ok, false);

  const m = await d.get("/metrics");
  assert.equal(m.status, 200, "metrics stay available while sealed");
  assert.match(m.body, /^sealcache_sealed 1$/m);

  assert.deepEqual(snapshot(), before, "nothing in data_dir was modified, created or removed while sealed");

  // The daemon retries unsealing; fixing the mode brings the same cache back.
  fs.chmodSync(hostKey, 0o600);
  const r = await eventually(
    async () => {
      const x = await d.get("/v1/secrets/demo/api-token?format=raw");
      return x.status === 200 ? x : undefined;
    },
    20_000,
    "unsealed after the mode was fixed",
  );
  assert.equal(r.body, API_TOKEN);
  assert.equal((await d.get("/v1/health")).status, 200);
});
