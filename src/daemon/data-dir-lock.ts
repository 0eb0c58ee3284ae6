import fs from "node:fs";
import path from "node:path";
import { tryLockExclusive } from "../../native/libc.js";
import { SealcacheError } from "../errors.js";

export const LOCK_FILE = "sealcache.lock";

export interface DataDirLock {
  /** Closes the descriptor, which drops the lock (it also drops when the process exits, however it exits). */
  release(): void;
}

/**
 * Takes `data_dir`'s exclusive lock, or refuses at once naming the process that
 * holds it. Two writers on one cache.db are the worst thing that can happen to it:
 * each one's rows look forged to the other, which quarantines the database and, on
 * an offline gateway, loses every secret. So the daemon and every offline command
 * that writes the cache take this before reading a byte of it.
 *
 * flock(2) rather than a PID file: the kernel drops it when the holder dies (a
 * `kill -9`, a power cut), so there is no stale lock to clean up. The holder's PID
 * is written into the file only to name it in the refusal.
 */
export function lockDataDir(dataDir: string, what: string): DataDirLock {
  const file = path.join(dataDir, LOCK_FILE);
  let fd: number;
  try {
    // O_NOFOLLOW: a symlink planted in data_dir must not make the daemon create or truncate a file elsewhere.
    fd = fs.openSync(file, fs.constants.O_RDWR | fs.constants.O_CREAT | fs.constants.O_NOFOLLOW, 0o600);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code ?? "error";
    const why = code === "ELOOP" ? "is a symbolic link; remove it" : `cannot be opened (${code})`;
    throw new SealcacheError("locked", `data_dir lock ${file} ${why}`);
  }
  try {
    if (!fs.fstatSync(fd).isFile()) throw new SealcacheError("locked", `data_dir lock ${file} is not a regular file; remove it`);
    if (!tryLockExclusive(fd)) {
      const holder = readHolder(fd);
      throw new SealcacheError(
        "locked",
        `data_dir ${dataDir} is in use by another sealcache process${holder ? ` (pid ${holder})` : ""}; ${what} refused so that two processes ` +
          `never write one cache. Stop that process first, or use another data_dir`,
      );
    }
    try {
      fs.ftruncateSync(fd, 0);
      fs.writeSync(fd, `${process.pid}\n`, 0);
    } catch {
      // A full or read-only data_dir: the lock holds all the same (it is the kernel's), only the refusal cannot name this pid.
    }
  } catch (e) {
    fs.closeSync(fd);
    throw e;
  }
  let open = true;
  return {
    release() {
      if (!open) return;
      open = false;
      fs.closeSync(fd);
    },
  };
}

function readHolder(fd: number): number | undefined {
  const buf = Buffer.alloc(16);
  const n = fs.readSync(fd, buf, 0, buf.length, 0);
  const pid = Number(buf.subarray(0, n).toString("ascii").trim());
  return Number.isSafeInteger(pid) && pid > 0 ? pid : undefined;
}
