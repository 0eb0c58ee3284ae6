import fs from "node:fs";
import path from "node:path";
import { SealcacheError } from "../../errors.js";
import { octal, writeFileAtomic } from "../../fsutil.js";
import { UsageError } from "../exit.js";
import { compileTemplate, templateError, type Template } from "./template.js";

/** One --template/--out pair, checked and parsed. */
export interface Target {
  readonly template: Template;
  readonly out: string;
}

/** Templates are config files, not data: a bigger one is most likely the wrong file. */
const MAX_TEMPLATE_BYTES = 1024 * 1024;

/** `--mode`: octal permission bits, 0600 by default; no setuid, setgid or sticky bits on a rendered file. */
export function parseMode(raw: string | undefined): number {
  if (raw === undefined) return 0o600;
  if (!/^0?[0-7]{3}$/.test(raw)) throw new UsageError(`--mode must be octal permission bits such as 0600 or 0640, got ${JSON.stringify(raw.slice(0, 16))}`);
  return parseInt(raw, 8);
}

/**
 * Pairs the n-th --template with the n-th --out, checks that each output's folder
 * exists and this account may write in it, and parses each template: all before
 * anything is fetched, so a typo costs no secret read and leaves no file behind.
 */
export function loadTargets(templates: readonly string[] | undefined, outs: readonly string[] | undefined, synopsis: string): Target[] {
  const t = templates ?? [];
  const o = outs ?? [];
  if (t.length === 0 || t.length !== o.length) {
    throw new UsageError(
      `render takes --template and --out in pairs (the n-th --out is where the n-th --template goes); got ${t.length} --template and ${o.length} ` +
        `--out: ${synopsis}`,
    );
  }
  const seen = new Set<string>();
  return t.map((tpl, i) => {
    const out = path.resolve(o[i]!);
    if (seen.has(out)) throw new UsageError(`--out ${o[i]} is given twice`);
    seen.add(out);
    checkOut(out);
    return { template: readTemplate(path.resolve(tpl)), out };
  });
}

function checkOut(out: string): void {
  const dir = path.dirname(out);
  let st: fs.Stats;
  try {
    st = fs.statSync(dir);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    throw new UsageError(
      `--out ${out}: its folder ${dir} ${code === "ENOENT" ? "does not exist; create it first (or fix the path)" : `cannot be read (${code})`}`,
    );
  }
  if (!st.isDirectory()) throw new UsageError(`--out ${out}: ${dir} is not a folder`);
  try {
    fs.accessSync(dir, fs.constants.W_OK | fs.constants.X_OK);
  } catch {
    throw new UsageError(
      `--out ${out}: this account (uid ${process.getuid?.()}) may not write in ${dir} (owner uid ${st.uid}, gid ${st.gid}, mode ` +
        `${octal(st.mode)}); the file is written there through a temporary file and a rename`,
    );
  }
  try {
    if (fs.statSync(out).isDirectory()) throw new UsageError(`--out ${out} is a folder; name the file to write`);
  } catch (e) {
    if (e instanceof UsageError) throw e;
  }
}

function readTemplate(file: string): Template {
  let text: string;
  try {
    const st = fs.statSync(file);
    if (!st.isFile()) throw templateError(file, undefined, "is not a regular file");
    if (st.size > MAX_TEMPLATE_BYTES) throw templateError(file, undefined, `is ${st.size} bytes, more than the ${MAX_TEMPLATE_BYTES} a template may have`);
    text = fs.readFileSync(file, "utf8");
  } catch (e) {
    if (e instanceof SealcacheError) throw e;
    throw templateError(file, undefined, `cannot be read (${(e as NodeJS.ErrnoException).code ?? String(e)})`);
  }
  return compileTemplate(file, text);
}

/**
 * Writes `text` to `out` unless the file already holds exactly it, with `mode`, and
 * belongs to this account: an unchanged render neither touches the disk (flash)
 * nor runs --on-change (a --watch companion starting after ExecStartPre= would
 * restart the agent for nothing). The write goes through a temporary file in the
 * same folder, fsync, rename and an fsync of the folder: a reader sees the old
 * file or the new, never part of one.
 */
export function writeIfChanged(out: string, text: string, mode: number): boolean {
  const data = Buffer.from(text, "utf8");
  try {
    if (same(out, data, mode)) return false;
    writeFileAtomic(out, data, mode);
    return true;
  } finally {
    data.fill(0);
  }
}

function same(out: string, data: Buffer, mode: number): boolean {
  let fd: number;
  try {
    fd = fs.openSync(out, fs.constants.O_RDONLY | fs.constants.O_NOFOLLOW);
  } catch {
    return false;
  }
  try {
    const st = fs.fstatSync(fd);
    if (!st.isFile() || st.size !== data.length || (st.mode & 0o7777) !== mode || st.uid !== process.geteuid?.()) return false;
    const old = Buffer.alloc(data.length);
    try {
      fs.readSync(fd, old, 0, old.length, 0);
      return old.equals(data);
    } finally {
      old.fill(0);
    }
  } finally {
    fs.closeSync(fd);
  }
}
