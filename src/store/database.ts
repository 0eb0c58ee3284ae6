import fs from "node:fs";
import path from "node:path";
import DatabaseCtor, { type Database } from "better-sqlite3";
import type { Envelope } from "../crypto/envelope.js";
import { IntegrityError, SealError } from "../errors.js";
import type { Logger } from "../log.js";
import { StoreWriteError, describeDiskFailure, isDiskFailure, type WriteState } from "./disk.js";
import { kekCheck } from "./integrity.js";
import { migrate } from "./migrations.js";
import { quarantineFiles, type QuarantineRecord } from "./quarantine.js";
import { sqliteNativeBinding } from "./sqlite-binding.js";
import { prepare, type Statements } from "./statements.js";

/** 128 pages of 4 KiB: a checkpoint after about half a MiB of WAL. */
const WAL_CHECKPOINT_PAGES = 128;
const WAL_LIMIT_BYTES = 512 * 1024;

/** The cache could not be opened (a symlink in data_dir, no space to open it): the daemon stays sealed with the reason and retries. */
export class CacheOpenError extends SealError {
  constructor(message: string, opts: { cause?: unknown } = {}) {
    super(message, opts);
    this.name = "CacheOpenError";
  }
}

/**
 * cache.db as a file: opening it (refusing symlinks, WAL and its bounds, the
 * integrity check, migrations), the one place write transactions run (a failing
 * disk marks it not writable instead of taking the daemon down), and moving it
 * aside when its contents fail their checks. What the rows mean is the store's.
 */
export class CacheDb {
  readonly file: string;
  readonly #log: Logger;
  #db: Database | undefined;
  #stmts: Statements | undefined;
  #write: WriteState = { writable: true, since: null, reason: null };

  constructor(file: string, logger: Logger) {
    this.file = file;
    this.#log = logger;
  }

  get db(): Database {
    return this.#db!;
  }

  get stmts(): Statements {
    return this.#stmts!;
  }

  /** Whether data_dir takes writes; when not, cached values are still served (see disk.ts). */
  get writeState(): WriteState {
    return this.#write;
  }

  /**
   * Opens the database. On a disk that takes no writes (full, read-only) the
   * normal open fails creating the WAL index (`-shm`); it is then opened again in
   * SQLite's exclusive locking mode, which keeps that index in memory, so the
   * cached values are served read-only (this process holds data_dir's lock, so no
   * other process reads the file meanwhile) and writes resume when space does.
   * Damage found by the integrity check throws IntegrityError (the caller quarantines).
   */
  open(): void {
    refuseSymlinks(this.file);
    try {
      this.#openDb(false);
    } catch (e) {
      if (!isDiskFailure(e)) throw e;
      const reason = describeDiskFailure(path.dirname(this.file), e);
      try {
        this.#openDb(true);
      } catch (again) {
        if (!isDiskFailure(again)) throw again;
        throw new CacheOpenError(`${reason}: the cache cannot be opened (${String((again as { code?: string }).code)}); free some space`, { cause: again });
      }
      this.#write = { writable: false, since: Date.now(), reason };
      this.#log.error({ reason }, `${reason}: serving cached values, not recording new ones`);
    }
  }

  #openDb(exclusive: boolean): void {
    const db = new DatabaseCtor(this.file, { fileMustExist: false, nativeBinding: sqliteNativeBinding() });
    try {
      chmodNoFollow(this.file, 0o600);
      if (exclusive) db.pragma("locking_mode = EXCLUSIVE");
      db.pragma("journal_mode = WAL");
      db.pragma("synchronous = FULL");
      db.pragma("foreign_keys = ON");
      // Freed space is zeroed where that costs no extra I/O; a revoke turns it fully on for its rows.
      db.pragma("secure_delete = FAST");
      // Flash and small data_dirs: a checkpoint once the WAL holds WAL_CHECKPOINT_PAGES
      // pages, and the WAL file truncated back to WAL_LIMIT_BYTES after one (it would
      // otherwise keep its largest size forever).
      db.pragma(`wal_autocheckpoint = ${WAL_CHECKPOINT_PAGES}`);
      db.pragma(`journal_size_limit = ${WAL_LIMIT_BYTES}`);
      // Lookups are served from memory, so the page cache only helps the b-tree
      // walks of a batch's writes: 1 MiB (better-sqlite3 builds SQLite with 16 MB) is enough at
      // 100,000 rows (integrity_check there takes ~35 ms either way). No mmap: mapped
      // pages would count as the daemon's RSS, and an I/O error on a failing SD card
      // would arrive as SIGBUS instead of an error the store can handle.
      db.pragma("cache_size = -1024");
      db.pragma("mmap_size = 0");
      const check = db.pragma("integrity_check", { simple: true });
      if (check !== "ok") throw new IntegrityError(`SQLite integrity check failed: ${String(check)}`);
      migrate(db);
      this.#db = db;
      this.#stmts = prepare(db);
    } catch (e) {
      if (db.open) db.close();
      throw e;
    }
  }

  /**
   * Runs one write transaction. A failure of the disk (full, read-only, I/O) rolls
   * it back, marks the database not writable and throws StoreWriteError: the
   * caller moves nothing in memory, so what is cached keeps being served; the
   * next write that succeeds marks it writable again.
   */
  write<T>(fn: () => T): T {
    let out: T;
    try {
      out = this.db.transaction(fn)();
    } catch (e) {
      if (!isDiskFailure(e)) throw e;
      const reason = describeDiskFailure(path.dirname(this.file), e);
      if (this.#write.writable || this.#write.reason !== reason) {
        this.#log.error({ reason, code: (e as { code?: string }).code }, `${reason}: serving cached values, not recording new ones`);
      }
      this.#write = { writable: false, since: this.#write.since ?? Date.now(), reason };
      throw new StoreWriteError(`${reason}: serving cached values, not recording new ones`, { cause: e });
    }
    if (!this.#write.writable) {
      this.#log.info({ after_s: Math.round((Date.now() - (this.#write.since ?? Date.now())) / 1000) }, "data_dir takes writes again: recording new values");
      this.#write = { writable: true, since: null, reason: null };
    }
    return out;
  }

  /**
   * Leaves no old page behind, in the file or its WAL: the WAL checkpointed and
   * truncated, the file rebuilt (VACUUM: free pages, where older versions of rows
   * may linger, are gone), and the WAL truncated again. For revoke, which is rare;
   * it rewrites the whole file. Throws StoreWriteError on a disk that takes no writes.
   */
  compact(): void {
    try {
      this.db.pragma("wal_checkpoint(TRUNCATE)");
      this.db.exec("VACUUM");
      this.db.pragma("wal_checkpoint(TRUNCATE)");
    } catch (e) {
      if (!isDiskFailure(e)) throw e;
      throw new StoreWriteError(`${describeDiskFailure(path.dirname(this.file), e)}: the cache could not be compacted after a revoke`, { cause: e });
    }
  }

  close(): void {
    if (this.#db?.open) this.#db.close();
    this.#db = undefined;
    this.#stmts = undefined;
  }

  /** Closes the database and moves it (with its WAL) aside with the reason; never served again. */
  quarantine(reason: string): QuarantineRecord {
    this.close();
    return quarantineFiles(this.file, reason);
  }
}

/**
 * data_dir is root's (or the daemon user's) own: a symlink there (cache.db, or its
 * -wal, -shm or -journal) would make SQLite read and write a file elsewhere, and the
 * mode fix-up change that file's mode. Refused, never followed.
 */
function refuseSymlinks(file: string): void {
  for (const f of [file, `${file}-wal`, `${file}-shm`, `${file}-journal`]) {
    let st: fs.Stats;
    try {
      st = fs.lstatSync(f);
    } catch {
      continue;
    }
    if (st.isSymbolicLink()) throw new CacheOpenError(`${f} is a symbolic link; the cache is never opened through one (move the file itself there)`);
    if (!st.isFile()) throw new CacheOpenError(`${f} is not a regular file; move it away`);
  }
}

/** chmod that never follows a symlink (fchmod on a descriptor opened O_NOFOLLOW). */
function chmodNoFollow(file: string, mode: number): void {
  const fd = fs.openSync(file, fs.constants.O_RDONLY | fs.constants.O_NOFOLLOW);
  try {
    fs.fchmodSync(fd, mode);
  } finally {
    fs.closeSync(fd);
  }
}

/** Damage to the file or its contents, as opposed to a busy, full or unreadable disk. */
export function isCorruption(e: unknown): boolean {
  if (e instanceof IntegrityError) return true;
  const code = (e as { code?: unknown }).code;
  return typeof code === "string" && (code.startsWith("SQLITE_CORRUPT") || code === "SQLITE_NOTADB");
}

/**
 * Whether `envelope` is the key cache.db was written under, read without opening
 * the store (so a wrong key is not mistaken for tampering). Undefined when there
 * is no database or it records no key check yet.
 */
export function keyMatches(file: string, envelope: Envelope): boolean | undefined {
  if (!fs.existsSync(file)) return undefined;
  let db: Database | undefined;
  try {
    db = new DatabaseCtor(file, { fileMustExist: true, nativeBinding: sqliteNativeBinding() });
    const row = db.prepare("SELECT value FROM meta WHERE key = 'kek_check'").get() as { value: Buffer } | undefined;
    return row ? envelope.equal(new Uint8Array(row.value), kekCheck(envelope)) : undefined;
  } catch {
    return undefined;
  } finally {
    db?.close();
  }
}
