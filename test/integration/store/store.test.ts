import assert from "node:assert/strict";
import fs from "node:fs";
import path from "node:path";
import { before, describe, test, type TestContext } from "node:test";
import Database from "better-sqlite3";
import { Envelope, KEK_BYTES } from "../../../src/crypto/envelope.js";
import { loadSodium, type Sodium } from "../../../src/crypto/sodium.js";
import { isIntegrityError } from "../../../src/errors.js";
import { createLogger } from "../../../src/log.js";
import { CacheDb } from "../../../src/store/database.js";
import { SecretStore, type BatchItem, type StoredLease } from "../../../src/store/store.js";
import { quarantineFiles } from "../../../src/store/quarantine.js";
import { SCHEMA_VERSION } from "../../../src/store/migrations.js";
import { RowDigest } from "../../../src/store/digest.js";
import { bindingMac, decodeDigest, encodeDigest, rowElement } from "../../../src/store/integrity.js";
import { AUDIT_SCHEMA } from "../../../src/store/audit.js";
import { assertNoLeaks, databaseBytes, planted } from "../../support/planted.js";
import { tmpDir } from "../../support/tmp.js";

const enc = new TextEncoder();
const dec = new TextDecoder();

let sodium: Sodium;
before(async () => {
  sodium = await loadSodium();
});

interface Fixture {
  readonly dataDir: string;
  readonly file: string;
  readonly kek: Uint8Array;
  /** Every value planted so far, for the leak checks. */
  readonly values: string[];
  /** A store on `file` with a fresh Envelope over a copy of `kek` (or of `otherKek`). */
  open(otherKek?: Uint8Array): SecretStore;
  /** Everything the stores of this fixture logged. */
  logs(): string;
  value(tag: string): string;
}

function fixture(t: TestContext): Fixture {
  const dir = tmpDir(t);
  const dataDir = path.join(dir, "data");
  fs.mkdirSync(dataDir, { mode: 0o700 });
  const file = path.join(dataDir, "cache.db");
  const kek = sodium.randombytes_buf(KEK_BYTES);
  let out = "";
  const logger = createLogger({ level: "debug", destination: { write: (s: string) => void (out += s) } });
  const stores: SecretStore[] = [];
  const values: string[] = [];
  t.after(() => {
    for (const s of stores) s.close();
    assertNoLeaks(out, "store logs", values);
  });
  return {
    dataDir,
    file,
    kek,
    values,
    open(otherKek) {
      const s = new SecretStore({ file, envelope: new Envelope(sodium, (otherKek ?? kek).slice()), logger });
      stores.push(s);
      return s;
    },
    logs: () => out,
    value(tag) {
      const v = planted(tag);
      values.push(v);
      return v;
    },
  };
}

function ok(name: string, value: string, at: number, sourceVersion?: string): BatchItem {
  return { name, ok: true, value: enc.encode(value), sourceVersion, at };
}

function failed(name: string, message: string, at: number, kind = "transient"): BatchItem {
  return { name, ok: false, kind, message, at };
}

/** Compares secret values without printing them on failure (test output is a log too). */
function sameValue(actual: string | undefined, expected: string | undefined, what = "value"): void {
  assert.ok(actual === expected, `${what}: got ${actual === undefined ? "nothing" : `${actual.length} bytes`}, not the expected value`);
}

function readText(store: SecretStore, name: string): string | undefined {
  const r = store.read(name);
  if (!r) return undefined;
  const s = dec.decode(r.value);
  r.value.fill(0);
  return s;
}

/** Rewrites a cache file as an older schema wrote it: the columns later migrations added are dropped. */
function asSchema(file: string, version: 2 | 3): void {
  const added = { 2: ["held", "origin", "lease_dek", "lease"], 3: ["lease_dek", "lease"] }[version];
  tamper(file, (db) => {
    db.exec(added.map((c) => `ALTER TABLE secrets DROP COLUMN ${c};`).join(" "));
    // Schema 2 made the audit table; 5 added its principal; 6 moved it to audit.db.
    db.exec(AUDIT_SCHEMA);
    db.exec("ALTER TABLE audit DROP COLUMN principal;");
    db.pragma(`user_version = ${version}`);
  });
}

/** Runs `fn` on a separate connection to the (closed or open) database, as an attacker with file access would. */
function tamper(file: string, fn: (db: Database.Database) => void): void {
  const db = new Database(file);
  try {
    fn(db);
  } finally {
    db.close();
  }
}

type RawRow = {
  name: string;
  version: number;
  source_version: string | null;
  wrapped_dek: Buffer;
  ciphertext: Buffer;
  value_mac: Buffer;
  changed_rev: number;
  changed_at: number;
  fetched_at: number;
};

function rawRow(db: Database.Database, name: string): RawRow {
  const r = db.prepare("SELECT * FROM secrets WHERE name = ?").get(name) as RawRow | undefined;
  assert.ok(r, `row ${name} exists`);
  return r;
}

function writeRow(db: Database.Database, r: RawRow): void {
  db.prepare(
    `UPDATE secrets SET version = ?, source_version = ?, wrapped_dek = ?, ciphertext = ?, value_mac = ?, changed_rev = ?, changed_at = ?, fetched_at = ? WHERE name = ?`,
  ).run(r.version, r.source_version, r.wrapped_dek, r.ciphertext, r.value_mac, r.changed_rev, r.changed_at, r.fetched_at, r.name);
}

function flipByte(b: Buffer, at: number): Buffer {
  const c = Buffer.from(b);
  c[at]! ^= 0x40;
  return c;
}

/** Three secrets synced, store closed; returns their names and values. */
function seeded(f: Fixture): Record<string, string> {
  const vals = { "app/a": f.value("a"), "app/b": f.value("b"), "app/c": f.value("c") };
  const s = f.open();
  s.apply(Object.entries(vals).map(([n, v]) => ok(n, v, 1000)));
  s.close();
  return vals;
}

/** The store was opened on a tampered file: it must have moved it aside and started empty. */
function assertQuarantinedAtOpen(f: Fixture, s: SecretStore, names: readonly string[], reason: RegExp): string {
  assert.equal(s.quarantined.length, 1, "one quarantine record");
  const rec = s.quarantined[0]!;
  assert.match(rec.reason, reason);
  assert.equal(path.dirname(rec.path), path.join(f.dataDir, "quarantine"));
  assert.ok(fs.existsSync(rec.path), `quarantined database ${rec.path} exists`);
  const reasonFile = rec.path.replace(/\.db$/, ".reason.txt");
  assert.ok(fs.existsSync(reasonFile), "reason file exists");
  assert.match(fs.readFileSync(reasonFile, "utf8"), reason);
  assert.ok(!Number.isNaN(Date.parse(rec.at)));
  // The store is fresh and empty: nothing from the tampered file is served.
  assert.deepEqual([...s.metas()], []);
  assert.equal(s.revision, 0);
  for (const n of names) {
    assert.equal(s.meta(n), undefined);
    assert.equal(s.read(n), undefined, `nothing is read for ${n}`);
    assert.equal(s.secretError(n), undefined);
  }
  assert.deepEqual([...s.providerStates.load()], []);
  // A new, working database took its place.
  assert.ok(fs.existsSync(f.file));
  assert.deepEqual(s.apply([ok("app/new", f.value("new"), 5000)]), ["app/new"]);
  assert.equal(s.meta("app/new")?.version, 1);
  assert.match(f.logs(), /cache database failed its checks/);
  return rec.path;
}

function quarantineDir(f: Fixture): string {
  return path.join(f.dataDir, "quarantine");
}

describe("SecretStore on a real SQLite file", () => {
  test("cache.db is opened with a 1 MiB page cache, no mmap, WAL and full sync (the footprint the README states)", (t) => {
    const f = fixture(t);
    const c = new CacheDb(f.file, createLogger({ level: "silent" }));
    c.open();
    t.after(() => c.close());
    assert.equal(c.db.pragma("cache_size", { simple: true }), -1024);
    assert.equal(c.db.pragma("mmap_size", { simple: true }), 0);
    assert.equal(c.db.pragma("journal_mode", { simple: true }), "wal");
    assert.equal(c.db.pragma("synchronous", { simple: true }), 2);
  });

  test("apply then read round-trips values and metadata", (t) => {
    const f = fixture(t);
    const s = f.open();
    assert.equal(s.revision, 0);
    assert.deepEqual(s.quarantined, []);
    const a = f.value("a");
    const b = f.value("b");
    const changes: [readonly string[], number][] = [];
    s.onChange((names, rev) => changes.push([names, rev]));
    const changed = s.apply([ok("app/a", a, 1000, "v7"), ok("app/b", b, 1001)]);
    assert.deepEqual(changed.sort(), ["app/a", "app/b"]);
    assert.equal(s.revision, 1);
    assert.deepEqual(changes, [[changed, 1]]);
    sameValue(readText(s, "app/a"), a);
    sameValue(readText(s, "app/b"), b);
    assert.equal(s.read("app/missing"), undefined);
    const m = s.meta("app/a")!;
    assert.deepEqual(
      { name: m.name, version: m.version, sourceVersion: m.sourceVersion, changedRev: m.changedRev, changedAt: m.changedAt, fetchedAt: m.fetchedAt },
      { name: "app/a", version: 1, sourceVersion: "v7", changedRev: 1, changedAt: 1000, fetchedAt: 1000 },
    );
    assert.equal(s.meta("app/b")!.sourceVersion, null);
    // Binary values survive unchanged.
    const bin = sodium.randombytes_buf(3000);
    s.apply([{ name: "app/bin", ok: true, value: bin.slice(), sourceVersion: undefined, at: 1002 }]);
    assert.deepEqual(s.read("app/bin")!.value, bin);
  });

  test("an unchanged value only moves fetched_at; the version stays", (t) => {
    const f = fixture(t);
    const s = f.open();
    const v = f.value("same");
    s.apply([ok("app/x", v, 1000, "s1")]);
    const before = s.meta("app/x")!;
    const rowBefore = (() => {
      let r: RawRow | undefined;
      tamper(f.file, (db) => (r = rawRow(db, "app/x")));
      return r!;
    })();
    let notified = 0;
    s.onChange(() => notified++);
    assert.deepEqual(s.apply([ok("app/x", v, 2000, "s2")]), []);
    const after = s.meta("app/x")!;
    assert.equal(after.version, 1);
    assert.equal(after.fetchedAt, 2000);
    assert.equal(after.changedAt, 1000);
    assert.equal(after.changedRev, before.changedRev);
    assert.equal(after.sourceVersion, "s2");
    assert.equal(s.revision, 1, "revision does not move");
    assert.equal(notified, 0, "no change notification");
    sameValue(readText(s, "app/x"), v);
    // On disk: the same ciphertext and DEK, only fetched_at/source_version moved.
    let rowAfter: RawRow | undefined;
    tamper(f.file, (db) => (rowAfter = rawRow(db, "app/x")));
    assert.deepEqual(rowAfter!.ciphertext, rowBefore.ciphertext);
    assert.deepEqual(rowAfter!.wrapped_dek, rowBefore.wrapped_dek);
    assert.equal(rowAfter!.fetched_at, 2000);
    assert.equal(rowAfter!.version, 1);
    s.close();
    const r = f.open();
    assert.equal(r.meta("app/x")!.fetchedAt, 2000, "fetched_at persisted");
    assert.equal(r.meta("app/x")!.version, 1);
    assert.deepEqual(r.quarantined, [], "a touch keeps the digest valid");
  });

  test("a changed value bumps the version and the revision, with a fresh DEK", (t) => {
    const f = fixture(t);
    const s = f.open();
    const v1 = f.value("v1");
    const v2 = f.value("v2");
    const y = f.value("y");
    s.apply([ok("app/x", v1, 1000), ok("app/y", y, 1000)]);
    const changes: [readonly string[], number][] = [];
    s.onChange((names, rev) => changes.push([names, rev]));
    assert.deepEqual(s.apply([ok("app/x", v2, 2000), ok("app/y", y, 2000)]), ["app/x"]);
    const m = s.meta("app/x")!;
    assert.equal(m.version, 2);
    assert.equal(m.changedRev, 2);
    assert.equal(m.changedAt, 2000);
    assert.equal(s.revision, 2);
    assert.deepEqual(changes, [[["app/x"], 2]]);
    sameValue(readText(s, "app/x"), v2);
    assert.equal(s.meta("app/y")!.version, 1);
    // Back to the first value is a change too (version 3), not a return to version 1.
    s.apply([ok("app/x", v1, 3000)]);
    assert.equal(s.meta("app/x")!.version, 3);
    sameValue(readText(s, "app/x"), v1);
    s.close();
    const r = f.open();
    assert.deepEqual(r.quarantined, []);
    assert.equal(r.revision, 3);
    sameValue(readText(r, "app/x"), v1);
    assert.equal(r.meta("app/x")!.version, 3);
  });

  test("errors are recorded per secret and keep the cached value", (t) => {
    const f = fixture(t);
    const s = f.open();
    const v = f.value("kept");
    s.apply([ok("app/x", v, 1000)]);
    assert.deepEqual(s.apply([failed("app/x", "backend said 500", 2000), failed("app/never", "does not exist", 2000, "permanent")]), []);
    sameValue(readText(s, "app/x"), v, "cached value kept");
    assert.equal(s.meta("app/x")!.version, 1);
    assert.equal(s.meta("app/x")!.fetchedAt, 1000, "an error does not count as a fetch");
    assert.deepEqual(s.secretError("app/x"), { kind: "transient", message: "backend said 500", at: 2000 });
    assert.equal(s.meta("app/never"), undefined);
    assert.equal(s.read("app/never"), undefined);
    assert.deepEqual(s.secretError("app/never"), { kind: "permanent", message: "does not exist", at: 2000 });
    s.close();
    // Errors survive a restart.
    const r = f.open();
    assert.deepEqual(r.quarantined, []);
    assert.deepEqual(r.secretError("app/x"), { kind: "transient", message: "backend said 500", at: 2000 });
    sameValue(readText(r, "app/x"), v);
    // A later success clears the error (and an unchanged value still does).
    r.apply([ok("app/x", v, 3000)]);
    assert.equal(r.secretError("app/x"), undefined);
    assert.equal(r.meta("app/x")!.fetchedAt, 1000, "a confirmation soon after the recorded one is not written (see the next test)");
    r.close();
    assert.equal(f.open().secretError("app/x"), undefined, "the cleared error stays cleared on disk");
  });

  test("confirmations of an unchanged value are written only once the recorded one is an hour old (flash wears out)", (t) => {
    const f = fixture(t);
    const s = f.open();
    const v = f.value("same");
    const t0 = 1_000_000;
    s.apply([ok("app/x", v, t0)]);
    const raw = () => {
      let r: RawRow | undefined;
      tamper(f.file, (db) => (r = rawRow(db, "app/x")));
      return r!;
    };
    const changes = (s as unknown as { revision: number }).revision;
    for (const dt of [60_000, 30 * 60_000, 59 * 60_000]) {
      assert.deepEqual(s.apply([ok("app/x", v, t0 + dt)]), []);
      assert.equal(raw().fetched_at, t0, `not written ${dt / 60_000} min after`);
      assert.equal(s.meta("app/x")!.fetchedAt, t0);
    }
    s.apply([ok("app/x", v, t0 + 61 * 60_000)]);
    assert.equal(raw().fetched_at, t0 + 61 * 60_000, "written once an hour old");
    assert.equal(s.meta("app/x")!.fetchedAt, t0 + 61 * 60_000);
    assert.equal(s.revision, changes, "a confirmation is no change");
    // A clock behind the recorded time is written at once: the record follows the clock.
    s.apply([ok("app/x", v, t0)]);
    assert.equal(raw().fetched_at, t0);
    s.close();
    const strict = new SecretStore({
      file: f.file,
      envelope: new Envelope(sodium, f.kek.slice()),
      logger: createLogger({ level: "silent" }),
      confirmWriteMs: 0,
    });
    t.after(() => strict.close());
    strict.apply([ok("app/x", v, t0 + 1_000)]);
    assert.equal(strict.meta("app/x")!.fetchedAt, t0 + 1_000, "confirmWriteMs 0 writes every confirmation");
  });

  test("close and reopen restores values, metadata, revision, errors and provider state", (t) => {
    const f = fixture(t);
    const s = f.open();
    const vals = Object.fromEntries(Array.from({ length: 20 }, (_, i) => [`app/s${i}`, f.value(`s${i}`)]));
    s.apply(Object.entries(vals).map(([n, v]) => ok(n, v, 1000, `src-${n}`)));
    s.apply([ok("app/s3", f.value("s3-new"), 2000), failed("app/s4", "timeout", 2000)]);
    vals["app/s3"] = f.values[f.values.length - 1]!;
    s.providerStates.save("vault", { lastSuccess: 2000, lastError: "x", lastErrorKind: "transient", lastErrorAt: 1500, failures: 0 });
    const metas = new Map([...s.metas()].map((m) => [m.name, { ...m }]));
    s.close();
    const r = f.open();
    assert.deepEqual(r.quarantined, []);
    assert.equal(r.revision, 2);
    assert.equal([...r.metas()].length, 20);
    for (const [n, v] of Object.entries(vals)) {
      sameValue(readText(r, n), v, n);
      assert.deepEqual({ ...r.meta(n)! }, metas.get(n));
    }
    assert.equal(r.meta("app/s3")!.version, 2);
    assert.equal(r.secretError("app/s4")?.message, "timeout");
    assert.deepEqual(r.providerStates.load().get("vault"), { lastSuccess: 2000, lastError: "x", lastErrorKind: "transient", lastErrorAt: 1500, failures: 0 });
    // And it keeps working after the reopen.
    r.apply([ok("app/s5", f.value("s5-new"), 3000)]);
    assert.equal(r.revision, 3);
    r.close();
    assert.deepEqual(f.open().quarantined, []);
  });

  test("the database files never hold a plaintext value, open or closed", (t) => {
    const f = fixture(t);
    const s = f.open();
    const names = Array.from({ length: 50 }, (_, i) => `app/leak${i}`);
    s.apply(names.map((n) => ok(n, f.value(n) + "x".repeat(200), 1000)));
    s.apply(names.slice(0, 10).map((n) => ok(n, f.value(`${n}-v2`), 2000)));
    s.apply([failed("app/leak11", "err", 3000)]);
    // While open the batches sit in the WAL.
    assert.ok(fs.existsSync(f.file + "-wal"), "WAL mode");
    assertNoLeaks(databaseBytes(f.file), "cache.db + WAL while open", f.values);
    for (const n of names) assert.ok(readText(s, n)!.startsWith("PLANTED-"));
    s.close();
    assertNoLeaks(databaseBytes(f.file), "cache.db after close", f.values);
    // Names are stored in clear (they are not secret); values are not.
    assert.ok(databaseBytes(f.file).toString("latin1").includes("app/leak0"));
    assert.equal(fs.statSync(f.file).mode & 0o777, 0o600);
  });

  describe("tampering between close and reopen is detected at open and quarantined", () => {
    test("(a) a flipped byte in a ciphertext", (t) => {
      const f = fixture(t);
      const vals = seeded(f);
      tamper(f.file, (db) => {
        const r = rawRow(db, "app/b");
        writeRow(db, { ...r, ciphertext: flipByte(r.ciphertext, r.ciphertext.length - 5) });
      });
      const s = f.open();
      const q = assertQuarantinedAtOpen(f, s, Object.keys(vals), /rows were edited, swapped, removed or restored/);
      // The quarantined file is the tampered database, rows intact for inspection.
      tamper(q, (db) => assert.equal((db.prepare("SELECT count(*) AS n FROM secrets").get() as { n: number }).n, 3));
    });

    test("(a') a flipped byte in a wrapped DEK", (t) => {
      const f = fixture(t);
      const vals = seeded(f);
      tamper(f.file, (db) => {
        const r = rawRow(db, "app/a");
        writeRow(db, { ...r, wrapped_dek: flipByte(r.wrapped_dek, 30) });
      });
      assertQuarantinedAtOpen(f, f.open(), Object.keys(vals), /rows were edited/);
    });

    test("(b) the ciphertext and wrapped DEK of two names swapped", (t) => {
      const f = fixture(t);
      const vals = seeded(f);
      tamper(f.file, (db) => {
        const a = rawRow(db, "app/a");
        const c = rawRow(db, "app/c");
        db.transaction(() => {
          writeRow(db, { ...a, wrapped_dek: c.wrapped_dek, ciphertext: c.ciphertext, value_mac: c.value_mac });
          writeRow(db, { ...c, wrapped_dek: a.wrapped_dek, ciphertext: a.ciphertext, value_mac: a.value_mac });
        })();
      });
      assertQuarantinedAtOpen(f, f.open(), Object.keys(vals), /swapped/);
    });

    test("(b') two names swapped outright (name column exchanged)", (t) => {
      const f = fixture(t);
      const vals = seeded(f);
      tamper(f.file, (db) => {
        db.transaction(() => {
          db.prepare("UPDATE secrets SET name = 'tmp' WHERE name = 'app/a'").run();
          db.prepare("UPDATE secrets SET name = 'app/a' WHERE name = 'app/b'").run();
          db.prepare("UPDATE secrets SET name = 'app/b' WHERE name = 'tmp'").run();
        })();
      });
      assertQuarantinedAtOpen(f, f.open(), Object.keys(vals), /swapped/);
    });

    /** Seeds the store, keeps a copy of app/b's row, then updates app/b to version 2. */
    function copiedThenUpdated(f: ReturnType<typeof fixture>): { vals: ReturnType<typeof seeded>; old: RawRow } {
      const vals = seeded(f);
      let old: RawRow | undefined;
      tamper(f.file, (db) => (old = rawRow(db, "app/b")));
      const s = f.open();
      s.apply([ok("app/b", f.value("b-v2"), 2000)]);
      assert.equal(s.meta("app/b")!.version, 2);
      s.close();
      return { vals, old: old! };
    }

    test("(c) an older copy of one row restored after it was updated", (t) => {
      const f = fixture(t);
      const { vals, old } = copiedThenUpdated(f);
      tamper(f.file, (db) => writeRow(db, old));
      assertQuarantinedAtOpen(f, f.open(), Object.keys(vals), /restored from an older copy/);
    });

    test("(c') an older row relabelled with the current version number", (t) => {
      const f = fixture(t);
      const { vals, old } = copiedThenUpdated(f);
      tamper(f.file, (db) => writeRow(db, { ...old, version: 2, changed_rev: 2 }));
      assertQuarantinedAtOpen(f, f.open(), Object.keys(vals), /rows were edited/);
    });

    test("(d) a row deleted", (t) => {
      const f = fixture(t);
      const vals = seeded(f);
      tamper(f.file, (db) => db.prepare("DELETE FROM secrets WHERE name = ?").run("app/c"));
      assertQuarantinedAtOpen(f, f.open(), Object.keys(vals), /removed/);
    });

    test("(d') a row added (a copy of another under a new name)", (t) => {
      const f = fixture(t);
      const vals = seeded(f);
      tamper(f.file, (db) =>
        db
          .prepare(
            "INSERT INTO secrets (name, version, source_version, wrapped_dek, ciphertext, value_mac, changed_rev, changed_at, fetched_at) SELECT 'app/z', version, source_version, wrapped_dek, ciphertext, value_mac, changed_rev, changed_at, fetched_at FROM secrets WHERE name = 'app/a'",
          )
          .run(),
      );
      assertQuarantinedAtOpen(f, f.open(), [...Object.keys(vals), "app/z"], /rows do not match the digest/);
    });

    test("(d'') the digest record or the key check removed", (t) => {
      const f = fixture(t);
      const vals = seeded(f);
      tamper(f.file, (db) => db.prepare("DELETE FROM meta WHERE key = 'digest2'").run());
      assertQuarantinedAtOpen(f, f.open(), Object.keys(vals), /no digest record/);

      const g = fixture(t);
      const gvals = seeded(g);
      tamper(g.file, (db) => db.prepare("DELETE FROM meta WHERE key = 'kek_check'").run());
      assertQuarantinedAtOpen(g, g.open(), Object.keys(gvals), /no key check/);

      const h = fixture(t);
      const hvals = seeded(h);
      tamper(h.file, (db) => {
        const row = db.prepare("SELECT value FROM meta WHERE key = 'digest2'").get() as { value: Buffer };
        db.prepare("UPDATE meta SET value = ? WHERE key = 'digest2'").run(flipByte(row.value, 3));
      });
      assertQuarantinedAtOpen(h, h.open(), Object.keys(hvals), /digest record fails authentication/);
    });

    test("(e) the file overwritten with garbage", (t) => {
      const f = fixture(t);
      const vals = seeded(f);
      const garbage = Buffer.from(sodium.randombytes_buf(8192));
      fs.writeFileSync(f.file, garbage);
      const q = assertQuarantinedAtOpen(f, f.open(), Object.keys(vals), /not a database|SQLITE_NOTADB|file is not/i);
      assert.deepEqual(fs.readFileSync(q), garbage, "the garbage was moved aside as is");
    });

    test("(e') the file truncated to half its size", (t) => {
      const f = fixture(t);
      const s = f.open();
      // Enough rows for several pages, so half the file loses b-tree pages.
      s.apply(Array.from({ length: 200 }, (_, i) => ok(`app/t${i}`, f.value(`t${i}`) + "y".repeat(500), 1000)));
      s.close();
      const size = fs.statSync(f.file).size;
      assert.ok(size > 8 * 4096, `database is ${size} bytes`);
      fs.truncateSync(f.file, Math.floor(size / 2 / 4096) * 4096);
      assertQuarantinedAtOpen(f, f.open(), ["app/t0", "app/t199"], /malformed|integrity check|SQLITE_CORRUPT|rows/i);
    });

    test("a wrong KEK at open quarantines with a reason naming a different key", (t) => {
      const f = fixture(t);
      const vals = seeded(f);
      const other = sodium.randombytes_buf(KEK_BYTES);
      const s = f.open(other);
      assertQuarantinedAtOpen(f, s, Object.keys(vals), /different cache key/);
      s.close();
      // The original KEK does not resurrect the old rows either: the new file belongs to the other key.
      const back = f.open();
      assert.equal(back.quarantined.length, 1);
      assert.match(back.quarantined[0]!.reason, /different cache key/);
      for (const n of Object.keys(vals)) assert.equal(back.read(n), undefined);
      assert.equal(fs.readdirSync(quarantineDir(f)).filter((n) => n.endsWith(".reason.txt")).length, 2, "each quarantine keeps its own files");
    });

    test("an untouched database is not quarantined", (t) => {
      const f = fixture(t);
      const vals = seeded(f);
      const s = f.open();
      assert.deepEqual(s.quarantined, []);
      assert.ok(!fs.existsSync(quarantineDir(f)));
      for (const [n, v] of Object.entries(vals)) sameValue(readText(s, n), v);
    });
  });

  describe("tampering while the store is open", () => {
    // The store serves the sealed copy it holds in memory, as it wrote it: an edit to
    // the file meanwhile is never served, and the next open finds it (quarantine).
    function runtimeTamper(t: TestContext, edit: (db: Database.Database) => void): void {
      const f = fixture(t);
      const s = f.open();
      const vals = { "app/a": f.value("a"), "app/b": f.value("b") };
      s.apply(Object.entries(vals).map(([n, v]) => ok(n, v, 1000)));
      const a2 = f.value("a2");
      s.apply([ok("app/a", a2, 2000)]);
      tamper(f.file, edit);
      for (let i = 0; i < 3; i++) {
        sameValue(readText(s, "app/a"), a2, "the value as the store wrote it, never the edited row");
        sameValue(readText(s, "app/b"), vals["app/b"]);
      }
      assert.deepEqual(s.quarantined, [], "nothing read from the file at run time");
      s.close();
      const r = f.open();
      assert.equal(r.quarantined.length, 1, "caught at the next open");
      assert.match(r.quarantined[0]!.reason, /do not match the digest|failed authentication|integrity check/);
      assert.ok(fs.existsSync(r.quarantined[0]!.path.replace(/\.db$/, ".reason.txt")));
      assert.equal(r.read("app/a"), undefined, "never served");
      assert.deepEqual([...r.metas()], []);
    }

    test("a flipped ciphertext byte: the sealed copy in memory is served; quarantined at the next open", (t) => {
      runtimeTamper(t, (db) => {
        const r = rawRow(db, "app/a");
        writeRow(db, { ...r, ciphertext: flipByte(r.ciphertext, 30) });
      });
    });

    test("another row's ciphertext swapped in: never served; quarantined at the next open", (t) => {
      runtimeTamper(t, (db) => {
        const a = rawRow(db, "app/a");
        const b = rawRow(db, "app/b");
        writeRow(db, { ...a, wrapped_dek: b.wrapped_dek, ciphertext: b.ciphertext });
      });
    });

    test("an older version of the row restored: never served; quarantined at the next open", (t) => {
      const f = fixture(t);
      const s = f.open();
      s.apply([ok("app/a", f.value("a1"), 1000)]);
      let old: RawRow | undefined;
      tamper(f.file, (db) => (old = rawRow(db, "app/a")));
      const a2 = f.value("a2");
      s.apply([ok("app/a", a2, 2000)]);
      tamper(f.file, (db) => writeRow(db, old!));
      sameValue(readText(s, "app/a"), a2);
      s.close();
      const r = f.open();
      assert.equal(r.quarantined.length, 1);
      assert.equal(r.read("app/a"), undefined);
    });

    test("a deleted row: still served from memory; quarantined at the next open", (t) => {
      runtimeTamper(t, (db) => db.prepare("DELETE FROM secrets WHERE name = 'app/a'").run());
    });

    test("a write after the file was edited keeps the digest the store's: the edit is still caught at the next open", (t) => {
      const f = fixture(t);
      const s = f.open();
      s.apply([ok("app/a", f.value("a"), 1000), ok("app/b", f.value("b"), 1000)]);
      tamper(f.file, (db) => {
        const r = rawRow(db, "app/a");
        writeRow(db, { ...r, ciphertext: flipByte(r.ciphertext, 30) });
      });
      s.apply([ok("app/b", f.value("b2"), 2000)]);
      s.close();
      assert.equal(f.open().quarantined.length, 1);
    });

    test("a row replayed from a quarantined database (same name, same version, same KEK) is refused", (t) => {
      const f = fixture(t);
      const s = f.open();
      const oldValue = f.value("before-quarantine");
      s.apply([ok("app/a", oldValue, 1000)]);
      s.close();
      // Quarantine the first database (a deleted digest record), then sync the same name again.
      tamper(f.file, (db) => db.prepare("DELETE FROM meta WHERE key = 'digest2'").run());
      const r = f.open();
      assert.equal(r.quarantined.length, 1);
      const newValue = f.value("after-quarantine");
      r.apply([ok("app/a", newValue, 2000)]);
      assert.equal(r.meta("app/a")!.version, 1, "versions restart in the fresh database");
      // Copy the old row, valid under the same KEK with the same name and version, into the live file.
      let old: RawRow | undefined;
      tamper(r.quarantined[0]!.path, (db) => (old = rawRow(db, "app/a")));
      assert.equal(old!.version, 1);
      tamper(f.file, (db) => writeRow(db, old!));
      // (No values in assertion messages: test output is a log too.)
      assert.ok(readText(r, "app/a") === newValue, "the live value is served, not the replayed one");
      r.close();
      const again = f.open();
      assert.equal(again.quarantined.length, 1, "the replayed row is caught at the next open");
      assert.equal(again.read("app/a"), undefined);
    });
  });

  describe("errors that are not corruption are thrown, not quarantined", () => {
    test("the database path is a directory", (t) => {
      const f = fixture(t);
      fs.mkdirSync(f.file);
      assert.throws(
        () => f.open(),
        (e: unknown) => !isIntegrityError(e) && e instanceof Error,
      );
      assert.ok(fs.statSync(f.file).isDirectory(), "left in place");
      assert.ok(!fs.existsSync(quarantineDir(f)), "nothing quarantined");
    });

    test("the data dir does not exist", (t) => {
      const f = fixture(t);
      fs.rmSync(f.dataDir, { recursive: true });
      assert.throws(
        () => f.open(),
        (e: unknown) => !isIntegrityError(e) && e instanceof Error,
      );
      assert.ok(!fs.existsSync(f.dataDir), "nothing was created");
    });

    test("a schema newer than this build (a downgrade) is refused without moving the file", (t) => {
      const f = fixture(t);
      const vals = seeded(f);
      tamper(f.file, (db) => db.pragma("user_version = 99"));
      assert.throws(() => f.open(), /newer than this sealcache/);
      assert.ok(!fs.existsSync(quarantineDir(f)), "nothing quarantined");
      // Put the version back: the data is all still there.
      tamper(f.file, (db) => db.pragma(`user_version = ${SCHEMA_VERSION}`));
      const s = f.open();
      assert.deepEqual(s.quarantined, []);
      for (const [n, v] of Object.entries(vals)) sameValue(readText(s, n), v);
    });
  });
});

describe("quarantineFiles", () => {
  test("two quarantines in the same millisecond keep both databases and both reasons", (t) => {
    const dir = tmpDir(t);
    const file = path.join(dir, "cache.db");
    t.mock.timers.enable({ apis: ["Date"], now: Date.parse("2030-01-02T03:04:05.678Z") });
    fs.writeFileSync(file, "first");
    fs.writeFileSync(file + "-wal", "first-wal");
    const a = quarantineFiles(file, "first reason");
    fs.writeFileSync(file, "second");
    const b = quarantineFiles(file, "second reason");
    assert.equal(a.at, b.at, "same instant");
    assert.notEqual(a.path, b.path);
    assert.equal(fs.readFileSync(a.path, "utf8"), "first");
    assert.equal(fs.readFileSync(a.path + "-wal", "utf8"), "first-wal");
    assert.equal(fs.readFileSync(b.path, "utf8"), "second");
    assert.ok(!fs.existsSync(b.path + "-wal"), "the second had no WAL");
    assert.match(fs.readFileSync(a.path.replace(/\.db$/, ".reason.txt"), "utf8"), /first reason/);
    assert.match(fs.readFileSync(b.path.replace(/\.db$/, ".reason.txt"), "utf8"), /second reason/);
    assert.ok(!fs.existsSync(file), "the live path is free for a fresh database");
  });
});

describe("what a row's backend version is bound to (schema 3: held, origin)", () => {
  function bound(name: string, value: string, at: number, sourceVersion: string, held: string, origin?: string): BatchItem {
    return { name, ok: true, value: enc.encode(value), sourceVersion, at, held, origin };
  }

  /** A configured secret with a trusted version and a parameter found under a hierarchy, store closed. */
  function seededBound(f: Fixture): void {
    const s = f.open();
    s.apply([
      ok("legacy/a", f.value("legacy"), 500, "v9"),
      bound("app/x", f.value("x"), 1000, "3", "fp-x"),
      bound("app/prod/db", f.value("db"), 1000, "7", "fp-h", "app/prod"),
    ]);
    s.close();
  }

  test("survives a reopen; a touch that moves only the binding keeps the revision and the digest valid", (t) => {
    const f = fixture(t);
    seededBound(f);
    const s = f.open();
    assert.deepEqual(s.quarantined, []);
    const x = s.meta("app/x")!;
    assert.deepEqual([x.sourceVersion, x.held, x.origin], ["3", "fp-x", null]);
    const db = s.meta("app/prod/db")!;
    assert.deepEqual([db.sourceVersion, db.held, db.origin], ["7", "fp-h", "app/prod"]);
    assert.deepEqual([s.meta("legacy/a")!.held, s.meta("legacy/a")!.origin], [null, null], "written without a binding");
    const rev = s.revision;
    const xv = readText(s, "app/x")!;
    assert.deepEqual(s.apply([bound("app/x", xv, 2000, "4", "fp-x2")]), [], "same value: no change");
    assert.equal(s.revision, rev, "the revision moves with values only");
    s.close();
    const r = f.open();
    assert.deepEqual(r.quarantined, []);
    assert.deepEqual([r.meta("app/x")!.sourceVersion, r.meta("app/x")!.held], ["4", "fp-x2"]);
  });

  test("a removed name is deleted with its error, announced, and leaves the digest valid", (t) => {
    const f = fixture(t);
    seededBound(f);
    const s = f.open();
    s.apply([failed("app/prod/db", "boom", 1500, "permanent")]);
    const seen: (readonly string[])[] = [];
    s.onChange((names) => seen.push(names));
    const rev = s.revision;
    assert.deepEqual(s.apply([], { removed: ["app/prod/db", "never/there"] }), ["app/prod/db"]);
    assert.deepEqual(seen, [["app/prod/db"]]);
    assert.equal(s.revision, rev + 1);
    assert.equal(s.meta("app/prod/db"), undefined);
    assert.equal(s.read("app/prod/db"), undefined);
    assert.equal(s.secretError("app/prod/db"), undefined);
    s.close();
    const r = f.open();
    assert.deepEqual(r.quarantined, []);
    assert.equal(r.meta("app/prod/db"), undefined);
    sameValue(readText(r, "app/x"), f.values[1]);
  });

  const edits: [string, (db: Database.Database) => void][] = [
    [
      "a bound source_version edited (to skip fetching a rotated value)",
      (db) => db.prepare("UPDATE secrets SET source_version = '4' WHERE name = 'app/x'").run(),
    ],
    ["held edited (to trust a version under another config)", (db) => db.prepare("UPDATE secrets SET held = 'fp-other' WHERE name = 'app/x'").run()],
    [
      "origin set on a configured secret's row (to forge a hierarchy member)",
      (db) => db.prepare("UPDATE secrets SET origin = 'app' WHERE name = 'app/x'").run(),
    ],
    ["origin moved to another hierarchy", (db) => db.prepare("UPDATE secrets SET origin = 'app' WHERE name = 'app/prod/db'").run()],
    [
      "held and origin cleared (to pass as a row from before schema 3)",
      (db) => db.prepare("UPDATE secrets SET held = NULL, origin = NULL WHERE name = 'app/prod/db'").run(),
    ],
    ["a binding added to a row written without one", (db) => db.prepare("UPDATE secrets SET held = 'fp-x' WHERE name = 'legacy/a'").run()],
  ];
  for (const [what, edit] of edits) {
    test(`${what}: quarantined at open`, (t) => {
      const f = fixture(t);
      seededBound(f);
      tamper(f.file, edit);
      assertQuarantinedAtOpen(f, f.open(), ["app/x", "app/prod/db", "legacy/a"], /rows do not match the digest/);
    });
  }

  test("a database from schema 2 opens: its rows keep their digest and are bound at their next sync", (t) => {
    const f = fixture(t);
    const v = f.value("old");
    const s = f.open();
    s.apply([ok("app/old", v, 1000, "5")]);
    s.close();
    asSchema(f.file, 2);
    const r = f.open();
    assert.deepEqual(r.quarantined, []);
    assert.deepEqual([r.meta("app/old")!.held, r.meta("app/old")!.sourceVersion], [null, "5"]);
    r.apply([{ name: "app/old", ok: true, value: enc.encode(v), sourceVersion: "5", at: 2000, held: "fp" }]);
    r.close();
    const again = f.open();
    assert.deepEqual(again.quarantined, []);
    assert.equal(again.meta("app/old")!.held, "fp");
    assert.equal(again.meta("app/old")!.version, 1);
  });
});

describe("digest format 1 (a row MAC and a binding per row) is checked and upgraded to format 2 at open", () => {
  function bound(name: string, value: string, at: number, sourceVersion: string, held: string, origin?: string): BatchItem {
    return { name, ok: true, value: enc.encode(value), sourceVersion, at, held, origin };
  }

  /** Rewrites the digest as format 1 over the rows on disk, as the previous version wrote it. */
  function asDigestV1(f: Fixture, edit?: (db: Database.Database) => void): void {
    const env = new Envelope(sodium, f.kek.slice());
    tamper(f.file, (db) => {
      const head = db.prepare("SELECT value FROM meta WHERE key = 'digest2'").get() as { value: Buffer };
      const { generation } = decodeDigest(env, head.value);
      const digest = new RowDigest();
      type Row = RawRow & { held: string | null; origin: string | null };
      for (const r of db.prepare("SELECT * FROM secrets").all() as Row[]) {
        digest.toggle(rowElement(env, r.name, r.version, r.wrapped_dek, r.ciphertext));
        const b = bindingMac(env, r.name, r.version, { sourceVersion: r.source_version, held: r.held, origin: r.origin, sealedLease: null });
        if (b) digest.toggle(b);
      }
      db.prepare("DELETE FROM meta WHERE key = 'digest2'").run();
      db.prepare("INSERT INTO meta (key, value) VALUES ('digest', ?)").run(encodeDigest(env, generation, digest.acc, 1));
      edit?.(db);
    });
  }

  test("a format 1 cache opens with every value, is rewritten as format 2 and opens again", (t) => {
    const f = fixture(t);
    const vals = { "app/a": f.value("a"), "app/x": f.value("x"), "app/prod/db": f.value("db") };
    const s = f.open();
    s.apply([
      ok("app/a", vals["app/a"], 1000),
      bound("app/x", vals["app/x"], 1000, "3", "fp-x"),
      bound("app/prod/db", vals["app/prod/db"], 1000, "7", "fp-h", "app/prod"),
    ]);
    const revision = s.revision;
    s.close();
    asDigestV1(f);
    const r = f.open();
    assert.deepEqual(r.quarantined, []);
    for (const [n, v] of Object.entries(vals)) sameValue(readText(r, n), v, n);
    assert.equal(r.revision, revision);
    r.close();
    tamper(f.file, (db) => {
      const keys = (db.prepare("SELECT key FROM meta WHERE key LIKE 'digest%'").all() as { key: string }[]).map((k) => k.key);
      assert.deepEqual(keys, ["digest2"], "format 1 record replaced by format 2");
    });
    const again = f.open();
    assert.deepEqual(again.quarantined, []);
    sameValue(readText(again, "app/x"), vals["app/x"]);
  });

  test("a format 1 cache with an edited binding is quarantined, not upgraded", (t) => {
    const f = fixture(t);
    const s = f.open();
    s.apply([bound("app/x", f.value("x"), 1000, "3", "fp-x")]);
    s.close();
    asDigestV1(f, (db) => db.prepare("UPDATE secrets SET held = 'fp-forged' WHERE name = 'app/x'").run());
    assertQuarantinedAtOpen(f, f.open(), ["app/x"], /rows do not match the digest/);
  });

  test("a format 2 record relabelled as format 1 fails authentication", (t) => {
    const f = fixture(t);
    seeded(f);
    tamper(f.file, (db) => db.prepare("UPDATE meta SET key = 'digest' WHERE key = 'digest2'").run());
    assertQuarantinedAtOpen(f, f.open(), ["app/a", "app/b", "app/c"], /digest record fails authentication/);
  });
});

describe("the lease a value is held under (schema 4: sealed with the row, bound in the digest)", () => {
  function leaseFor(f: Fixture, tag: string, expiresAt: number): StoredLease {
    const id = `database/creds/edge/${f.value(`lease-${tag}`)}`;
    return { id, duration: 60_000, expiresAt, renewable: true };
  }
  function leased(name: string, value: string, at: number, sourceVersion: string, lease: StoredLease | undefined): BatchItem {
    return { name, ok: true, value: enc.encode(value), sourceVersion, at, held: "fp-" + name, lease };
  }
  /** Two leased secrets and one without a lease, store closed; returns the leases. */
  function seededLeases(f: Fixture): { a: StoredLease; b: StoredLease } {
    const a = leaseFor(f, "a", 100_000);
    const b = leaseFor(f, "b", 100_000);
    const s = f.open();
    s.apply([leased("db/a", f.value("a"), 1000, "lease:a", a), leased("db/b", f.value("b"), 1000, "lease:b", b), bound3("app/kv", f.value("kv"))]);
    s.close();
    return { a, b };
  }
  function bound3(name: string, value: string): BatchItem {
    return { name, ok: true, value: enc.encode(value), sourceVersion: "3", at: 1000, held: "fp-kv" };
  }

  test("sealed with the value (never in clear on disk), kept across a reopen, moved by a renewal, dropped with a value that has none", (t) => {
    const f = fixture(t);
    const { a, b } = seededLeases(f);
    assertNoLeaks(databaseBytes(f.file), "cache.db holding leases", f.values);
    const s = f.open();
    assert.deepEqual(s.quarantined, []);
    assert.deepEqual(s.lease("db/a"), a);
    assert.deepEqual(s.lease("db/b"), b);
    assert.equal(s.meta("db/a")!.leased, true);
    assert.equal(s.meta("app/kv")!.leased, false);
    assert.equal(s.lease("app/kv"), undefined);
    assert.equal(s.lease("never/there"), undefined);

    // A renewal: the same value, the same lease with a later expiry. Only the row's binding moves.
    const rev = s.revision;
    const renewed = { ...a, expiresAt: 200_000 };
    assert.deepEqual(s.apply([leased("db/a", readText(s, "db/a")!, 2000, "lease:a", renewed)]), []);
    assert.equal(s.revision, rev);
    assert.deepEqual(s.lease("db/a"), renewed);
    assert.equal(s.meta("db/a")!.version, 1);
    s.close();
    const r = f.open();
    assert.deepEqual(r.quarantined, []);
    assert.deepEqual(r.lease("db/a"), renewed);

    // Replaced: a new value under a new lease.
    const next = leaseFor(f, "a2", 300_000);
    assert.deepEqual(r.apply([leased("db/a", f.value("a2"), 3000, "lease:a2", next)]), ["db/a"]);
    assert.equal(r.meta("db/a")!.version, 2);
    assert.deepEqual(r.lease("db/a"), next);
    // The same value confirmed without a lease (the config now names a plain read): the lease is dropped.
    assert.deepEqual(r.apply([leased("db/b", readText(r, "db/b")!, 3000, "lease:b", undefined)]), []);
    assert.equal(r.meta("db/b")!.leased, false);
    assert.equal(r.lease("db/b"), undefined);
    r.close();
    const again = f.open();
    assert.deepEqual(again.quarantined, []);
    assert.deepEqual(again.lease("db/a"), next);
    assert.equal(again.lease("db/b"), undefined);
    assertNoLeaks(databaseBytes(f.file), "cache.db after renewals and replacements", f.values);
  });

  test("rotate-kek re-wraps the lease's data key: it opens under the new key, also after a reopen", (t) => {
    const f = fixture(t);
    const { a } = seededLeases(f);
    const s = f.open();
    const kek2 = sodium.randombytes_buf(KEK_BYTES);
    s.rekey(new Envelope(sodium, kek2.slice()));
    assert.deepEqual(s.lease("db/a"), a);
    s.close();
    const r = f.open(kek2);
    assert.deepEqual(r.quarantined, []);
    assert.deepEqual(r.lease("db/a"), a);
  });

  const edits: [string, RegExp, (db: Database.Database) => void][] = [
    [
      "a flipped byte in the sealed lease",
      /rows do not match the digest/,
      (db) => {
        const r = db.prepare("SELECT lease FROM secrets WHERE name = 'db/a'").get() as { lease: Buffer };
        db.prepare("UPDATE secrets SET lease = ? WHERE name = 'db/a'").run(flipByte(r.lease, 30));
      },
    ],
    [
      "a flipped byte in the lease's wrapped data key",
      /rows do not match the digest/,
      (db) => {
        const r = db.prepare("SELECT lease_dek FROM secrets WHERE name = 'db/a'").get() as { lease_dek: Buffer };
        db.prepare("UPDATE secrets SET lease_dek = ? WHERE name = 'db/a'").run(flipByte(r.lease_dek, 40));
      },
    ],
    [
      "the lease cleared (to make a restart re-read and leave the old lease live)",
      /rows do not match the digest/,
      (db) => db.prepare("UPDATE secrets SET lease_dek = NULL, lease = NULL WHERE name = 'db/a'").run(),
    ],
    ["half the lease cleared", /half a lease/, (db) => db.prepare("UPDATE secrets SET lease = NULL WHERE name = 'db/a'").run()],
    [
      "the leases of two rows swapped",
      /rows do not match the digest/,
      (db) => {
        const get = db.prepare("SELECT lease_dek, lease FROM secrets WHERE name = ?");
        const ra = get.get("db/a") as { lease_dek: Buffer; lease: Buffer };
        const rb = get.get("db/b") as { lease_dek: Buffer; lease: Buffer };
        const set = db.prepare("UPDATE secrets SET lease_dek = ?, lease = ? WHERE name = ?");
        set.run(rb.lease_dek, rb.lease, "db/a");
        set.run(ra.lease_dek, ra.lease, "db/b");
      },
    ],
    [
      "a lease copied onto a row that had none",
      /rows do not match the digest/,
      (db) => {
        const ra = db.prepare("SELECT lease_dek, lease FROM secrets WHERE name = 'db/a'").get() as { lease_dek: Buffer; lease: Buffer };
        db.prepare("UPDATE secrets SET lease_dek = ?, lease = ? WHERE name = 'app/kv'").run(ra.lease_dek, ra.lease);
      },
    ],
  ];
  for (const [what, reason, edit] of edits) {
    test(`${what}: quarantined at open`, (t) => {
      const f = fixture(t);
      seededLeases(f);
      tamper(f.file, edit);
      assertQuarantinedAtOpen(f, f.open(), ["db/a", "db/b", "app/kv"], reason);
    });
  }

  test("an older lease of the same row restored after a renewal: quarantined at open", (t) => {
    const f = fixture(t);
    const { a } = seededLeases(f);
    const before = (() => {
      const db = new Database(f.file, { readonly: true });
      try {
        return db.prepare("SELECT lease_dek, lease FROM secrets WHERE name = 'db/a'").get() as { lease_dek: Buffer; lease: Buffer };
      } finally {
        db.close();
      }
    })();
    const s = f.open();
    s.apply([leased("db/a", readText(s, "db/a")!, 2000, "lease:a", { ...a, expiresAt: 500_000 })]);
    s.close();
    tamper(f.file, (db) => db.prepare("UPDATE secrets SET lease_dek = ?, lease = ? WHERE name = 'db/a'").run(before.lease_dek, before.lease));
    assertQuarantinedAtOpen(f, f.open(), ["db/a", "db/b", "app/kv"], /rows do not match the digest/);
  });

  test("a database from schema 3 opens with its digest intact; its rows get a lease at their next sync", (t) => {
    const f = fixture(t);
    const s = f.open();
    const v = f.value("old");
    s.apply([bound3("app/kv", f.value("kv")), { name: "db/a", ok: true, value: enc.encode(v), sourceVersion: "lease:a", at: 1000, held: "fp-db/a" }]);
    s.close();
    asSchema(f.file, 3);
    const r = f.open();
    assert.deepEqual(r.quarantined, []);
    assert.equal(r.lease("db/a"), undefined);
    const a = leaseFor(f, "a", 100_000);
    r.apply([leased("db/a", v, 2000, "lease:a", a)]);
    r.close();
    const again = f.open();
    assert.deepEqual(again.quarantined, []);
    assert.deepEqual(again.lease("db/a"), a);
  });
});
