import fs from "node:fs";
import { SealcacheError } from "../errors.js";

/**
 * Whether data_dir takes writes. A full disk, a read-only remount or a failing
 * write must not take the cache down (README "How it behaves"): values already
 * cached keep being served from the open database, and only what is new (values,
 * confirmations, audit rows) is not recorded until writes succeed again.
 */
export interface WriteState {
  readonly writable: boolean;
  /** Wall-clock ms since which writes fail (display). */
  readonly since: number | null;
  /** What the operator should read: "data_dir is full", "data_dir is read-only", ... */
  readonly reason: string | null;
}

/** A write to the cache failed because of the disk, not the data: nothing was changed. */
export class StoreWriteError extends SealcacheError {
  constructor(message: string, opts: { cause?: unknown } = {}) {
    super("unavailable", message, opts);
    this.name = "StoreWriteError";
  }
}

export function isStoreWriteError(e: unknown): e is StoreWriteError {
  return e instanceof StoreWriteError;
}

const DISK_CODES = /^SQLITE_(FULL|IOERR|READONLY|CANTOPEN)/;
const DISK_ERRNOS = new Set(["ENOSPC", "EDQUOT", "EROFS", "EIO"]);

/** A failure of the disk under the cache (space, quota, read-only, I/O), as opposed to damage to its contents or a bug. */
export function isDiskFailure(e: unknown): boolean {
  const code = (e as { code?: unknown } | null)?.code;
  return typeof code === "string" && (DISK_CODES.test(code) || DISK_ERRNOS.has(code));
}

/**
 * The operator's words for a disk failure under `dir`: full (no block left for
 * this user), read-only, or the SQLite code. statfs decides "full": SQLite says
 * SQLITE_FULL, but also SQLITE_IOERR_SHMSIZE and friends when it is out of space.
 */
export function describeDiskFailure(dir: string, e: unknown): string {
  const code = String((e as { code?: unknown } | null)?.code ?? "error");
  try {
    const st = fs.statfsSync(dir);
    if (st.bavail === 0 || code === "SQLITE_FULL" || code === "ENOSPC" || code === "EDQUOT") return `data_dir ${dir} is full`;
  } catch {
    /* statfs failing says nothing more */
  }
  if (code.startsWith("SQLITE_READONLY") || code === "EROFS") return `data_dir ${dir} is read-only`;
  return `data_dir ${dir} cannot be written (${code})`;
}
