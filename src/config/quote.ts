/**
 * How config errors show what they were given. A value in the wrong key may be a
 * secret (typed into `log.level`, or expanded from `${VAR}`), and one may be 50 MB:
 * a message quotes at most QUOTE_CHARS characters of any value, key or name, and
 * says how long the rest was, so the journal never receives more than a prefix.
 */
export const QUOTE_CHARS = 60;

/** `"value"`, or `"first 60 characters"… (N bytes)` for anything longer. */
export function quote(v: unknown): string {
  if (typeof v !== "string") return clip(typeof v === "number" || typeof v === "boolean" || v === null ? String(v) : typeOf(v));
  if (v.length <= QUOTE_CHARS) return JSON.stringify(v);
  return `${JSON.stringify(v.slice(0, QUOTE_CHARS))}… (${Buffer.byteLength(v)} bytes)`;
}

/** Unquoted text (a key, a variable name, a parser's reason) cut to QUOTE_CHARS characters. */
export function clip(s: string): string {
  const printable = /^[\x20-\x7e]*$/.test(s) ? s : JSON.stringify(s).slice(1, -1);
  return printable.length <= QUOTE_CHARS ? printable : `${printable.slice(0, QUOTE_CHARS)}… (${Buffer.byteLength(s)} bytes)`;
}

/**
 * A file path as errors show it: whole up to QUOTE_CHARS characters, else its
 * last QUOTE_CHARS (the file name is the telling part), unquoted like any path.
 */
export function clipPath(p: string): string {
  const printable = /^[\x20-\x7e]*$/.test(p) ? p : JSON.stringify(p).slice(1, -1);
  return printable.length <= QUOTE_CHARS ? printable : `…${printable.slice(-QUOTE_CHARS)}`;
}

/** A key path as errors name it (`secrets.demo/api-token.path`), each part clipped. */
export function keyPath(at: readonly (string | number)[]): string {
  return at.length === 0 ? "(top level)" : at.map((k) => clip(String(k))).join(".");
}

export function typeOf(v: unknown): string {
  return v === null ? "null" : Array.isArray(v) ? "array" : typeof v;
}
