import fs from "node:fs";
import { SealError } from "../errors.js";
import { octal } from "../fsutil.js";

/**
 * Refuses key material or its folder when group or others can reach it, or when it
 * belongs to someone else, as ssh does for private keys: a key another account can
 * read protects nothing, and quietly using it would hide that.
 */
export function assertPrivate(p: string, what: string): void {
  let st: fs.Stats;
  try {
    st = fs.statSync(p);
  } catch (e) {
    throw new SealError(`${what} ${p} cannot be read (${(e as NodeJS.ErrnoException).code ?? "error"})`);
  }
  const uid = process.geteuid?.() ?? st.uid;
  if (st.uid !== uid) {
    throw new SealError(`${what} ${p} is owned by uid ${st.uid}, not by the daemon's uid ${uid}; run: chown ${uid} ${p}`);
  }
  if ((st.mode & 0o077) !== 0) {
    const want = st.isDirectory() ? "700" : "600";
    throw new SealError(`${what} ${p} has mode ${octal(st.mode)}, open to group or others; run: chmod ${want} ${p}`);
  }
}

/** Creates the data folder 0700 if missing, then checks it. */
export function ensurePrivateDir(dir: string): void {
  fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
  assertPrivate(dir, "data_dir");
}
