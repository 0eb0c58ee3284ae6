import path from "node:path";
import type { Database } from "better-sqlite3";
import { AUDIT_SCHEMA } from "./audit.js";

/**
 * Versioned schema: PRAGMA user_version holds the number of migrations applied.
 * Append only; a migration never changes once released.
 */
const MIGRATIONS: readonly (string | ((db: Database) => void))[] = [
  `
  CREATE TABLE meta (key TEXT PRIMARY KEY, value BLOB NOT NULL) WITHOUT ROWID;
  CREATE TABLE secrets (
    name TEXT PRIMARY KEY,
    version INTEGER NOT NULL,          -- ours: +1 each time the value changes; bound into the AEAD
    source_version TEXT,               -- the backend's own version id, if it has one
    wrapped_dek BLOB NOT NULL,
    ciphertext BLOB NOT NULL,
    value_mac BLOB NOT NULL,           -- keyed MAC of the value: change detection without decrypting
    changed_rev INTEGER NOT NULL,      -- store generation at the last value change (for watch)
    changed_at INTEGER NOT NULL,
    fetched_at INTEGER NOT NULL        -- last time the backend confirmed this value
  );
  CREATE TABLE secret_state (
    name TEXT PRIMARY KEY,
    error_kind TEXT,
    error TEXT,
    error_at INTEGER
  ) WITHOUT ROWID;
  CREATE TABLE provider_state (
    name TEXT PRIMARY KEY,
    last_success INTEGER,
    last_error TEXT,
    last_error_kind TEXT,
    last_error_at INTEGER,
    failures INTEGER NOT NULL DEFAULT 0
  ) WITHOUT ROWID;
  `,
  // 2: the audit trail (src/store/audit.ts): who asked for what, and the answer. Never a value.
  `
  CREATE TABLE IF NOT EXISTS audit (
    id INTEGER PRIMARY KEY,
    at INTEGER NOT NULL,               -- unix ms
    uid INTEGER,
    pid INTEGER,
    exe TEXT,
    unit TEXT,
    route TEXT NOT NULL,
    name TEXT,
    status INTEGER NOT NULL,
    code TEXT NOT NULL
  );
  -- One index: it halves the cost of each row against (name, at) as well, and a
  -- query by name scans at most audit.max_rows rows, only when an admin asks.
  CREATE INDEX IF NOT EXISTS audit_at ON audit (at);
  `,
  // 3: what a row's backend version is bound to, so it survives a restart (src/store/store.ts,
  // "binding"): the fingerprint of the config the value was fetched under, and for a
  // parameter found under a hierarchy, the hierarchy entry it belongs to. Both are
  // covered by a keyed MAC in the digest; rows written before this migration have
  // neither and are never trusted for a version check.
  `
  ALTER TABLE secrets ADD COLUMN held TEXT;     -- fingerprint of the config entry the value was fetched under
  ALTER TABLE secrets ADD COLUMN origin TEXT;   -- the hierarchy entry a parameter was found under; NULL for a configured secret
  `,
  // 4: the lease a value is held under (Vault dynamic secrets), so a restart renews the
  // credentials it holds, or revokes them when it replaces them, instead of minting new
  // ones and leaving the old ones live until their TTL. Sealed like a value (its own
  // DEK, associated data naming the secret and its version) because the lease id is a
  // handle on the credentials' life, and covered by the row's binding MAC in the
  // digest, so an edited, cleared or swapped lease is quarantined. Both NULL: no lease.
  `
  ALTER TABLE secrets ADD COLUMN lease_dek BLOB;  -- the lease's data key, wrapped by the KEK
  ALTER TABLE secrets ADD COLUMN lease BLOB;      -- the lease record, sealed under lease_dek
  `,
  // 5: who asked, beyond the kernel's uid/pid: peer, operator, or fleet:KEY:JTI (src/core/principal.ts).
  `
  ALTER TABLE audit ADD COLUMN principal TEXT;
  `,
  // 6: the audit trail moves to its own database, audit.db (src/store/audit.ts), so
  // that writing it never fsyncs the secrets: the rows move there, in this transaction.
  (db) => {
    const auditDb = path.join(path.dirname(db.name), "audit.db");
    db.prepare("ATTACH DATABASE ? AS moved").run(auditDb);
    try {
      // One transaction over both files (in WAL mode each commits on its own: a crash
      // between the two can only leave the moved rows twice in audit.db, never lose them).
      db.transaction(() => {
        db.exec(AUDIT_SCHEMA.replaceAll("EXISTS audit", "EXISTS moved.audit"));
        db.exec(
          "INSERT INTO moved.audit (at, uid, pid, exe, unit, route, name, status, code, principal) SELECT at, uid, pid, exe, unit, route, name, " +
            "status, code, principal FROM main.audit ORDER BY id",
        );
        db.exec("DROP TABLE main.audit");
      })();
    } finally {
      db.exec("DETACH DATABASE moved");
    }
  },
];

export const SCHEMA_VERSION = MIGRATIONS.length;

export function migrate(db: Database): void {
  const current = db.pragma("user_version", { simple: true }) as number;
  if (current > SCHEMA_VERSION) {
    throw new Error(`cache.db has schema version ${current}, newer than this sealcache (${SCHEMA_VERSION}); upgrade sealcache or restore a matching cache`);
  }
  for (let v = current; v < SCHEMA_VERSION; v++) {
    const m = MIGRATIONS[v]!;
    // ATTACH cannot run inside a transaction: a migration that needs it runs its own steps.
    if (typeof m === "function") {
      m(db);
      db.pragma(`user_version = ${v + 1}`);
      continue;
    }
    db.transaction(() => {
      db.exec(m);
      db.pragma(`user_version = ${v + 1}`);
    })();
  }
}
