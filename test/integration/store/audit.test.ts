// The audit trail in the cache database: written in batches (a lookup never waits
// for the disk), retention by age and by row count, queries, and it follows the
// store through a quarantine — all on real SQLite files.
import assert from "node:assert/strict";
import path from "node:path";
import { before, test, type TestContext } from "node:test";
import Database from "better-sqlite3";
import { Envelope, KEK_BYTES } from "../../../src/crypto/envelope.js";
import { loadSodium, type Sodium } from "../../../src/crypto/sodium.js";
import { isIntegrityError } from "../../../src/errors.js";
import { createLogger } from "../../../src/log.js";
import { AuditLog, type AuditEntry, type AuditSettings } from "../../../src/store/audit.js";
import { migrate } from "../../../src/store/migrations.js";
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
  const file = path.join(tmpDir(t), "cache.db");
  const db = new Database(file);
  db.pragma("journal_mode = WAL");
  migrate(db);
  const log = new AuditLog({ settings, logger });
  log.attach(db);
  // Another connection, as an operator with sqlite3 would see the file.
  const reader = new Database(file, { readonly: true });
  t.after(() => {
    log.detach();
    db.close();
    reader.close();
  });
  const count = () => (reader.prepare("SELECT count(*) AS n FROM audit").get() as { n: number }).n;
  return { db, log, count, file };
}

test("entries are buffered and written in one transaction about once a second, or at once in a big batch", async (t) => {
  const { log, count } = open(t);
  for (let i = 0; i < 10; i++) log.record(entry(i));
  assert.equal(count(), 0, "nothing written on the request path");
  await sleep(1_300);
  assert.equal(count(), 10, "written by the next tick");
  for (let i = 0; i < 300; i++) log.record(entry(i));
  await sleep(20);
  assert.equal(count(), 310, "a full batch does not wait for the tick");
});

test("retention: rows beyond max_rows go, oldest first; rows older than the retention go", (t) => {
  const { log, count, db } = open(t, { retentionMs: 60_000, maxRows: 100 });
  for (let i = 0; i < 250; i++) log.record(entry(i, { pid: i }));
  log.flush();
  assert.equal(count(), 100);
  const pids = (db.prepare("SELECT pid FROM audit ORDER BY id").all() as { pid: number }[]).map((r) => r.pid);
  assert.deepEqual(pids, Array.from({ length: 100 }, (_, i) => 150 + i), "the newest 100 are kept");
  const now = Date.now();
  log.record(entry(1, { at: now - 120_000, name: "old/one" }));
  log.record(entry(2, { at: now, name: "new/one" }));
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
  assert.deepEqual(log.query({ limit: 3 }).map((e) => e.pid), [17, 18, 19]);
  assert.deepEqual(log.query({ name: "odd", limit: 3 }).map((e) => e.pid), [15, 17, 19]);
  assert.deepEqual(log.query({ since: base + 1_500, limit: 100 }).map((e) => e.pid), [15, 16, 17, 18, 19]);
  assert.deepEqual(log.query({ since: base + 1_500, name: "even", limit: 100 }).map((e) => e.pid), [16, 18]);
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

test("the audit trail follows a quarantine: what was written stays with the quarantined copy, new entries go to the fresh database", (t) => {
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
  // Someone edits the row while the store is closed: the next open quarantines the database.
  const w = new Database(file);
  w.prepare("UPDATE secrets SET ciphertext = zeroblob(length(ciphertext))").run();
  w.close();
  const store = open();
  t.after(() => store.close());
  assert.equal(store.quarantined.length, 1);
  assert.deepEqual(store.audit.query({ limit: 10 }), [], "the fresh database starts with no entries");
  const q = new Database(store.quarantined[0]!.path, { readonly: true });
  assert.deepEqual((q.prepare("SELECT name FROM audit ORDER BY id").all() as { name: string }[]).map((r) => r.name), ["before/flushed", "written/at/close"]);
  q.close();
  store.audit.record(entry(3, { name: "after/reopen" }));
  store.close();
  const after = new Database(file, { readonly: true });
  assert.deepEqual((after.prepare("SELECT name FROM audit ORDER BY id").all() as { name: string }[]).map((r) => r.name), ["after/reopen"], "close writes what is buffered");
  after.close();
});
