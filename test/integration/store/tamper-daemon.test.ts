import assert from "node:assert/strict";
import fs from "node:fs";
import path from "node:path";
import { describe, test } from "node:test";
import Database from "better-sqlite3";
import { demoConfig, eventually, launch, type RunningDaemon } from "../../support/daemon.js";
import { assertNoLeaks, DEMO_VALUES, databaseBytes } from "../../support/planted.js";
import { tmpDir } from "../../support/tmp.js";

const NAMES = ["demo/api-token", "demo/db-password", "demo/kafka-password"] as const;
const EXPECTED: Record<string, string> = {
  "demo/api-token": DEMO_VALUES[0],
  "demo/db-password": DEMO_VALUES[1],
  "demo/kafka-password": DEMO_VALUES[2],
};

type Row = { name: string; wrapped_dek: Buffer; ciphertext: Buffer; value_mac: Buffer };

/** Exchanges the sealed value (DEK, ciphertext and value MAC) of two rows: each is a valid pair, under the wrong name. */
function swapRows(dbFile: string, a: string, b: string): void {
  const db = new Database(dbFile);
  try {
    const get = db.prepare("SELECT name, wrapped_dek, ciphertext, value_mac FROM secrets WHERE name = ?");
    const ra = get.get(a) as Row | undefined;
    const rb = get.get(b) as Row | undefined;
    assert.ok(ra && rb, "both rows exist before the swap");
    const set = db.prepare("UPDATE secrets SET wrapped_dek = ?, ciphertext = ?, value_mac = ? WHERE name = ?");
    db.transaction(() => {
      set.run(rb.wrapped_dek, rb.ciphertext, rb.value_mac, a);
      set.run(ra.wrapped_dek, ra.ciphertext, ra.value_mac, b);
    })();
  } finally {
    db.close();
  }
}

/** The value served for `name`, checked without ever printing it. */
async function assertServes(d: RunningDaemon, name: string, expected: string): Promise<void> {
  const r = await d.get(`/v1/secrets/${name}?format=raw`);
  assert.equal(r.status, 200, `GET ${name}: ${r.status} ${r.status === 200 ? "" : r.body}`);
  assert.ok(r.body === expected, `GET ${name} served ${r.body.length} bytes that are not its own value`);
}

/** A refusal, never a value: the body holds no demo value at all. */
async function assertRefused(d: RunningDaemon, name: string): Promise<void> {
  const r = await d.get(`/v1/secrets/${name}`);
  assertNoLeaks(r.body, `GET ${name} body`);
  assert.equal(r.status, 503, `GET ${name}: expected 503, got ${r.status}`);
  assert.equal(r.json().error, "not_synced");
  assert.ok(r.headers["retry-after"], "Retry-After is set");
}

async function syncedThenStopped(t: Parameters<typeof launch>[0], dir: string): Promise<{ config: Record<string, unknown>; dbFile: string; dataDir: string }> {
  const config = demoConfig(dir);
  const dataDir = String(config.data_dir);
  const dbFile = path.join(dataDir, "cache.db");
  const d = await launch(t, dir, config, { waitFor: "synced" });
  for (const n of NAMES) await assertServes(d, n, EXPECTED[n]!);
  assert.equal(await d.stop(), 0);
  assertNoLeaks(databaseBytes(dbFile), "cache.db after a clean stop");
  return { config, dbFile, dataDir };
}

async function assertQuarantineReported(d: RunningDaemon, dataDir: string, reason: RegExp): Promise<void> {
  const h = (await d.get("/v1/health")).json();
  assert.equal(h.quarantined.length, 1, `health lists one quarantined database: ${JSON.stringify(h.quarantined)}`);
  const q = h.quarantined[0];
  assert.match(q.reason, reason);
  assert.equal(path.dirname(q.path), path.join(dataDir, "quarantine"));
  assert.equal(h.status, "degraded", "a quarantine makes health degraded");
  assert.ok(fs.existsSync(q.path), "the old database is kept in data_dir/quarantine");
  assert.ok(fs.existsSync(q.path.replace(/\.db$/, ".reason.txt")), "with a reason file");
  // It is the tampered file: it still holds the three rows.
  const old = new Database(q.path, { readonly: true });
  try {
    assert.equal((old.prepare("SELECT count(*) AS n FROM secrets").get() as { n: number }).n, 3);
  } finally {
    old.close();
  }
  assert.match(d.output(), /cache database failed its checks/);
}

describe("a tampered cache.db through the real daemon", () => {
  test("rows swapped while stopped: quarantined at start, values re-fetched, never the swapped ones", async (t) => {
    const dir = tmpDir(t);
    const { config, dbFile, dataDir } = await syncedThenStopped(t, dir);
    swapRows(dbFile, "demo/api-token", "demo/db-password");

    const d = await launch(t, dir, config, { waitFor: "synced" });
    for (const n of NAMES) await assertServes(d, n, EXPECTED[n]!);
    // Re-fetched into a fresh database: versions start again at 1.
    const j = (await d.get("/v1/secrets/demo/api-token")).json();
    assert.equal(j.version, 1);
    await assertQuarantineReported(d, dataDir, /swapped/);
    assert.equal(fs.readdirSync(path.join(dataDir, "quarantine")).filter((f) => f.endsWith(".db")).length, 1);
    assert.equal(await d.stop(), 0);
    assertNoLeaks(databaseBytes(dbFile), "the fresh cache.db");

    // A clean restart keeps the fresh database: no second quarantine.
    const again = await launch(t, dir, config, { waitFor: "synced" });
    assert.deepEqual((await again.get("/v1/health")).json().quarantined, []);
    for (const n of NAMES) await assertServes(again, n, EXPECTED[n]!);
  });

  test("rows swapped while stopped and the backend offline: 503 not_synced, never a wrong value", async (t) => {
    const dir = tmpDir(t);
    const { config, dbFile, dataDir } = await syncedThenStopped(t, dir);
    swapRows(dbFile, "demo/api-token", "demo/kafka-password");
    const secrets = path.join(dir, "secrets");
    fs.renameSync(secrets, `${secrets}.away`);

    const d = await launch(t, dir, config, { waitFor: "socket" });
    for (const n of NAMES) await assertRefused(d, n);
    await assertQuarantineReported(d, dataDir, /swapped/);
    // After the sync engine has tried (and failed) the backend, still nothing is served.
    await d.waitForLog(/provider unreachable/);
    for (const n of NAMES) await assertRefused(d, n);
    const h = (await d.get("/v1/health")).json();
    assert.equal(h.secrets.not_synced, 3);
    assert.equal(h.online, false);
    const list = (await d.get("/v1/secrets")).json();
    assert.deepEqual(
      list.secrets.map((s: { name: string; state: string }) => [s.name, s.state]),
      NAMES.map((n) => [n, "not_synced"]),
    );

    // The backend comes back: the real values, not the swapped ones.
    fs.renameSync(`${secrets}.away`, secrets);
    await eventually(async () => (await d.get("/v1/health")).json().secrets.not_synced === 0, 10_000, "re-sync after the backend returns");
    for (const n of NAMES) await assertServes(d, n, EXPECTED[n]!);
  });

  test("rows swapped while running: the values it holds are served, never the swapped ones; the next start quarantines and re-fetches", async (t) => {
    const dir = tmpDir(t);
    const config = demoConfig(dir);
    const dataDir = String(config.data_dir);
    const dbFile = path.join(dataDir, "cache.db");
    const d = await launch(t, dir, config, { waitFor: "synced" });
    for (const n of NAMES) await assertServes(d, n, EXPECTED[n]!);

    // The daemon serves the sealed copy it holds in memory: an edit to the file is never served.
    swapRows(dbFile, "demo/api-token", "demo/db-password");
    for (let i = 0; i < 3; i++) for (const n of NAMES) await assertServes(d, n, EXPECTED[n]!);
    assert.equal(await d.stop(), 0);

    const again = await launch(t, dir, config, { waitFor: "synced" });
    await assertQuarantineReported(again, dataDir, /swapped|do not match the digest/);
    for (const n of NAMES) await assertServes(again, n, EXPECTED[n]!);
    assert.equal((await again.get("/v1/secrets/demo/api-token")).json().version, 1, "re-fetched into a fresh database");
    assert.equal(await again.stop(), 0);
    assertNoLeaks(databaseBytes(dbFile), "cache.db after the re-fetch");
  });
});
