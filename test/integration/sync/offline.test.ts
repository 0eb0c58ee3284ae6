import assert from "node:assert/strict";
import fs from "node:fs";
import path from "node:path";
import { describe, test } from "node:test";
import { DEMO_VALUES, planted } from "../../support/planted.js";
import { demoConfig, eventually, launch, sleep, type RunningDaemon } from "../../support/daemon.js";
import { tmpDir } from "../../support/tmp.js";

const [API_TOKEN, DB_PASSWORD] = DEMO_VALUES;
const SYNC = { interval: "30s", backoff_min: "200ms", backoff_max: "1s" };

interface Health {
  status: string;
  online: boolean;
  secrets: { total: number; ok: number; stale: number; expired: number; not_synced: number; errors: number };
  providers: {
    name: string;
    online: boolean;
    last_error: string | null;
    last_error_kind: string | null;
    failures: number;
    last_success: string | null;
    next_attempt: string | null;
  }[];
}
interface Listed {
  name: string;
  state: string;
  version: number | null;
  fetched_at: string | null;
  stale: boolean;
  error: string | null;
}

const health = async (d: RunningDaemon): Promise<Health> => (await d.get("/v1/health")).json<Health>();
const demoProvider = async (d: RunningDaemon) => (await health(d)).providers.find((p) => p.name === "demo")!;
const listed = async (d: RunningDaemon): Promise<Map<string, Listed>> =>
  new Map((await d.get("/v1/secrets")).json<{ secrets: Listed[] }>().secrets.map((s) => [s.name, s]));
const refresh = async (d: RunningDaemon, name?: string) => {
  const r = await d.get(`/v1/refresh${name ? `?name=${encodeURIComponent(name)}` : ""}`, { method: "POST" });
  assert.equal(r.status, 202, r.body);
};

describe("offline behaviour and rotation (real daemon, file provider)", () => {
  test("a provider outage: last good value served stale, provider offline, nothing deleted; the next retry brings it back", async (t) => {
    const dir = tmpDir(t);
    const d = await launch(t, dir, demoConfig(dir, { sync: SYNC }), { waitFor: "synced" });
    const before = await listed(d);
    assert.equal(before.get("demo/api-token")!.version, 1);

    fs.renameSync(path.join(dir, "secrets"), path.join(dir, "secrets-away"));
    await refresh(d);
    // Several retries happen on their own, with backoff.
    const down = await eventually(
      async () => {
        const p = await demoProvider(d);
        return p.failures >= 3 && p;
      },
      8_000,
      "three failed attempts",
    );
    assert.equal(down.online, false);
    assert.equal(down.last_error_kind, "transient");
    assert.equal(down.last_error, `file provider demo: folder ${path.join(dir, "secrets")} is not available (ENOENT)`);
    assert.ok(down.next_attempt !== null && down.last_success !== null);
    const h = await health(d);
    assert.equal(h.status, "degraded");
    assert.equal(h.online, false);
    assert.equal(h.secrets.stale, 3);

    // The cached values are still there and served, marked stale.
    const r = await d.get("/v1/secrets/demo/api-token");
    assert.equal(r.status, 200);
    const j = r.json();
    assert.equal(j.value, API_TOKEN);
    assert.equal(j.stale, true);
    assert.equal(j.version, 1);
    assert.equal(r.headers["sealcache-stale"], "true");
    const raw = await d.get("/v1/secrets/demo/db-password?format=raw");
    assert.equal(raw.status, 200);
    assert.equal(raw.body, DB_PASSWORD);
    assert.equal(raw.headers["sealcache-stale"], "true");
    const during = await listed(d);
    for (const [name, s] of during) {
      assert.equal(s.state, "stale", name);
      assert.equal(s.version, 1, name);
      assert.equal(s.fetched_at, before.get(name)!.fetched_at, `${name}: fetched_at is the last success`);
    }

    // The folder comes back: no refresh call, the backoff retry (at most backoff_max) finds it.
    fs.renameSync(path.join(dir, "secrets-away"), path.join(dir, "secrets"));
    const up = await eventually(
      async () => {
        const p = await demoProvider(d);
        return p.online && p;
      },
      4_000,
      "provider back online",
    );
    assert.equal(up.failures, 0);
    const after = (await d.get("/v1/secrets/demo/api-token")).json();
    assert.equal(after.value, API_TOKEN);
    assert.equal(after.stale, false);
    assert.equal(after.version, 1, "same content, same version");
    const h2 = await health(d);
    assert.equal(h2.status, "ok");
    assert.equal(h2.secrets.ok, 3);
  });

  test("sync.max_stale: a value not refreshed for longer is expired (410) while failing, and served again once fresh", async (t) => {
    const dir = tmpDir(t);
    const d = await launch(t, dir, demoConfig(dir, { sync: { ...SYNC, max_stale: "1s" } }), { waitFor: "synced" });
    // max_stale only applies to values that cannot be refreshed: a healthy value older than 1 s is fine.
    await sleep(1_300);
    const fresh = await d.get("/v1/secrets/demo/api-token");
    assert.equal(fresh.status, 200);
    assert.equal(fresh.json().stale, false);

    fs.renameSync(path.join(dir, "secrets"), path.join(dir, "secrets-away"));
    await refresh(d);
    const expired = await eventually(
      async () => {
        const r = await d.get("/v1/secrets/demo/api-token");
        return r.status === 410 && r;
      },
      5_000,
      "410 expired",
    );
    const e = expired.json();
    assert.equal(e.error, "expired");
    assert.match(e.message, /past sync\.max_stale \(1 s\)/);
    assert.equal(e.value, undefined);
    assert.ok(!expired.body.includes(API_TOKEN));
    assert.equal((await d.get("/v1/secrets/demo/db-password?format=raw")).status, 410);
    const l = await listed(d);
    assert.equal(l.get("demo/api-token")!.state, "expired");
    assert.equal((await health(d)).secrets.expired, 3);

    // Nothing was deleted: when the backend returns the secrets are served again.
    fs.renameSync(path.join(dir, "secrets-away"), path.join(dir, "secrets"));
    const back = await eventually(
      async () => {
        const r = await d.get("/v1/secrets/demo/api-token");
        return r.status === 200 && r;
      },
      4_000,
      "served again",
    );
    assert.equal(back.json().value, API_TOKEN);
    assert.equal(back.json().stale, false);
    assert.equal(back.json().version, 1);
  });

  test("rotation: a changed file shows up after POST /v1/refresh, and within a per-secret refresh interval without one", async (t) => {
    const dir = tmpDir(t);
    const config = demoConfig(dir, { sync: SYNC });
    const secrets = config.secrets as Record<string, Record<string, unknown>>;
    secrets["demo/api-token"] = { ...secrets["demo/api-token"], refresh: "1s" };
    const d = await launch(t, dir, config, { waitFor: "synced" });

    // demo/db-password follows the 30 s interval: only a refresh brings the change in now.
    const newPw = planted("rotated-db");
    fs.writeFileSync(path.join(dir, "secrets", "database.json"), JSON.stringify({ username: "pipeline", password: newPw }));
    await sleep(1_500);
    const unchanged = (await d.get("/v1/secrets/demo/db-password")).json();
    assert.equal(unchanged.value, DB_PASSWORD);
    assert.equal(unchanged.version, 1);
    await refresh(d, "demo/db-password");
    const rotated = await eventually(
      async () => {
        const j = (await d.get("/v1/secrets/demo/db-password")).json();
        return j.version === 2 && j;
      },
      3_000,
      "db-password version 2",
    );
    assert.equal(rotated.value, newPw);
    assert.equal(rotated.stale, false);

    // demo/api-token has refresh: 1s: the new value arrives on its own.
    const newTok = planted("rotated-tok");
    const changedAt = Date.now();
    fs.writeFileSync(path.join(dir, "secrets", "api-token"), `${newTok}\n`);
    const tok = await eventually(
      async () => {
        const j = (await d.get("/v1/secrets/demo/api-token")).json();
        return j.version === 2 && j;
      },
      3_000,
      "api-token version 2 without a refresh call",
    );
    assert.equal(tok.value, newTok);
    assert.ok(Date.now() - changedAt <= 1_200 + 800, `took ${Date.now() - changedAt} ms; refresh is 1s with jitter 0.2`);
    // Other secrets were not bumped.
    assert.equal((await d.get("/v1/secrets/demo/kafka-password")).json().version, 1);
  });

  test("a per-secret permanent error keeps the cached value and is shown in the list and in health", async (t) => {
    const dir = tmpDir(t);
    const d = await launch(t, dir, demoConfig(dir, { sync: SYNC }), { waitFor: "synced" });
    const file = path.join(dir, "secrets", "database.json");
    const original = fs.readFileSync(file);
    fs.writeFileSync(file, JSON.stringify({ username: "pipeline", pass: planted("misnamed") }));
    await refresh(d);
    const entry = await eventually(
      async () => {
        const s = (await listed(d)).get("demo/db-password")!;
        return s.error !== null && s;
      },
      3_000,
      "error on demo/db-password",
    );
    assert.equal(entry.error, `${file}: JSON object has no key "password"`);
    assert.equal(entry.state, "stale");
    assert.equal(entry.version, 1);

    const r = await d.get("/v1/secrets/demo/db-password");
    assert.equal(r.status, 200);
    assert.equal(r.json().value, DB_PASSWORD, "the last good value is kept");
    assert.equal(r.json().stale, true);
    assert.equal(r.headers["sealcache-stale"], "true");
    const other = (await d.get("/v1/secrets/demo/api-token")).json();
    assert.equal(other.stale, false, "other secrets of the provider are unaffected");

    const h = await health(d);
    assert.equal(h.secrets.errors, 1);
    assert.equal(h.secrets.stale, 1);
    assert.equal(h.status, "degraded");
    const p = h.providers.find((x) => x.name === "demo")!;
    assert.equal(p.online, true, "a per-secret error does not take the provider offline");

    // Fixed at the source: the error clears on the next refresh.
    fs.writeFileSync(file, original);
    await refresh(d);
    const fixed = await eventually(
      async () => {
        const s = (await listed(d)).get("demo/db-password")!;
        return s.error === null && s.state === "ok" && s;
      },
      3_000,
      "error cleared",
    );
    assert.equal(fixed.version, 1);
    assert.equal((await health(d)).secrets.errors, 0);
  });
});
