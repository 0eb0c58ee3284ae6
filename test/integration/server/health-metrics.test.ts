// GET /v1/health, GET /metrics and GET /v1/secrets?prefix= against real daemons:
// the fields each promises, the fleet channel's state, and that none of them
// ever carries a secret value (nor, for metrics, a secret name unless configured).
import assert from "node:assert/strict";
import fs from "node:fs";
import path from "node:path";
import { test } from "node:test";
import { demoConfig, eventually, launch, type RunningDaemon } from "../../support/daemon.js";
import { assertNoLeaks } from "../../support/planted.js";
import { tmpDir } from "../../support/tmp.js";
import { API_TOKEN } from "./api-helpers.js";

const DEMO_NAMES = ["demo/api-token", "demo/db-password", "demo/kafka-password"];
const LIST_FIELDS = ["age_s", "error", "fetched_at", "kind", "members", "name", "parent", "provider", "source_version", "stale", "state", "version"];

function recent(iso: unknown, withinMs = 120_000): boolean {
  const t = Date.parse(String(iso));
  return Number.isFinite(t) && Math.abs(Date.now() - t) < withinMs;
}

/** Parses Prometheus text format strictly: every sample belongs to a family declared with HELP and TYPE. */
function parseMetrics(text: string): Map<string, { type: string; samples: Map<string, number> }> {
  assert.ok(text.endsWith("\n"), "exposition ends with a newline");
  const families = new Map<string, { type: string; samples: Map<string, number> }>();
  let help: string | undefined;
  for (const line of text.slice(0, -1).split("\n")) {
    let m: RegExpExecArray | null;
    if ((m = /^# HELP ([a-zA-Z_:][a-zA-Z0-9_:]*) \S.*$/.exec(line))) {
      help = m[1];
    } else if ((m = /^# TYPE ([a-zA-Z_:][a-zA-Z0-9_:]*) (counter|gauge|histogram|summary|untyped)$/.exec(line))) {
      assert.equal(m[1], help, `TYPE for ${m[1]} follows its HELP`);
      assert.ok(!families.has(m[1]!), `family ${m[1]} declared once`);
      families.set(m[1]!, { type: m[2]!, samples: new Map() });
    } else if (
      (m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(?:[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\n]|\\.)*",?)*\})? (-?(?:\d+(?:\.\d+)?(?:e[+-]?\d+)?|NaN|\+Inf|-Inf))$/.exec(line))
    ) {
      const f = families.get(m[1]!);
      assert.ok(f, `sample ${m[1]} has a declared family`);
      const labels = m[2] ?? "";
      assert.ok(!f.samples.has(labels), `no duplicate sample ${line}`);
      f.samples.set(labels, Number(m[3]));
    } else {
      assert.fail(`not Prometheus text format: ${JSON.stringify(line)}`);
    }
  }
  return families;
}

async function waitDemoSynced(d: RunningDaemon): Promise<void> {
  await eventually(async () => (await d.get("/v1/health")).json().secrets?.ok === 3, 10_000, "the demo secrets synced");
}

test("/v1/health of a synced daemon: status ok, counts, provider last_success, host seal with its warning", async (t) => {
  const dir = tmpDir(t);
  const d = await launch(t, dir, demoConfig(dir), { waitFor: "synced" });
  const r = await d.get("/v1/health");
  assert.equal(r.status, 200);
  assert.match(String(r.headers["content-type"]), /^application\/json/);
  assertNoLeaks(r.body, "health body");
  const h = r.json();
  assert.equal(h.status, "ok");
  assert.equal(h.sealed, false);
  assert.equal(h.online, true);
  assert.ok(Number.isSafeInteger(h.revision) && h.revision >= 1);
  assert.deepEqual(h.secrets, { total: 3, ok: 3, stale: 0, expired: 0, not_synced: 0, revoked: 0, errors: 0, hierarchies: 0 });
  assert.equal(h.providers.length, 1);
  const p = h.providers[0];
  assert.equal(p.name, "demo");
  assert.equal(p.type, "file");
  assert.equal(p.active, true);
  assert.equal(p.online, true);
  assert.ok(recent(p.last_success), `last_success is a recent timestamp: ${p.last_success}`);
  assert.equal(p.last_error, null);
  assert.equal(p.failures, 0);
  assert.equal(h.seal.type, "host");
  assert.equal(h.seal.ok, true);
  assert.ok(String(h.seal.detail).includes(path.join(dir, "data", "host.key")), "seal detail names the key file");
  assert.ok(
    h.seal.warnings.some((w: string) => /tpm2/.test(w) && /disk/.test(w)),
    `the host seal carries its warning: ${JSON.stringify(h.seal.warnings)}`,
  );
  assert.deepEqual(h.quarantined, []);
  assert.equal(typeof h.version, "string");
  assert.ok(Number.isInteger(h.uptime_s) && h.uptime_s >= 0);
  assert.equal(h.sealed_reason, undefined, "no sealed_reason while unsealed");
});

test("/v1/health reports the fleet channel's state; a broker that cannot be reached degrades nothing and the daemon serves", async (t) => {
  const dir = tmpDir(t);
  // Nothing listens there: the channel backs off, the cache is served as ever.
  const cfg = { ...demoConfig(dir), mqtt: { url: "mqtt://127.0.0.1:1", device_id: "gw-17" } };
  const d = await launch(t, dir, cfg, { waitFor: "socket" });
  await waitDemoSynced(d);
  const h = await eventually(
    async () => {
      const x = (await d.get("/v1/health")).json();
      return x.mqtt?.state === "backoff" && x;
    },
    10_000,
    "the mqtt part in backoff",
  );
  assert.equal(h.status, "ok", "a broker down is not a degraded cache");
  assert.equal(h.mqtt.broker, "mqtt://127.0.0.1:1");
  assert.equal(h.mqtt.client_id, "gw-17");
  assert.match(String(h.mqtt.last_error), /ECONNREFUSED|refused/i);
  assert.equal((await d.get("/v1/secrets/demo/api-token")).status, 200);
});

test("/v1/health while the provider is down: 200 degraded, offline, last_error, stale counts, last_success kept", async (t) => {
  const dir = tmpDir(t);
  const d = await launch(t, dir, demoConfig(dir), { waitFor: "synced" });
  const before = (await d.get("/v1/health")).json().providers[0].last_success;
  const secrets = path.join(dir, "secrets");
  fs.renameSync(secrets, secrets + ".away");
  assert.equal((await d.get("/v1/refresh", { method: "POST" })).status, 202);
  const r = await eventually(
    async () => {
      const x = await d.get("/v1/health");
      return x.json().online === false ? x : undefined;
    },
    10_000,
    "the provider reported offline",
  );
  assert.equal(r.status, 200);
  const h = r.json();
  assert.equal(h.status, "degraded");
  assert.equal(h.secrets.stale, 3);
  assert.equal(h.secrets.ok, 0);
  const p = h.providers[0];
  assert.equal(p.online, false);
  assert.ok(p.failures >= 1);
  assert.ok(String(p.last_error).includes(secrets), `last_error names the folder: ${p.last_error}`);
  assert.equal(p.last_success, before, "the last success is kept");
  assert.ok(recent(p.last_error_at));
  assertNoLeaks(r.body, "health body");
  const m = parseMetrics((await d.get("/metrics")).body);
  assert.equal(m.get("sealcache_provider_online")!.samples.get('{provider="demo",type="file"}'), 0);
  assert.equal(m.get("sealcache_secrets")!.samples.get('{state="stale"}'), 3);
  // The values are still served, stale.
  const v = await d.get("/v1/secrets/demo/api-token");
  assert.equal(v.status, 200);
  assert.equal(v.json().value, API_TOKEN);
  assert.equal(v.headers["sealcache-stale"], "true");
});

test("/metrics is Prometheus text with no secret names and no values by default", async (t) => {
  const dir = tmpDir(t);
  const d = await launch(t, dir, demoConfig(dir), { waitFor: "synced" });
  for (const n of DEMO_NAMES) assert.equal((await d.get(`/v1/secrets/${n}`)).status, 200);
  assert.equal((await d.get("/v1/secrets/demo/nope")).status, 404);
  const r = await d.get("/metrics");
  assert.equal(r.status, 200);
  assert.match(String(r.headers["content-type"]), /^text\/plain; version=0\.0\.4/);
  assertNoLeaks(r.body, "metrics");
  for (const n of DEMO_NAMES) assert.ok(!r.body.includes(n), `no secret name (${n}) in metrics`);
  assert.ok(!/api-token|db-password|kafka-password/.test(r.body), "not even part of a name");
  const m = parseMetrics(r.body);
  assert.equal(m.get("sealcache_sealed")?.samples.get(""), 0);
  assert.equal(m.get("sealcache_secrets")?.samples.get('{state="ok"}'), 3);
  assert.equal(m.get("sealcache_secrets")?.samples.get('{state="not_synced"}'), 0);
  assert.equal(m.get("sealcache_provider_online")?.samples.get('{provider="demo",type="file"}'), 1);
  assert.equal(m.get("sealcache_provider_failures")?.samples.get('{provider="demo"}'), 0);
  assert.ok((m.get("sealcache_provider_last_success_timestamp_seconds")?.samples.get('{provider="demo"}') ?? 0) > Date.now() / 1000 - 120);
  assert.ok((m.get("sealcache_store_revision")?.samples.get("") ?? 0) >= 1);
  assert.equal(m.get("sealcache_http_requests_total")?.type, "counter");
  assert.ok((m.get("sealcache_http_requests_total")?.samples.get('{route="secret",code="200"}') ?? 0) >= 3);
  assert.ok((m.get("sealcache_http_requests_total")?.samples.get('{route="secret",code="404"}') ?? 0) >= 1);
  assert.ok((m.get("sealcache_lookups_total")?.samples.get('{outcome="ok"}') ?? 0) >= 3);
  assert.equal(m.has("sealcache_secret_age_seconds"), false, "per-secret ages only with metrics.secret_names");
});

test("/metrics with metrics.secret_names: true names secrets, still never values", async (t) => {
  const dir = tmpDir(t);
  const d = await launch(t, dir, demoConfig(dir, { metrics: { secret_names: true } }), { waitFor: "synced" });
  assert.equal((await d.get("/v1/secrets/demo/api-token?format=raw")).body, API_TOKEN);
  const r = await d.get("/metrics");
  assert.equal(r.status, 200);
  assertNoLeaks(r.body, "metrics");
  const m = parseMetrics(r.body);
  const ages = m.get("sealcache_secret_age_seconds");
  assert.ok(ages, "per-secret ages are exported");
  for (const n of DEMO_NAMES) assert.ok(ages.samples.has(`{name="${n}"}`), `age of ${n}`);
  assert.ok((m.get("sealcache_lookups_total")?.samples.get('{outcome="ok",name="demo/api-token"}') ?? 0) >= 1);
});

test("GET /v1/secrets?prefix= lists names and metadata, never values", async (t) => {
  const dir = tmpDir(t);
  const d = await launch(t, dir, demoConfig(dir), { waitFor: "synced" });
  const r = await d.get("/v1/secrets?prefix=demo/");
  assert.equal(r.status, 200);
  assert.match(String(r.headers["content-type"]), /^application\/json/);
  assertNoLeaks(r.body, "listing");
  const list = r.json().secrets as Record<string, unknown>[];
  assert.deepEqual(
    list.map((s) => s.name),
    DEMO_NAMES,
    "sorted names",
  );
  for (const s of list) {
    assert.deepEqual(Object.keys(s).sort(), LIST_FIELDS, "metadata fields only; no value");
    assert.equal(s.state, "ok");
    assert.equal(s.provider, "demo");
    assert.equal(s.version, 1);
    assert.equal(s.stale, false);
    assert.equal(s.error, null);
    assert.ok(recent(s.fetched_at));
    assert.equal(typeof s.age_s, "number");
    assert.match(String(s.source_version), /^mtime:\d+$/);
  }
  const cases: [string, string[]][] = [
    ["/v1/secrets", DEMO_NAMES],
    ["/v1/secrets?prefix=", DEMO_NAMES],
    ["/v1/secrets?prefix=demo/api", ["demo/api-token"]],
    ["/v1/secrets?prefix=demo%2Fdb", ["demo/db-password"]],
    ["/v1/secrets?prefix=zzz/", []],
    ["/v1/secrets?prefix=demo/api-token/", []],
  ];
  for (const [p, names] of cases) {
    const x = await d.get(p);
    assert.equal(x.status, 200, p);
    assert.deepEqual(
      x.json().secrets.map((s: { name: string }) => s.name),
      names,
      p,
    );
    assertNoLeaks(x.body, p);
  }
});
