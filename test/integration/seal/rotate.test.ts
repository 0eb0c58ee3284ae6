import assert from "node:assert/strict";
import fs from "node:fs";
import path from "node:path";
import { test } from "node:test";
import Database from "better-sqlite3";
import { stringify } from "yaml";
import { cli, demoConfig, launch } from "../../support/daemon.js";
import { DEMO_VALUES } from "../../support/planted.js";
import { startSwtpm } from "../../support/swtpm.js";
import { tmpDir } from "../../support/tmp.js";

function rows(dbFile: string): unknown[] {
  const db = new Database(dbFile, { readonly: true });
  try {
    return db.prepare("SELECT name, version, hex(wrapped_dek) AS dek, hex(ciphertext) AS ct FROM secrets ORDER BY name").all();
  } finally {
    db.close();
  }
}

const NAMES = ["demo/api-token", "demo/db-password", "demo/kafka-password"];

/** Every demo secret readable, served from the cache alone (the secrets folder is gone). */
async function allServedFromCache(t: Parameters<typeof launch>[0], dir: string, config: Record<string, unknown>): Promise<void> {
  const d = await launch(t, dir, config);
  const h = (await d.get("/v1/health")).json();
  assert.equal(h.sealed, false, h.sealed_reason);
  assert.deepEqual(h.quarantined, [], "a rotation interrupted at any step must not look like tampering");
  for (const [i, n] of NAMES.entries()) {
    const r = await d.get(`/v1/secrets/${n}?format=raw`);
    assert.equal(r.status, 200, `${n}: ${r.body}`);
    assert.equal(r.body, DEMO_VALUES[i]);
  }
  assert.equal(await d.stop(), 0);
}

for (const step of ["rotate-kek:pending-written", "rotate-kek:committed", "rotate-kek:swapped"]) {
  test(`kill -9 at ${step}: the cache opens under the old or the new key, never a mix`, async (t) => {
    const tpm = await startSwtpm(t);
    const dir = tmpDir(t);
    const config = demoConfig(dir, { seal: { type: "tpm2", tcti: tpm.tcti } });
    const dataDir = String(config.data_dir);
    const first = await launch(t, dir, config, { waitFor: "synced" });
    assert.equal(await first.stop(), 0);
    const before = fs.readFileSync(path.join(dataDir, "kek.sealed"));
    fs.renameSync(path.join(dir, "secrets"), path.join(dir, "secrets.away"));

    const configFile = path.join(dir, "sealcache.yaml");
    fs.writeFileSync(configFile, stringify(config));
    const r = await cli(["--config", configFile, "rotate-kek"], { env: { SEALCACHE_FAILPOINT: step } });
    assert.equal(r.code, null, `rotate-kek should have been killed at ${step}: ${r.stderr}`);
    assert.ok(fs.existsSync(path.join(dataDir, "kek.sealed")), "kek.sealed is never missing");

    await allServedFromCache(t, dir, config);
    const after = fs.readFileSync(path.join(dataDir, "kek.sealed"));
    assert.ok(!fs.existsSync(path.join(dataDir, "kek.sealed.next")), "the pending key is resolved at start");
    if (step === "rotate-kek:pending-written") assert.ok(after.equals(before), "killed before the commit: the old key stays");
    else assert.ok(!after.equals(before), "killed after the commit: the new key is in place");
    // And the state it settled on keeps opening.
    await allServedFromCache(t, dir, config);
  });
}

test("rotate-kek with the daemon stopped re-wraps every data key; the recovery key still opens the new key", async (t) => {
  const tpm = await startSwtpm(t);
  const dir = tmpDir(t);
  const config = demoConfig(dir, { seal: { type: "tpm2", tcti: tpm.tcti, pcrs: [16] } });
  const dataDir = String(config.data_dir);
  const configFile = path.join(dir, "sealcache.yaml");
  fs.writeFileSync(configFile, stringify(config));
  const init = await cli(["--config", configFile, "init", "--json"], { allowValues: true });
  assert.equal(init.code, 0, init.stderr);
  const recoveryKey = JSON.parse(init.stdout).recovery_key as string;
  assert.match(recoveryKey, /^([0-9A-Z]{7}-){7}[0-9A-Z]{7}$/);

  const first = await launch(t, dir, config, { waitFor: "synced" });
  const doc = await cli(["--config", configFile, "doctor", "--json"]);
  const checks = JSON.parse(doc.stdout).checks as { check: string; level: string; message: string }[];
  assert.ok(
    checks.some((c) => c.level === "ok" && /^tpm2: .*IBM/.test(c.message)),
    `doctor names the TPM: ${doc.stdout}`,
  );
  assert.ok(
    checks.some((c) => c.level === "ok" && /anti-rollback counter/.test(c.message)),
    `doctor reads the counter: ${doc.stdout}`,
  );
  assert.ok(!checks.some((c) => /no recovery key/.test(c.message)), "init made a recovery key");
  assert.equal(await first.stop(), 0);
  const before = fs.readFileSync(path.join(dataDir, "kek.sealed"));
  const recoveryBefore = fs.readFileSync(path.join(dataDir, "kek.recovery"));
  const r = await cli(["--config", configFile, "rotate-kek", "--json"]);
  assert.equal(r.code, 0, r.stderr);
  assert.equal(JSON.parse(r.stdout).rewrapped, 3);
  assert.ok(!fs.readFileSync(path.join(dataDir, "kek.sealed")).equals(before));
  assert.ok(!fs.readFileSync(path.join(dataDir, "kek.recovery")).equals(recoveryBefore), "the new key is escrowed again");
  fs.renameSync(path.join(dir, "secrets"), path.join(dir, "secrets.away"));
  await allServedFromCache(t, dir, config);

  // PCR 16 changes (a firmware update): the TPM refuses, the recovery key printed at init reseals.
  await tpm.extendPcr(16);
  const keyFile = path.join(dir, "recovery.txt");
  fs.writeFileSync(keyFile, recoveryKey + "\n", { mode: 0o600 });
  const withoutKey = await cli(["--config", configFile, "init", "--reseal"]);
  assert.equal(withoutKey.code, 1);
  assert.match(withoutKey.stderr, /PCR 16/);
  const resealed = await cli(["--config", configFile, "init", "--reseal", "--recovery-key-file", keyFile]);
  assert.equal(resealed.code, 0, resealed.stderr);
  await allServedFromCache(t, dir, config);
});

test("rotate-kek through the running daemon keeps serving; an older copy of data_dir restored afterwards is refused", async (t) => {
  const tpm = await startSwtpm(t);
  const dir = tmpDir(t);
  const config = demoConfig(dir, { seal: { type: "tpm2", tcti: tpm.tcti } });
  const dataDir = String(config.data_dir);
  const configFile = path.join(dir, "sealcache.yaml");
  const d = await launch(t, dir, config, { waitFor: "synced" });
  // An attacker's (or a careless restore's) copy of everything in data_dir, before the rotation.
  const backup = path.join(dir, "backup");
  fs.cpSync(dataDir, backup, { recursive: true });

  const r = await cli(["--config", configFile, "rotate-kek", "--json"]);
  assert.equal(r.code, 0, r.stderr);
  const j = JSON.parse(r.stdout);
  assert.equal(j.via, "daemon");
  assert.equal(j.rewrapped, 3);
  for (const [i, n] of NAMES.entries()) assert.equal((await d.get(`/v1/secrets/${n}?format=raw`)).body, DEMO_VALUES[i], "served across the rotation");
  assert.equal(await d.stop(), 0);
  fs.renameSync(path.join(dir, "secrets"), path.join(dir, "secrets.away"));
  await allServedFromCache(t, dir, config);

  // Restore the old copy: its old kek.sealed still unseals on this TPM, so only the counter catches it.
  fs.rmSync(dataDir, { recursive: true });
  fs.cpSync(backup, dataDir, { recursive: true });
  const before = rows(path.join(backup, "cache.db"));
  const old = await launch(t, dir, config);
  const h = await old.get("/v1/health");
  assert.equal(h.status, 503);
  assert.equal(h.json().sealed, true);
  assert.match(h.json().sealed_reason, /older than this device's TPM anti-rollback counter/);
  const s = await old.get("/v1/secrets/demo/api-token");
  assert.equal(s.status, 503);
  assert.equal(s.json().error, "sealed");
  assert.equal(await old.stop(), 0);
  // Opening may checkpoint the WAL, so compare contents, not bytes.
  assert.deepEqual(rows(path.join(dataDir, "cache.db")), before, "the refused cache keeps every row as it was");
  assert.ok(!fs.existsSync(path.join(dataDir, "quarantine")), "a rolled-back cache is refused, not quarantined and replaced");
});
