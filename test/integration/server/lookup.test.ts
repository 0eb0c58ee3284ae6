import assert from "node:assert/strict";
import { test } from "node:test";
import { demoConfig, launch } from "../../support/daemon.js";
import { tmpDir } from "../../support/tmp.js";

test("a synced demo secret is served as JSON and raw, with Age and Sealcache-Stale", async (t) => {
  const dir = tmpDir(t);
  const d = await launch(t, dir, demoConfig(dir), { waitFor: "synced" });
  const r = await d.get("/v1/secrets/demo/api-token");
  assert.equal(r.status, 200);
  const j = r.json();
  assert.equal(j.name, "demo/api-token");
  assert.equal(j.value, "demo-api-token-7Q2mX9vLp4");
  assert.equal(j.stale, false);
  assert.equal(typeof j.age_s, "number");
  assert.equal(j.version, 1);
  assert.equal(r.headers["sealcache-stale"], "false");
  assert.match(String(r.headers.age), /^\d+$/);
  const raw = await d.get("/v1/secrets/demo/db-password?format=raw");
  assert.equal(raw.status, 200);
  assert.equal(raw.body, "demo-db-password-Hk3Zr8Wq1");
  const env = await d.get("/v1/secrets/demo/kafka-password?format=raw");
  assert.equal(env.body, "demo-kafka-password-Vn6Ty2Bs0");
});
