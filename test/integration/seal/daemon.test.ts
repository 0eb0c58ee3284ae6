import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import fs from "node:fs";
import path from "node:path";
import { test } from "node:test";
import { demoConfig, eventually, launch, type RunningDaemon } from "../../support/daemon.js";
import { assertNoLeaks, DEMO_VALUES } from "../../support/planted.js";
import { startSwtpm } from "../../support/swtpm.js";
import { tmpDir } from "../../support/tmp.js";
import { LOCK_FILE } from "../../../src/daemon/data-dir-lock.js";

/** sha256 of each file present, so "untouched" means byte for byte, and no file appeared (the lock file holds each holder's pid). */
function snapshot(dataDir: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const f of fs.readdirSync(dataDir).sort()) {
    if (f === LOCK_FILE) continue;
    const p = path.join(dataDir, f);
    if (fs.statSync(p).isFile()) out[f] = createHash("sha256").update(fs.readFileSync(p)).digest("hex");
  }
  return out;
}

async function servesDemo(d: RunningDaemon): Promise<void> {
  const r = await d.get("/v1/secrets/demo/api-token?format=raw");
  assert.equal(r.status, 200, r.body);
  assert.ok(r.body === DEMO_VALUES[0], "serves the demo value");
}

test("the daemon seals its cache key to the TPM, unseals it after a restart, and stays sealed without the TPM", async (t) => {
  const tpm = await startSwtpm(t);
  const dir = tmpDir(t);
  const config = demoConfig(dir, { seal: { type: "tpm2", tcti: tpm.tcti, pcrs: [16] } });
  const dataDir = String(config.data_dir);

  const first = await launch(t, dir, config, { waitFor: "synced" });
  await servesDemo(first);
  const health = (await first.get("/v1/health")).json();
  assert.equal(health.seal.type, "tpm2");
  assert.equal(health.seal.ok, true, health.seal.detail);
  assert.match(health.seal.detail, /IBM/);
  assert.equal(await first.stop(), 0);
  const sealedKek = JSON.parse(fs.readFileSync(path.join(dataDir, "kek.sealed"), "utf8"));
  assert.equal(sealedKek.type, "tpm2");
  assert.ok(fs.existsSync(path.join(dataDir, "cache.db")));
  assert.deepEqual(await tpm.handles(), { transient: [], sessions: [] }, "the daemon left nothing loaded in the TPM");

  // Restart: the same sealed key is unsealed (not replaced), and the cache opens with it.
  const before = snapshot(dataDir);
  fs.renameSync(path.join(dir, "secrets"), path.join(dir, "secrets.away")); // a 200 can now only come from the cache
  const second = await launch(t, dir, config, { waitFor: "socket" });
  await servesDemo(second);
  assert.match(second.output(), /unsealed; serving/);
  assert.equal(await second.stop(), 0);
  assert.equal(snapshot(dataDir)["kek.sealed"], before["kek.sealed"], "kek.sealed was not replaced");

  // No TPM: the socket comes up answering `sealed` with the TPM problem; data_dir is not touched.
  await tpm.stop();
  const untouched = snapshot(dataDir);
  const third = await launch(t, dir, config, { waitFor: "socket" });
  const h = await third.get("/v1/health");
  assert.equal(h.status, 503);
  const hj = h.json();
  assert.equal(hj.status, "sealed");
  assert.match(hj.sealed_reason, /cannot reach the TPM through TCTI "swtpm:host=127\.0\.0\.1,port=\d+"/);
  assert.equal(hj.seal.ok, false);
  const r = await third.get("/v1/secrets/demo/api-token");
  assert.equal(r.status, 503);
  assert.equal(r.json().error, "sealed");
  assert.match(r.json().message, /TPM/);
  assertNoLeaks(r.body, "sealed answer");
  assert.deepEqual(snapshot(dataDir), untouched, "cache.db and kek.sealed are byte-for-byte untouched");

  // The TPM comes back: the daemon's retry unseals without a restart.
  await tpm.start();
  await eventually(async () => (await third.get("/v1/secrets/demo/api-token?format=raw")).status === 200, 15_000, "the daemon to unseal once the TPM answers");
  await servesDemo(third);
  assert.equal(await third.stop(), 0);
});
