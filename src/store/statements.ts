import type { Database, Statement } from "better-sqlite3";
import { ciphertextOf, type MetaEntry, wrappedDekOf } from "./rows.js";

/** A `secrets` row as SQLite returns it. */
export interface SqlRow {
  name: string;
  version: number;
  source_version: string | null;
  wrapped_dek: Buffer;
  ciphertext: Buffer;
  value_mac: Buffer;
  changed_rev: number;
  changed_at: number;
  fetched_at: number;
  held: string | null;
  origin: string | null;
  lease_dek: Buffer | null;
  lease: Buffer | null;
}

/** Every statement the store runs, prepared once per open database. */
export function prepare(db: Database) {
  const p = (sql: string): Statement => db.prepare(sql);
  return {
    all: p("SELECT * FROM secrets"),
    count: p("SELECT count(*) AS n FROM secrets"),
    upsert: p(
      `INSERT INTO secrets (name, version, source_version, wrapped_dek, ciphertext, value_mac, changed_rev, changed_at, fetched_at, held, ` +
        `origin, lease_dek, lease)
       VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
       ON CONFLICT(name) DO UPDATE SET version = excluded.version, source_version = excluded.source_version,
         wrapped_dek = excluded.wrapped_dek, ciphertext = excluded.ciphertext, value_mac = excluded.value_mac,
         changed_rev = excluded.changed_rev, changed_at = excluded.changed_at, fetched_at = excluded.fetched_at,
         held = excluded.held, origin = excluded.origin, lease_dek = excluded.lease_dek, lease = excluded.lease`,
    ),
    touch: p("UPDATE secrets SET fetched_at = ?, source_version = ?, held = ?, origin = ?, lease_dek = ?, lease = ? WHERE name = ?"),
    remove: p("DELETE FROM secrets WHERE name = ?"),
    setError: p("INSERT OR REPLACE INTO secret_state (name, error_kind, error, error_at) VALUES (?, ?, ?, ?)"),
    clearError: p("DELETE FROM secret_state WHERE name = ?"),
    errors: p("SELECT name, error_kind, error, error_at FROM secret_state"),
    getMeta: p("SELECT value FROM meta WHERE key = ?"),
    records: p("SELECT key, value FROM meta WHERE key LIKE ?"),
    removeAll: p("DELETE FROM secrets"),
    setMeta: p("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)"),
    removeMeta: p("DELETE FROM meta WHERE key = ?"),
    providers: p("SELECT * FROM provider_state"),
    saveProvider: p(
      "INSERT OR REPLACE INTO provider_state (name, last_success, last_error, last_error_kind, last_error_at, failures) VALUES (?, ?, ?, ?, ?, ?)",
    ),
  };
}

export type Statements = ReturnType<typeof prepare>;

/** Writes a whole row as memory holds it (value MAC, wrapped DEK and ciphertext from its sealed bytes). */
export function upsertRow(s: Statements, e: MetaEntry): void {
  s.upsert.run(
    e.name,
    e.version,
    e.sourceVersion,
    wrappedDekOf(e),
    ciphertextOf(e),
    e.sealed.subarray(0, 32),
    e.changedRev,
    e.changedAt,
    e.fetchedAt,
    e.held,
    e.origin,
    e.sealedLease?.dek ?? null,
    e.sealedLease?.ct ?? null,
  );
}
