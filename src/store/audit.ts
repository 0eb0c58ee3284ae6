// Slightly over 300 lines: the audit database, its ring buffer and its batched flush
// share the same few fields; split, each half would need the other's internals.
import fs from "node:fs";
import DatabaseCtor, { type Database, type Statement } from "better-sqlite3";
import { describeError } from "../errors.js";
import type { Logger } from "../log.js";
import { quarantineFiles } from "./quarantine.js";
import { sqliteNativeBinding } from "./sqlite-binding.js";

/** One audited request: who asked for what and what they got. Never a value. */
export interface AuditEntry {
  /** Unix time in ms. */
  readonly at: number;
  readonly uid: number | null;
  readonly pid: number | null;
  readonly exe: string | null;
  readonly unit: string | null;
  /** The socket API route: secret, refresh, audit, list, watch, ... */
  readonly route: string;
  /** The secret the request named, if any. */
  readonly name: string | null;
  readonly status: number;
  /** `ok`, or the error code answered. */
  readonly code: string;
  /**
   * Who asked, beyond the kernel's uid/pid (src/core/principal.ts): `peer`, `operator`,
   * or `fleet:KEY:JTI` for a fleet command. Null for entries written before schema 5.
   */
  readonly principal: string | null;
}

/** An entry as the socket API and `sealcache audit --json` give it: the time as ISO 8601. */
export type AuditEntryJson = Omit<AuditEntry, "at"> & { readonly at: string };

export interface AuditSettings {
  /** Rows older than this are deleted. */
  readonly retentionMs: number;
  /** At most this many rows are kept; the oldest go first. */
  readonly maxRows: number;
}

export interface AuditQuery {
  /** Unix time in ms; entries at or after it. */
  readonly since?: number | undefined;
  readonly name?: string | undefined;
  readonly limit: number;
}

export const AUDIT_DEFAULTS: AuditSettings = { retentionMs: 30 * 86_400_000, maxRows: 100_000 };

/** The audit table, in audit.db (and, up to schema 5, in cache.db). */
export const AUDIT_SCHEMA = `
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
    code TEXT NOT NULL,
    principal TEXT
  );
  -- One index: it halves the cost of each row against (name, at) as well, and a
  -- query by name scans at most audit.max_rows rows, only when an admin asks.
  CREATE INDEX IF NOT EXISTS audit_at ON audit (at);
`;

/** Entries are written this long after the first of a batch was recorded (or at once past RING). */
const FLUSH_MS = 5_000;
/** The ring the request path records into: a batch this large is written at once. */
const RING = 256;
/** Held in memory while the database cannot be written; beyond this the oldest are dropped. */
const MAX_PENDING = 10_000;
/** Retention is applied this often (and at open), not on every flush. */
const PRUNE_EVERY_MS = 3_600_000;

interface Stmts {
  insert: Statement;
  pruneAge: Statement;
  pruneCount: Statement;
  maxId: Statement;
}

/**
 * The audit trail, in its own database (audit.db beside cache.db): its writes
 * never fsync the secrets' database, and it is WAL with `synchronous = NORMAL`,
 * so a batch costs no fsync at all (a power cut may lose the last few seconds of
 * the trail, never the cache). The request path records into a fixed ring of
 * compact columns (no object per request that lives on to old space); a batch
 * goes out in one transaction FLUSH_MS after its first entry, or at once when
 * the ring fills; an idle daemon sets no timer. Retention runs hourly.
 */
export class AuditLog {
  readonly #file: string;
  readonly #settings: AuditSettings;
  readonly #log: Logger;
  #db: Database | undefined;
  #stmts: Stmts | undefined;
  // The ring: column arrays, reused; `#n` entries are held.
  readonly #at = new Float64Array(RING);
  readonly #uid = new Int32Array(RING);
  readonly #pid = new Int32Array(RING);
  readonly #status = new Uint16Array(RING);
  readonly #strings: (string | null)[] = new Array(RING * 6).fill(null);
  #n = 0;
  /** Entries kept while the database cannot be written (bounded). */
  #spill: AuditEntry[] = [];
  #timer: NodeJS.Timeout | undefined;
  #soon: NodeJS.Immediate | undefined;
  #lastPrune = 0;
  #dropped = 0;
  #failing = false;

  constructor(o: { file: string; settings?: AuditSettings | undefined; logger: Logger }) {
    this.#file = o.file;
    this.#settings = o.settings ?? AUDIT_DEFAULTS;
    this.#log = o.logger;
  }

  /**
   * Opens audit.db. One that fails its integrity check is moved aside (a trail
   * that cannot be read is kept as evidence) and started afresh; one that cannot
   * be opened at all (a full disk) leaves entries in memory, retried at each flush.
   */
  open(): void {
    try {
      this.#openDb();
    } catch (e) {
      const code = (e as { code?: string }).code ?? "";
      if (code.startsWith("SQLITE_CORRUPT") || code === "SQLITE_NOTADB" || (e as Error).message === "audit.db failed its integrity check") {
        const q = quarantineFiles(this.#file, `audit.db could not be read: ${describeError(e)}`);
        this.#log.error({ quarantined: q.path }, "audit trail database damaged; moved aside, starting a new one");
        this.#openDb();
      } else {
        this.#log.error({ err: describeError(e) }, "audit trail database cannot be opened; entries are held in memory and written once it can");
      }
    }
  }

  #openDb(): void {
    const db = new DatabaseCtor(this.#file, { fileMustExist: false, nativeBinding: sqliteNativeBinding() });
    try {
      fs.chmodSync(this.#file, 0o600);
      db.pragma("journal_mode = WAL");
      db.pragma("synchronous = NORMAL");
      db.pragma("wal_autocheckpoint = 128");
      db.pragma("journal_size_limit = 524288");
      db.pragma("cache_size = -256"); // written in batches, read only when an admin asks: 256 KiB of the 16 MB default
      db.pragma("mmap_size = 0");
      if (db.pragma("quick_check", { simple: true }) !== "ok") throw new Error("audit.db failed its integrity check");
      db.exec(AUDIT_SCHEMA);
      this.#db = db;
      this.#stmts = {
        insert: db.prepare("INSERT INTO audit (at, uid, pid, exe, unit, route, name, status, code, principal) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"),
        pruneAge: db.prepare("DELETE FROM audit WHERE at < ?"),
        pruneCount: db.prepare("DELETE FROM audit WHERE id <= ?"),
        maxId: db.prepare("SELECT max(id) AS id FROM audit"),
      };
      this.#lastPrune = 0;
    } catch (e) {
      if (db.open) db.close();
      throw e;
    }
  }

  /** Writes what is held, and closes the database. */
  close(): void {
    this.flush();
    clearTimeout(this.#timer);
    clearImmediate(this.#soon);
    this.#timer = undefined;
    this.#soon = undefined;
    if (this.#db?.open) this.#db.close();
    this.#db = undefined;
    this.#stmts = undefined;
  }

  record(e: AuditEntry): void {
    if (this.#n === RING) this.#toSpill();
    const i = this.#n++;
    this.#at[i] = e.at;
    this.#uid[i] = e.uid ?? -1;
    this.#pid[i] = e.pid ?? -1;
    this.#status[i] = e.status;
    const s = this.#strings;
    const j = i * 6;
    s[j] = e.exe;
    s[j + 1] = e.unit;
    s[j + 2] = e.route;
    s[j + 3] = e.name;
    s[j + 4] = e.code;
    s[j + 5] = e.principal;
    if (this.#n === RING) {
      this.#soon ??= setImmediate(() => {
        this.#soon = undefined;
        this.flush();
      });
    } else {
      this.#timer ??= setTimeout(() => {
        this.#timer = undefined;
        this.flush();
      }, FLUSH_MS).unref();
    }
  }

  /** Writes everything held in one transaction and, hourly, applies retention; returns the rows written. */
  flush(now = Date.now()): number {
    clearTimeout(this.#timer);
    this.#timer = undefined;
    if (!this.#db) {
      if (this.#n > 0) this.#toSpill();
      return 0;
    }
    const s = this.#stmts!;
    const prune = now - this.#lastPrune >= PRUNE_EVERY_MS;
    const n = this.#n;
    const spilled = this.#spill;
    if (n === 0 && spilled.length === 0 && !prune) return 0;
    try {
      this.#db.transaction(() => {
        for (const e of spilled) s.insert.run(e.at, e.uid, e.pid, e.exe, e.unit, e.route, e.name, e.status, e.code, e.principal);
        const t = this.#strings;
        for (let i = 0; i < n; i++) {
          const j = i * 6;
          s.insert.run(
            this.#at[i],
            this.#uid[i] === -1 ? null : this.#uid[i],
            this.#pid[i] === -1 ? null : this.#pid[i],
            t[j],
            t[j + 1],
            t[j + 2],
            t[j + 3],
            this.#status[i],
            t[j + 4],
            t[j + 5],
          );
        }
        if (prune) this.#prune(s, now);
      })();
    } catch (e) {
      if (!this.#failing)
        this.#log.error({ err: describeError(e), pending: n + spilled.length }, "audit entries could not be written; keeping them in memory and retrying");
      this.#failing = true;
      if (n > 0) this.#toSpill();
      this.#timer ??= setTimeout(() => {
        this.#timer = undefined;
        this.flush();
      }, FLUSH_MS).unref();
      return 0;
    }
    if (this.#failing) this.#log.info("audit entries are being written again");
    this.#failing = false;
    if (this.#dropped > 0) {
      this.#log.warn({ dropped: this.#dropped }, "audit entries were dropped while the database could not be written");
      this.#dropped = 0;
    }
    this.#spill = [];
    this.#clearRing();
    if (prune) this.#lastPrune = now;
    return n + spilled.length;
  }

  /** The newest `limit` entries matching, oldest first. Flushes first, so the answer is current. */
  query(q: AuditQuery): AuditEntry[] {
    this.flush();
    const db = this.#db;
    if (!db?.open) return [];
    const where: string[] = [];
    const args: (string | number)[] = [];
    if (q.since !== undefined) {
      where.push("at >= ?");
      args.push(q.since);
    }
    if (q.name !== undefined) {
      where.push("name = ?");
      args.push(q.name);
    }
    const sql =
      `SELECT at, uid, pid, exe, unit, route, name, status, code, principal ` +
      `FROM audit${where.length ? ` WHERE ${where.join(" AND ")}` : ""} ORDER BY id DESC LIMIT ?`;
    return (db.prepare(sql).all(...args, q.limit) as AuditEntry[]).reverse();
  }

  /** The ring's entries as objects, into the (bounded) spill: the database is not taking them now. */
  #toSpill(): void {
    const t = this.#strings;
    for (let i = 0; i < this.#n; i++) {
      const j = i * 6;
      const uid = this.#uid[i]!;
      const pid = this.#pid[i]!;
      this.#spill.push({
        at: this.#at[i]!,
        uid: uid === -1 ? null : uid,
        pid: pid === -1 ? null : pid,
        exe: t[j] ?? null,
        unit: t[j + 1] ?? null,
        route: t[j + 2] as string,
        name: t[j + 3] ?? null,
        status: this.#status[i]!,
        code: t[j + 4] as string,
        principal: t[j + 5] ?? null,
      });
    }
    this.#clearRing();
    if (this.#spill.length > MAX_PENDING) {
      this.#dropped += this.#spill.length - MAX_PENDING;
      this.#spill.splice(0, this.#spill.length - MAX_PENDING);
    }
  }

  #clearRing(): void {
    this.#strings.fill(null, 0, this.#n * 6);
    this.#n = 0;
  }

  #prune(s: Stmts, now: number): void {
    s.pruneAge.run(now - this.#settings.retentionMs);
    const top = (s.maxId.get() as { id: number | null }).id;
    if (top !== null && top > this.#settings.maxRows) s.pruneCount.run(top - this.#settings.maxRows);
  }
}
