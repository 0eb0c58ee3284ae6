import { constants } from "node:fs";
import fs from "node:fs/promises";
import path from "node:path";
import type { z } from "zod";
import { ProviderError, type FetchResult, type Provider, type ProviderInit, type SecretRef } from "../provider.js";
import { extractKey } from "../extract.js";
import { openBeneath, probeResolution, type Resolution } from "./beneath.js";
import { closeFd, fstatFd, readFd, sameFile } from "./fd.js";
import type { fileSchema } from "./schema.js";

type Options = z.output<ReturnType<typeof fileSchema>>;

/** Test seams: the resolution to use instead of the one the kernel is probed for; a call between a read and the stat after it. */
export interface FileProviderInternals {
  readonly resolution?: Resolution;
  readonly afterRead?: (path: string, attempt: number) => void;
}

/**
 * One file per secret under `dir` (/run/secrets, a Kubernetes secret mount whose
 * entries are symlinks into ..data/), or a JSON/.env file with `key:`. Paths may
 * not leave `dir`, symlinks included, and no race can make them: every file is
 * opened relative to a descriptor of `dir` by one call that refuses to leave it
 * (see beneath.ts). A read is kept only if the file did not change while it was
 * read; one rewritten in place is read again, a few times, before it is an error.
 */
export function create(init: ProviderInit<Options>, internals: FileProviderInternals = {}): Provider {
  const { dir, max_bytes: maxBytes } = init.options;
  let resolution = internals.resolution;

  async function openDir(): Promise<{ fh: fs.FileHandle; prefixes: string[] }> {
    try {
      const real = await fs.realpath(dir);
      const fh = await fs.open(real, constants.O_RDONLY | constants.O_DIRECTORY);
      return { fh, prefixes: [...new Set([dir, real])] };
    } catch (e) {
      // The whole folder missing is an outage (a mount not there yet), not a per-secret error.
      throw new ProviderError("transient", `file provider ${init.name}: folder ${dir} is not available (${(e as NodeJS.ErrnoException).code ?? "error"})`);
    }
  }

  async function readOne(dirFd: number, prefixes: readonly string[], ref: SecretRef): Promise<FetchResult> {
    const where = `${dir}/${ref.path}`;
    if (path.isAbsolute(ref.path) || ref.path.split(/[\\/]/).includes("..")) {
      return fail(ref, "permanent", `path ${JSON.stringify(ref.path)} must be relative to ${dir} without '..'`);
    }
    for (let attempt = 1; ; attempt++) {
      const r = await readStable(dirFd, prefixes, ref, where, attempt);
      if (r !== "changed") return r;
      if (attempt === READ_ATTEMPTS) {
        return fail(
          ref,
          "transient",
          `${where} changed while it was being read, ${READ_ATTEMPTS} times in a row; the cached value is kept (write secrets to a temporary file ` +
            `and rename it over the old one)`,
        );
      }
      await new Promise((resolve) => setTimeout(resolve, RETRY_DELAY_MS * attempt));
    }
  }

  /** One open-stat-read-stat; "changed" when the file's size, mtime or ctime moved while it was read. */
  async function readStable(dirFd: number, prefixes: readonly string[], ref: SecretRef, where: string, attempt: number): Promise<FetchResult | "changed"> {
    const opened = openBeneath(dirFd, prefixes, ref.path, resolution!);
    if ("errno" in opened) return fail(ref, "permanent", openProblem(where, dir, opened.errno));
    const fd = opened.fd;
    let raw: Uint8Array | undefined;
    try {
      const before = await fstatFd(fd);
      if (!before.isFile()) return fail(ref, "permanent", `${where} is not a regular file`);
      if (before.size > BigInt(maxBytes)) return fail(ref, "permanent", `${where} is ${before.size} bytes, over max_bytes ${maxBytes}`);
      const size = Number(before.size);
      // One byte more than the size: a file that grew while it was read shows it.
      raw = new Uint8Array(size + 1);
      let got = 0;
      for (;;) {
        const n = await readFd(fd, raw, got, raw.length - got, got);
        if (n === 0) break;
        got += n;
        if (got === raw.length) break;
      }
      internals.afterRead?.(ref.path, attempt);
      const after = await fstatFd(fd);
      if (got !== size || !sameFile(before, after)) return "changed";
      const content = raw.subarray(0, size);
      let value: Uint8Array;
      if (ref.key !== undefined) {
        value = extractKey(content, ref.key, where);
      } else {
        value = stripFinalNewline(content).slice();
      }
      return { name: ref.name, ok: true, value, version: `mtime:${before.mtimeMs}` };
    } catch (e) {
      if (e instanceof ProviderError) return { name: ref.name, ok: false, error: e };
      return fail(ref, "permanent", `${where} cannot be read (${(e as NodeJS.ErrnoException).code ?? "error"})`);
    } finally {
      raw?.fill(0);
      await closeFd(fd);
    }
  }

  return {
    // Local reads are cheap; a large batch keeps a whole folder in one transaction.
    maxBatch: 1000,
    async fetch(refs) {
      const { fh, prefixes } = await openDir();
      try {
        resolution ??= probeResolution(fh.fd);
        // Bounded: a thousand reads at once costs file descriptors and malloc arenas in
        // libuv's threads (tens of MB of RSS on a gateway) for no gain on local reads.
        const out: FetchResult[] = new Array(refs.length);
        let next = 0;
        const worker = async () => {
          for (let i = next++; i < refs.length; i = next++) out[i] = await readOne(fh.fd, prefixes, refs[i]!);
        };
        await Promise.all(Array.from({ length: Math.min(READ_CONCURRENCY, refs.length) }, worker));
        return out;
      } finally {
        await fh.close();
      }
    },
  };
}

const READ_CONCURRENCY = 8;
/** A file rewritten in place (truncate, then write) is read again this often, RETRY_DELAY_MS apart and growing. */
const READ_ATTEMPTS = 3;
const RETRY_DELAY_MS = 25;

function openProblem(where: string, dir: string, errno: string): string {
  switch (errno) {
    case "ENOENT":
      return `${where} does not exist`;
    case "EXDEV":
      return `${where} resolves outside ${dir} (symlinks must stay inside it)`;
    case "ELOOP":
      return `${where} cannot be read (ELOOP: a symlink loop, or a link into /proc)`;
    case "ENXIO":
      return `${where} is not a regular file`;
    default:
      return `${where} cannot be read (${errno})`;
  }
}

function fail(ref: SecretRef, kind: "permanent" | "transient", message: string): FetchResult {
  return { name: ref.name, ok: false, error: new ProviderError(kind, message) };
}

/** `echo token > file` leaves a newline that is not part of the secret. */
function stripFinalNewline(b: Uint8Array): Uint8Array {
  let end = b.length;
  if (end > 0 && b[end - 1] === 0x0a) end--;
  if (end > 0 && b[end - 1] === 0x0d) end--;
  return b.subarray(0, end);
}
