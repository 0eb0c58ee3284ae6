// The audit trail in the cache database: written in batches (a lookup never waits
// for the disk), retention by age and by row count, queries, and it follows the
// store through a quarantine — all on real SQLite files.
import assert from "node:assert/strict";
import fs from "node:fs";
import path from "node:path";
import { before, test, type TestContext } from "node:test";
import Database from "better-sqlite3";
import { Envelope, KEK_BYTES } from "../../../src/crypto/envelope.js";
import { loadSodium, type Sodium } from "../../../src/crypto/sodium.js";
import { createLogger } from "../../../src/log.js";
import { AUDIT_SCHEMA, AuditLog, type AuditEntry, type AuditSettings } from "../../../src/store/audit.js";
import { SecretStore } from "../../../src/store/store.js";
import { sleep } from "../../support/daemon.js";
import { tmpDir } from "../../support/tmp.js";

let sodium: Sodium;
before(async () => {
  sodium = await loadSodium();
});

const logger = createLogger({ level: "silent" });
const entry = (i: number, o: Partial<AuditEntry> = {}): AuditEntry => ({
  at: Date.now(),
  uid: 1000 + (i % 3),
  pid: 4000 + i,
  exe: "/usr/bin/node",
  unit: "edge-agent.service",
  route: "secret",
  name: `demo/s${i % 5}`,
  status: 200,
  code: "ok",
  principal: "peer",
  ...o,
});

function open(t: TestContext, settings?: AuditSettings) {
  const file = path.join(tmpDir(t), "audit.db");
  const log = new AuditLog({ file, settings, logger });
  log.open();
  // Another connection, as an operator with sqlite3 would see the file.
  const db = new Database(file);
  t.after(() => {
    log.close();
    db.close();
  });
  const count = () => (db.prepare("SELECT count(*) AS n FROM audit").get() as { n: number }).n;
  return { db, log, count, file };
}

test("entries are buffered and written in one transaction 5 s after the first of a batch, or at once when the ring is full; an idle log sets no timer", async (t) => {
  const { log, count } = open(t);
  for (let i = 0; i < 10; i++) log.record(entry(i));
  assert.equal(count(), 0, "nothing written on the request path");
  await sleep(2_000);
  assert.equal(count(), 0, "not yet: a batch waits 5 s");
  await sleep(3_500);
  assert.equal(count(), 10, "written by the flush timer");
  for (let i = 0; i < 300; i++) log.record(entry(i));
  await sleep(50);
  assert.ok(count() >= 266, `a full ring does not wait for the timer (${count()})`);
  log.flush();
  assert.equal(count(), 310);
  const timers = (process as unknown as { getActiveResourcesInfo(): string[] }).getActiveResourcesInfo().filter((r) => r === "Timeout").length;
  log.record(entry(1));
  log.flush();
  assert.equal(
    (process as unknown as { getActiveResourcesInfo(): string[] }).getActiveResourcesInfo().filter((r) => r === "Timeout").length,
    timers,
    "a flushed log holds no timer",
  );
});

test("retention: rows beyond max_rows go, oldest first; rows older than the retention go", (t) => {
  const { log, count, db } = open(t, { retentionMs: 60_000, maxRows: 100 });
  for (let i = 0; i < 250; i++) log.record(entry(i, { pid: i }));
  log.flush();
  assert.equal(count(), 100);
  const pids = (db.prepare("SELECT pid FROM audit ORDER BY id").all() as { pid: number }[]).map((r) => r.pid);
  assert.deepEqual(
    pids,
    Array.from({ length: 100 }, (_, i) => 150 + i),
    "the newest 100 are kept",
  );
  // Retention runs hourly (not on every flush): an hour on.
  const now = Date.now() + 3_600_000;
  log.record(entry(1, { at: now - 120_000, name: "old/one" }));
  log.record(entry(2, { at: now, name: "new/one" }));
  log.flush(now - 60_000);
  assert.equal((db.prepare("SELECT count(*) AS n FROM audit WHERE name = 'old/one'").get() as { n: number }).n, 1, "not pruned before the hour is up");
  log.flush(now);
  const names = (db.prepare("SELECT name FROM audit WHERE name LIKE '%/one'").all() as { name: string }[]).map((r) => r.name);
  assert.deepEqual(names, ["new/one"], "older than the retention: deleted");
});

test("queries: newest `limit` matching entries, oldest first; since and name filter", (t) => {
  const { log } = open(t);
  const base = Date.now() - 10_000;
  for (let i = 0; i < 20; i++) log.record(entry(i, { at: base + i * 100, name: i % 2 ? "odd" : "even", pid: i }));
  const all = log.query({ limit: 1000 });
  assert.equal(all.length, 20, "query flushes first: the answer is current");
  assert.deepEqual(
    log.query({ limit: 3 }).map((e) => e.pid),
    [17, 18, 19],
  );
  assert.deepEqual(
    log.query({ name: "odd", limit: 3 }).map((e) => e.pid),
    [15, 17, 19],
  );
  assert.deepEqual(
    log.query({ since: base + 1_500, limit: 100 }).map((e) => e.pid),
    [15, 16, 17, 18, 19],
  );
  assert.deepEqual(
    log.query({ since: base + 1_500, name: "even", limit: 100 }).map((e) => e.pid),
    [16, 18],
  );
  const e = all[0]!;
  assert.deepEqual(Object.keys(e).sort(), ["at", "code", "exe", "name", "pid", "principal", "route", "status", "uid", "unit"]);
});

test("a failed write keeps the entries and writes them once the database takes them again", (t) => {
  const { log, db, count } = open(t);
  db.exec("ALTER TABLE audit RENAME TO audit_away");
  log.record(entry(1));
  assert.equal(log.flush(), 0, "the write fails");
  db.exec("ALTER TABLE audit_away RENAME TO audit");
  assert.equal(log.flush(), 1, "kept and written");
  assert.equal(count(), 1);
});

test("a quarantine of cache.db leaves the audit trail as it is: entries from before and after are all in audit.db", (t) => {
  const dir = tmpDir(t);
  const file = path.join(dir, "cache.db");
  const kek = sodium.randombytes_buf(KEK_BYTES);
  const open = () => new SecretStore({ file, envelope: new Envelope(sodium, kek.slice()), logger, audit: { retentionMs: 86_400_000, maxRows: 1_000 } });
  const first = open();
  first.apply([{ name: "demo/a", ok: true, value: new TextEncoder().encode("v"), sourceVersion: undefined, at: Date.now() }]);
  first.audit.record(entry(1, { name: "before/flushed" }));
  first.audit.flush();
  first.audit.record(entry(2, { name: "written/at/close" }));
  first.close();
  // Someone edits the row while the store is closed: the next open quarantines cache.db.
  const w = new Database(file);
  w.prepare("UPDATE secrets SET ciphertext = zeroblob(length(ciphertext))").run();
  w.close();
  const store = open();
  t.after(() => store.close());
  assert.equal(store.quarantined.length, 1);
  store.audit.record(entry(3, { name: "after/reopen" }));
  assert.deepEqual(
    store.audit.query({ limit: 10 }).map((e) => e.name),
    ["before/flushed", "written/at/close", "after/reopen"],
  );
  const q = new Database(store.quarantined[0]!.path, { readonly: true });
  assert.equal((q.prepare("SELECT count(*) AS n FROM sqlite_master WHERE name = 'audit'").get() as { n: number }).n, 0, "no audit table in cache.db any more");
  q.close();
});

test("schema 6: the audit rows of an older cache.db move to audit.db at the first open", (t) => {
  const dir = tmpDir(t);
  const file = path.join(dir, "cache.db");
  const kek = sodium.randombytes_buf(KEK_BYTES);
  const s0 = new SecretStore({ file, envelope: new Envelope(sodium, kek.slice()), logger });
  s0.close();
  // As schema 5 left it: the trail in cache.db, no audit.db.
  const w = new Database(file);
  w.exec(AUDIT_SCHEMA);
  const ins = w.prepare(
    "INSERT INTO audit (at, uid, pid, exe, unit, route, name, status, code, principal) VALUES (?, 1, 2, NULL, NULL, 'secret', ?, 200, 'ok', 'peer')",
  );
  ins.run(Date.now() - 2000, "legacy/one");
  ins.run(Date.now() - 1000, "legacy/two");
  w.pragma("user_version = 5");
  w.close();
  fs.rmSync(path.join(dir, "audit.db"), { force: true });
  for (const f of ["-wal", "-shm"]) fs.rmSync(path.join(dir, `audit.db${f}`), { force: true });
  const s = new SecretStore({ file, envelope: new Envelope(sodium, kek.slice()), logger });
  t.after(() => s.close());
  assert.deepEqual(s.quarantined, []);
  assert.deepEqual(
    s.audit.query({ limit: 10 }).map((e) => e.name),
    ["legacy/one", "legacy/two"],
  );
  const r = new Database(file, { readonly: true });
  assert.equal((r.prepare("SELECT count(*) AS n FROM sqlite_master WHERE name = 'audit'").get() as { n: number }).n, 0, "moved, not copied");
  r.close();
});
