import fs from "node:fs";
import { OPERATOR } from "../../core/principal.js";
import { IMPORT_MAX_BYTES } from "../../core/requests.js";
import { SealcacheError } from "../../errors.js";
import { daemonAbsent, replyError, request } from "../client.js";
import { socketFor, type GlobalOptions, type Io } from "../context.js";
import { UsageError } from "../exit.js";
import { onCacheDirectly } from "../on-cache.js";

/**
 * `import NAME --from-file F [--delete-source]`: a one-time value (a bootstrap
 * token) into the cache, through the daemon (PUT /v1/secrets/NAME) when it runs,
 * on the cache directly when it is stopped. `--delete-source` overwrites the file
 * with zeros and removes it, only once the value is stored.
 */
export async function importCommand(g: GlobalOptions, args: string[], flags: { fromFile: string | undefined; deleteSource: boolean }, io: Io): Promise<number> {
  const name = args[0]!;
  if (!flags.fromFile) throw new UsageError("import needs --from-file F: sealcache import NAME --from-file F [--delete-source]");
  // The daemon is reached like every client command does (--socket, or the config's
  // socket): an admin by policy need not be able to read the config. The config is
  // loaded in full only for the offline path, which opens the cache itself.
  const target = socketFor(g);
  const value = readSource(flags.fromFile);
  let stored: { name: string; version: number };
  let via = "daemon";
  try {
    try {
      const r = await request(target, "PUT", `/v1/secrets/${encodeURIComponent(name)}`, 30_000, undefined, value);
      if (r.status !== 201) throw replyError(r);
      stored = JSON.parse(r.body.toString("utf8")) as { name: string; version: number };
    } catch (e) {
      if (!daemonAbsent(e)) throw e;
      via = "cli";
      stored = await onCacheDirectly(g, e, { route: "import", name, okStatus: 201 }, (core) => core.importSecret(OPERATOR, name, value));
    }
  } finally {
    value.fill(0);
  }
  if (flags.deleteSource) shred(flags.fromFile);
  if (g.json) io.out(`${JSON.stringify({ ...stored, via, source_deleted: flags.deleteSource })}\n`);
  else io.out(`imported ${stored.name} (version ${stored.version})${flags.deleteSource ? `; ${flags.fromFile} overwritten and removed` : ""}\n`);
  return 0;
}

/** The file's bytes: a regular file (not followed through a symlink) of at most 64 KiB. */
function readSource(file: string): Buffer {
  let fd: number;
  try {
    fd = fs.openSync(file, fs.constants.O_RDONLY | fs.constants.O_NOFOLLOW | fs.constants.O_NONBLOCK);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code ?? "error";
    throw new SealcacheError(
      code === "ENOENT" ? "not_found" : "bad_request",
      `cannot read --from-file ${file} (${code === "ELOOP" ? "it is a symbolic link" : code})`,
    );
  }
  try {
    const st = fs.fstatSync(fd);
    if (!st.isFile()) throw new SealcacheError("bad_request", `--from-file ${file} is not a regular file`);
    if (st.size > IMPORT_MAX_BYTES)
      throw new SealcacheError("bad_request", `--from-file ${file} is ${st.size} bytes; an imported secret is at most ${IMPORT_MAX_BYTES} bytes (64 KiB)`);
    const buf = Buffer.alloc(st.size);
    const n = fs.readSync(fd, buf, 0, st.size, 0);
    return buf.subarray(0, n);
  } finally {
    fs.closeSync(fd);
  }
}

/** Overwrites the file's bytes with zeros (fsync'd), then removes it. */
function shred(file: string): void {
  const fd = fs.openSync(file, fs.constants.O_WRONLY | fs.constants.O_NOFOLLOW);
  try {
    const size = fs.fstatSync(fd).size;
    fs.writeSync(fd, Buffer.alloc(size), 0, size, 0);
    fs.fsyncSync(fd);
  } finally {
    fs.closeSync(fd);
  }
  fs.unlinkSync(file);
}
