import type { Database, Statement } from "better-sqlite3";
import { describeError } from "../errors.js";
import type { Logger } from "../log.js";

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

const FLUSH_MS = 1_000;
/** A batch this large is written at once rather than at the next tick. */
const BATCH_ROWS = 256;
/** Held in memory while the database cannot be written; beyond this the oldest are dropped. */
const MAX_PENDING = 10_000;
const PRUNE_EVERY_MS = 60_000;

interface Stmts {
  insert: Statement;
  pruneAge: Statement;
  pruneCount: Statement;
  maxId: Statement;
}

/**
 * The audit trail, in the cache database's `audit` table. Entries are buffered in
 * memory and written in one transaction per second (or per BATCH_ROWS), so a
 * lookup never waits for a disk write; everything buffered is written on close.
 * The store attaches it to each database it opens, so it follows a quarantine:
 * what was buffered goes to the fresh database, and the rows already written stay
 * with the quarantined copy.
 */
export class AuditLog {
  readonly #settings: AuditSettings;
  readonly #log: Logger;
  #db: Database | undefined;
  #stmts: Stmts | undefined;
  #pending: AuditEntry[] = [];
  #timer: NodeJS.Timeout | undefined;
  #soon: NodeJS.Immediate | undefined;
  #lastPrune = 0;
  #dropped = 0;
  #failing = false;

  constructor(o: { settings?: AuditSettings | undefined; logger: Logger }) {
    this.#settings = o.settings ?? AUDIT_DEFAULTS;
    this.#log = o.logger;
  }

  /** Starts writing to `db` (already migrated); called by the store each time it opens one. */
  attach(db: Database): void {
    this.#db = db;
    this.#stmts = {
      insert: db.prepare("INSERT INTO audit (at, uid, pid, exe, unit, route, name, status, code, principal) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"),
      pruneAge: db.prepare("DELETE FROM audit WHERE at < ?"),
      pruneCount: db.prepare("DELETE FROM audit WHERE id <= ?"),
      maxId: db.prepare("SELECT max(id) AS id FROM audit"),
    };
    this.#timer ??= setInterval(() => this.flush(), FLUSH_MS).unref();
    this.#lastPrune = 0;
    this.flush();
  }

  /**
   * Lets go of the database: the store is closing it (everything buffered is
   * written first) or quarantining it (`flush: false`: the buffer is kept for the
   * fresh database, and the quarantined copy is left as it was found).
   */
  detach(o: { flush?: boolean } = {}): void {
    if (o.flush !== false) this.flush();
    clearInterval(this.#timer);
    clearImmediate(this.#soon);
    this.#timer = undefined;
    this.#soon = undefined;
    this.#db = undefined;
    this.#stmts = undefined;
  }

  record(e: AuditEntry): void {
    this.#pending.push(e);
    if (this.#pending.length > MAX_PENDING) {
      this.#dropped += this.#pending.length - MAX_PENDING;
      this.#pending.splice(0, this.#pending.length - MAX_PENDING);
    }
    if (this.#pending.length >= BATCH_ROWS && this.#db && !this.#soon) {
      this.#soon = setImmediate(() => {
        this.#soon = undefined;
        this.flush();
      });
    }
  }

  /** Writes everything buffered in one transaction and applies retention; returns the rows written. */
  flush(now = Date.now()): number {
    const db = this.#db;
    const s = this.#stmts;
    if (!db || !s || !db.open) return 0;
    const batch = this.#pending;
    const prune = now - this.#lastPrune >= PRUNE_EVERY_MS;
    if (batch.length === 0 && !prune) return 0;
    try {
      db.transaction(() => {
        for (const e of batch) s.insert.run(e.at, e.uid, e.pid, e.exe, e.unit, e.route, e.name, e.status, e.code, e.principal);
        if (prune || batch.length > 0) this.#prune(s, now);
      })();
    } catch (e) {
      if (!this.#failing) this.#log.error({ err: describeError(e), pending: batch.length }, "audit entries could not be written; keeping them in memory and retrying");
      this.#failing = true;
      return 0;
    }
    if (this.#failing) this.#log.info("audit entries are being written again");
    this.#failing = false;
    if (this.#dropped > 0) {
      this.#log.warn({ dropped: this.#dropped }, "audit entries were dropped while the database could not be written");
      this.#dropped = 0;
    }
    this.#pending = [];
    if (prune) this.#lastPrune = now;
    return batch.length;
  }

  /** The newest `limit` entries matching, oldest first. Flushes first, so the answer is current. */
  query(q: AuditQuery): AuditEntry[] {
    this.flush();
    const db = this.#db;
    if (!db || !db.open) return [];
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
    const sql = `SELECT at, uid, pid, exe, unit, route, name, status, code, principal FROM audit${where.length ? ` WHERE ${where.join(" AND ")}` : ""} ORDER BY id DESC LIMIT ?`;
    return (db.prepare(sql).all(...args, q.limit) as AuditEntry[]).reverse();
  }

  #prune(s: Stmts, now: number): void {
    s.pruneAge.run(now - this.#settings.retentionMs);
    const top = (s.maxId.get() as { id: number | null }).id;
    if (top !== null && top > this.#settings.maxRows) s.pruneCount.run(top - this.#settings.maxRows);
  }
}
