import fs from "node:fs";
import path from "node:path";
import DatabaseCtor, { type Database } from "better-sqlite3";
import { fsyncDir } from "../fsutil.js";
import { sqliteNativeBinding } from "./sqlite-binding.js";

export interface QuarantineRecord {
  readonly path: string;
  readonly reason: string;
  readonly at: string;
}

/**
 * Moves a database that failed a check out of the way, with its WAL and a note of
 * why, so it can be inspected and is never served. The caller starts a fresh one.
 */
export function quarantineFiles(dbPath: string, reason: string): QuarantineRecord {
  const dir = path.join(path.dirname(dbPath), "quarantine");
  fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
  const at = new Date().toISOString();
  const base = path.join(dir, `${path.basename(dbPath, ".db")}-${at.replace(/[:.]/g, "-")}`);
  // Never overwrite an earlier quarantine from the same millisecond: it is evidence.
  let stem = base;
  for (let n = 1; fs.existsSync(`${stem}.db`) || fs.existsSync(`${stem}.reason.txt`); n++) stem = `${base}-${n}`;
  for (const suffix of ["", "-wal", "-shm"]) {
    try {
      fs.renameSync(dbPath + suffix, `${stem}.db${suffix}`);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== "ENOENT") throw e;
    }
  }
  fs.writeFileSync(`${stem}.reason.txt`, `${at}\n${reason}\n`, { mode: 0o600 });
  fsyncDir(dir);
  fsyncDir(path.dirname(dbPath));
  return { path: `${stem}.db`, reason, at };
}

/**
 * A revoke reaches the quarantined copies too. They are kept as evidence, but a
 * copy quarantined for a failed check (a bad digest, swapped rows) is otherwise
 * intact and sealed under the same cache key: the revoked names' rows (every row,
 * for `all`) are deleted from each copy with secure_delete, the copy is vacuumed
 * (no free page keeps them) and its WAL truncated, and its note says so. A copy
 * that cannot be opened to do that (quarantined as corrupt) is removed with its
 * WAL: a shred the operator asked for outweighs the evidence; its note stays and
 * says why. Returns the copies touched, for the log.
 */
export function scrubQuarantined(dbPath: string, names: readonly string[] | "all"): { scrubbed: string[]; removed: string[] } {
  const dir = path.join(path.dirname(dbPath), "quarantine");
  const out = { scrubbed: [] as string[], removed: [] as string[] };
  let files: string[];
  try {
    files = fs.readdirSync(dir).filter((f) => f.endsWith(".db"));
  } catch {
    return out;
  }
  for (const f of files) {
    const file = path.join(dir, f);
    const note = (text: string) => fs.appendFileSync(file.replace(/\.db$/, ".reason.txt"), `${new Date().toISOString()}\nrevoke: ${text}\n`, { mode: 0o600 });
    let db: Database | undefined;
    try {
      db = new DatabaseCtor(file, { fileMustExist: true, nativeBinding: sqliteNativeBinding() });
      const open = db;
      open.pragma("secure_delete = ON");
      const remove = open.prepare("DELETE FROM secrets WHERE name = ?");
      const deleted = open.transaction(() =>
        names === "all" ? open.prepare("DELETE FROM secrets").run().changes : names.reduce((n, name) => n + remove.run(name).changes, 0),
      )();
      if (deleted > 0) open.exec("VACUUM");
      open.pragma("wal_checkpoint(TRUNCATE)");
      open.close();
      if (deleted > 0) {
        note(`the rows of ${deleted} revoked ${deleted === 1 ? "secret" : "secrets"} deleted from this copy`);
        out.scrubbed.push(file);
      }
    } catch (e) {
      if (db?.open) db.close();
      for (const suffix of ["", "-wal", "-shm"]) fs.rmSync(file + suffix, { force: true });
      note(`this copy could not be opened to delete the revoked rows (${(e as { code?: string }).code ?? "error"}); removed`);
      out.removed.push(file);
    }
  }
  if (out.scrubbed.length + out.removed.length > 0) fsyncDir(dir);
  return out;
}
