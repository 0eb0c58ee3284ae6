import { constants } from "node:fs";
import fs from "node:fs/promises";
import path from "node:path";
import type { z } from "zod";
import { ProviderError, type FetchResult, type Provider, type ProviderInit, type SecretRef } from "../provider.js";
import { extractKey } from "../extract.js";
import type { fileSchema } from "./schema.js";

type Options = z.output<ReturnType<typeof fileSchema>>;

/**
 * One file per secret under `dir` (/run/secrets, a Kubernetes secret mount whose
 * entries are symlinks into ..data/), or a JSON/.env file with `key:`. Paths may
 * not leave `dir`, symlinks included.
 */
export function create(init: ProviderInit<Options>): Provider {
  const { dir, max_bytes: maxBytes } = init.options;

  async function realDir(): Promise<string> {
    try {
      return await fs.realpath(dir);
    } catch (e) {
      // The whole folder missing is an outage (a mount not there yet), not a per-secret error.
      throw new ProviderError("transient", `file provider ${init.name}: folder ${dir} is not available (${(e as NodeJS.ErrnoException).code ?? "error"})`);
    }
  }

  async function readOne(root: string, ref: SecretRef): Promise<FetchResult> {
    const where = `${dir}/${ref.path}`;
    if (path.isAbsolute(ref.path) || ref.path.split(/[\\/]/).includes("..")) {
      return fail(ref, "permanent", `path ${JSON.stringify(ref.path)} must be relative to ${dir} without '..'`);
    }
    let real: string;
    try {
      real = await fs.realpath(path.join(root, ref.path));
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      return fail(ref, "permanent", code === "ENOENT" ? `${where} does not exist` : `${where} cannot be read (${code ?? "error"})`);
    }
    if (!real.startsWith(root + path.sep)) return fail(ref, "permanent", `${where} resolves outside ${dir}`);
    let fh: fs.FileHandle | undefined;
    try {
      // O_NONBLOCK: opening a FIFO (or a device) must not block a libuv thread
      // forever; the type check below then refuses it. No effect on regular files.
      fh = await fs.open(real, constants.O_RDONLY | constants.O_NONBLOCK);
      const st = await fh.stat();
      if (!st.isFile()) return fail(ref, "permanent", `${where} is not a regular file`);
      if (st.size > maxBytes) return fail(ref, "permanent", `${where} is ${st.size} bytes, over max_bytes ${maxBytes}`);
      const raw = new Uint8Array(st.size);
      const { bytesRead } = await fh.read(raw, 0, st.size, 0);
      const content = raw.subarray(0, bytesRead);
      let value: Uint8Array;
      if (ref.key !== undefined) {
        value = extractKey(content, ref.key, where);
        raw.fill(0);
      } else {
        value = stripFinalNewline(content);
      }
      return { name: ref.name, ok: true, value, version: `mtime:${Math.floor(st.mtimeMs)}` };
    } catch (e) {
      if (e instanceof ProviderError) return { name: ref.name, ok: false, error: e };
      return fail(ref, "permanent", `${where} cannot be read (${(e as NodeJS.ErrnoException).code ?? "error"})`);
    } finally {
      await fh?.close();
    }
  }

  return {
    // Local reads are cheap; a large batch keeps a whole folder in one transaction.
    maxBatch: 1000,
    async fetch(refs) {
      const root = await realDir();
      // Bounded: a thousand opens at once costs file descriptors and malloc arenas in
      // libuv's threads (tens of MB of RSS on a gateway) for no gain on local reads.
      const out: FetchResult[] = new Array(refs.length);
      let next = 0;
      const worker = async () => {
        for (let i = next++; i < refs.length; i = next++) out[i] = await readOne(root, refs[i]!);
      };
      await Promise.all(Array.from({ length: Math.min(READ_CONCURRENCY, refs.length) }, worker));
      return out;
    },
  };
}

const READ_CONCURRENCY = 8;

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
