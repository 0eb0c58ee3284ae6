import fs from "node:fs";
import path from "node:path";
import { fsyncDir } from "../fsutil.js";

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
