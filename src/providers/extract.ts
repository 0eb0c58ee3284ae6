import { ProviderError, type FetchResult, type SecretRef } from "./provider.js";

const dec = new TextDecoder("utf-8", { fatal: true });
const enc = new TextEncoder();

/**
 * Picks `key` out of a value holding a JSON object or .env-style KEY=VALUE lines.
 * Errors describe the shape, never the content: parser messages quote their input,
 * so they are not passed on.
 */
export function extractKey(raw: Uint8Array, key: string, where: string): Uint8Array {
  let text: string;
  try {
    text = dec.decode(raw);
  } catch {
    throw new ProviderError("permanent", `${where}: key ${JSON.stringify(key)} requested but the value is not UTF-8 text`);
  }
  const trimmed = text.trimStart();
  if (trimmed.startsWith("{")) {
    let obj: unknown;
    try {
      obj = JSON.parse(text);
    } catch {
      throw new ProviderError("permanent", `${where}: value looks like JSON but does not parse`);
    }
    if (typeof obj !== "object" || obj === null || Array.isArray(obj)) throw new ProviderError("permanent", `${where}: value is not a JSON object`);
    if (!Object.hasOwn(obj, key)) throw new ProviderError("permanent", `${where}: JSON object has no key ${JSON.stringify(key)}`);
    const v = (obj as Record<string, unknown>)[key];
    if (typeof v === "string") return enc.encode(v);
    if (typeof v === "number" || typeof v === "boolean") return enc.encode(String(v));
    if (v === null) throw new ProviderError("permanent", `${where}: JSON key ${JSON.stringify(key)} is null`);
    return enc.encode(JSON.stringify(v));
  }
  const env = parseDotenv(text);
  if (env === undefined)
    throw new ProviderError("permanent", `${where}: key ${JSON.stringify(key)} requested but the value is neither a JSON object nor KEY=VALUE lines`);
  const v = env.get(key);
  if (v === undefined) throw new ProviderError("permanent", `${where}: no line ${key}=... in the .env value`);
  return enc.encode(v);
}

/** .env lines: KEY=VALUE, optional `export `, '#' comments, single or double quotes. */
export function parseDotenv(text: string): Map<string, string> | undefined {
  const out = new Map<string, string>();
  for (const rawLine of text.split(/\r?\n/)) {
    const line = rawLine.trim();
    if (line === "" || line.startsWith("#")) continue;
    const m = /^(?:export\s+)?([A-Za-z_][A-Za-z0-9_.-]*)\s*=\s*(.*)$/.exec(line);
    if (!m) return undefined;
    let v = m[2]!;
    const q = v[0];
    if ((q === '"' || q === "'") && v.length >= 2 && v.endsWith(q)) {
      v = v.slice(1, -1);
      if (q === '"') v = v.replace(/\\n/g, "\n").replace(/\\"/g, '"').replace(/\\\\/g, "\\");
    } else {
      const hash = v.indexOf(" #");
      if (hash >= 0) v = v.slice(0, hash).trimEnd();
    }
    out.set(m[1]!, v);
  }
  return out;
}

/**
 * A secret's result from the bytes a backend answered, picking `key` when set.
 * The whole value is zeroed once a key has been taken out of it.
 */
export function valueResult(ref: SecretRef, raw: Uint8Array, version: string | undefined, where: string, expiresAt?: number): FetchResult {
  if (ref.key === undefined) return { name: ref.name, ok: true, value: raw, version, expiresAt };
  try {
    return { name: ref.name, ok: true, value: extractKey(raw, ref.key, where), version, expiresAt };
  } catch (e) {
    return { name: ref.name, ok: false, error: e as ProviderError };
  } finally {
    raw.fill(0);
  }
}
