import fs from "node:fs";

/**
 * The largest config file read. A 100,000-secret config (the largest fleet
 * footprint we plan for) is ~15 MB in either YAML style at ~150 bytes a secret;
 * 32 MiB leaves room for ~330 bytes each. Anything bigger is a mistake (a log
 * file named by --config) or an attack, refused before it is read whole.
 */
export const MAX_CONFIG_BYTES = 32 * 1024 * 1024;

export type ReadResult = { ok: true; bytes: Uint8Array } | { ok: false; problem: string };

/** The config file's bytes, refused past MAX_CONFIG_BYTES (a FIFO or /dev/stdin is read up to the limit). */
export function readConfigBytes(file: string): ReadResult {
  const fd = fs.openSync(file, "r");
  try {
    const st = fs.fstatSync(fd);
    if (st.isDirectory()) return { ok: false, problem: "is a folder, not a config file" };
    if (st.isFile() && st.size > MAX_CONFIG_BYTES) return { ok: false, problem: tooBig(st.size) };
    const chunks: Buffer[] = [];
    let total = 0;
    for (;;) {
      const chunk = Buffer.allocUnsafe(Math.min(1024 * 1024, MAX_CONFIG_BYTES + 1 - total));
      const n = fs.readSync(fd, chunk, 0, chunk.length, null);
      if (n === 0) break;
      chunks.push(chunk.subarray(0, n));
      total += n;
      if (total > MAX_CONFIG_BYTES) return { ok: false, problem: tooBig(total, true) };
    }
    return { ok: true, bytes: Buffer.concat(chunks, total) };
  } finally {
    fs.closeSync(fd);
  }
}

function tooBig(size: number, atLeast = false): string {
  return (
    `the file is ${atLeast ? "more than " : ""}${size} bytes, over the ${MAX_CONFIG_BYTES / 1024 / 1024} MiB limit for a config ` +
    `(see "Config reference" in README.md)`
  );
}

/** Where a byte the config may not hold sits, and what it is. */
export interface BadByte {
  readonly kind: "nul" | "utf8";
  readonly line: number;
  readonly column: number;
}

/** Stand-ins for bad bytes, so the parsed tree can say which key held one. */
export const MARK = { utf8: "\uFFFD", nul: "\uFFFC" } as const;

/**
 * Decodes the file as strict UTF-8. A config with a NUL byte or invalid UTF-8 is
 * refused, but parsed first with each bad byte replaced by a marker (MARK), so
 * the error can name the key whose value held it rather than only a line.
 */
export function decodeConfig(bytes: Uint8Array): { text: string; bad: BadByte | undefined } {
  let text: string | undefined;
  try {
    text = new TextDecoder("utf-8", { fatal: true }).decode(bytes);
  } catch {
    text = undefined;
  }
  if (text !== undefined && !text.includes("\0")) return { text, bad: undefined };
  const at = firstBad(bytes);
  const lenient = text ?? new TextDecoder("utf-8").decode(bytes);
  return { text: lenient.replaceAll("\0", MARK.nul), bad: at };
}

/** The first NUL byte or invalid UTF-8 sequence, by line and column (1-based, in bytes). */
function firstBad(b: Uint8Array): BadByte | undefined {
  let line = 1;
  let lineStart = 0;
  for (let i = 0; i < b.length; ) {
    const c = b[i]!;
    const where = () => ({ line, column: i - lineStart + 1 });
    if (c === 0) return { kind: "nul", ...where() };
    if (c === 0x0a) {
      line++;
      lineStart = i + 1;
    }
    const n = sequenceLength(b, i);
    if (n === 0) return { kind: "utf8", ...where() };
    i += n;
  }
  return undefined;
}

/** Length of the well-formed UTF-8 sequence at i (RFC 3629: no overlongs, surrogates or > U+10FFFF), or 0. */
function sequenceLength(b: Uint8Array, i: number): number {
  const c = b[i]!;
  if (c < 0x80) return 1;
  const cont = (k: number, lo = 0x80, hi = 0xbf) => i + k < b.length && b[i + k]! >= lo && b[i + k]! <= hi;
  if (c >= 0xc2 && c <= 0xdf) return cont(1) ? 2 : 0;
  if (c >= 0xe0 && c <= 0xef) {
    const lo = c === 0xe0 ? 0xa0 : 0x80;
    const hi = c === 0xed ? 0x9f : 0xbf;
    return cont(1, lo, hi) && cont(2) ? 3 : 0;
  }
  if (c >= 0xf0 && c <= 0xf4) {
    const lo = c === 0xf0 ? 0x90 : 0x80;
    const hi = c === 0xf4 ? 0x8f : 0xbf;
    return cont(1, lo, hi) && cont(2) && cont(3) ? 4 : 0;
  }
  return 0;
}
