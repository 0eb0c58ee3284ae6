import fs from "node:fs";
import path from "node:path";
import yaml from "js-yaml";
import { z } from "zod";
import { ConfigError } from "../errors.js";
import { configSchema, type Config } from "./schema.js";
import { interpolateEnv } from "./interpolate.js";
import { envOverrides, type Sources } from "./overrides.js";
import { clip, clipPath, keyPath, quote } from "./quote.js";
import { MAX_CONFIG_BYTES, decodeConfig, readConfigBytes, type BadByte } from "./read.js";
import { aliasBudget, checkTree } from "./tree.js";

export const DEFAULT_CONFIG_PATH = "/etc/sealcache/sealcache.yaml";

export interface LoadOptions {
  readonly file: string;
  readonly env?: NodeJS.ProcessEnv;
  /** Highest precedence: values from CLI flags, by key path ("socket", "log.level"). */
  readonly overrides?: Readonly<Record<string, Override>>;
  /** Check that every `*_file` the config names can be read (the daemon wants this; tooling may not). */
  readonly checkFiles?: boolean;
}

/** A value set from outside the file, and where from, for errors (`flag --log-level`). */
export interface Override {
  readonly value: string;
  readonly source: string;
}

export interface LoadedConfig {
  readonly file: string;
  readonly config: Config;
}

/** Reads, interpolates and validates a config file. Throws ConfigError naming every problem. */
export function loadConfig(opts: LoadOptions): LoadedConfig {
  const file = path.resolve(opts.file);
  let read: ReturnType<typeof readConfigBytes>;
  try {
    read = readConfigBytes(file);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code ?? "error";
    throw new ConfigError(file, [`cannot read the config file (${code}); pass --config PATH or create it`]);
  }
  if (!read.ok) throw new ConfigError(file, [read.problem]);
  const { text, bad } = decodeConfig(read.bytes);
  return parseText(text, bad, { ...opts, file });
}

/** Parses config text (as loadConfig does once the file is read and decoded). */
export function parseConfig(text: string, opts: LoadOptions): LoadedConfig {
  if (text.length > MAX_CONFIG_BYTES)
    throw new ConfigError(opts.file, [`the config is ${text.length} characters, over the ${MAX_CONFIG_BYTES / 1024 / 1024} MiB limit`]);
  return parseText(text, undefined, opts);
}

function parseText(text: string, bad: BadByte | undefined, opts: LoadOptions): LoadedConfig {
  const file = opts.file;
  const env = opts.env ?? process.env;
  let raw: unknown;
  try {
    // js-yaml: ~30x faster than `yaml` on a 10,000-secret config (and `yaml`'s
    // duplicate-key check is quadratic: 100,000 secrets took minutes), which
    // matters for cold start and for the garbage a gateway's heap keeps afterwards.
    // Core schema: no custom tags; duplicate keys are errors. Its aliases are
    // shared references, bounded by checkTree below.
    raw = yaml.load(text, { schema: yaml.CORE_SCHEMA, json: false, filename: file }) ?? {};
  } catch (e) {
    // The exception's message quotes the offending text; only its reason and position are used.
    const mark = (e as { mark?: { line: number; column: number } }).mark;
    const reason = (e as { reason?: string }).reason ?? (e instanceof RangeError ? "nested too deeply" : "unparseable");
    const problems = [`${mark ? `line ${mark.line + 1}, column ${mark.column + 1}: ` : ""}YAML syntax: ${clip(reason)}`];
    if (bad) problems.push(...checkTree(undefined, 1, bad).problems);
    throw new ConfigError(file, problems);
  }
  let checked: ReturnType<typeof checkTree>;
  try {
    checked = checkTree(raw, aliasBudget(text.length), bad);
  } catch (e) {
    if (!(e instanceof RangeError)) throw e;
    checked = { problems: ["the config is nested too deeply"] };
  }
  if (checked.problems.length > 0) throw configError(file, checked.problems);
  if (typeof raw !== "object" || raw === null || Array.isArray(raw)) {
    throw new ConfigError(file, ["the top level must be a mapping of sections (data_dir, socket, seal, sync, providers, secrets, policy, mqtt, log)"]);
  }
  const problems: string[] = [];
  const interpolated = interpolateEnv(raw, env, [], problems) as Record<string, unknown>;
  if (problems.length > 0) throw configError(file, problems);

  const baseDir = path.dirname(file);
  const schema = configSchema(baseDir);
  const sources: Sources = new Map();
  const overrideProblems: string[] = [];
  // Only asked for an unknown SEALCACHE_* name: with 100,000 secrets the walk is not free.
  let own: Set<string> | undefined;
  const merged = envOverrides(
    schema,
    interpolated,
    env,
    sources,
    overrideProblems,
    (name) => (own ??= envProviderVariables(interpolated)).has(name) || referencedIn(text, name),
  );
  for (const [keyPath, o] of Object.entries(opts.overrides ?? {})) {
    setPath(merged, keyPath.split("."), o.value);
    sources.set(keyPath, o.source);
  }

  const parsed = schema.safeParse(merged);
  if (!parsed.success || overrideProblems.length > 0) {
    const found = parsed.success ? [] : formatIssues(parsed.error, sources);
    const issues = [...overrideProblems, ...found.map((f) => f.text)];
    throw configError(file, issues, found.every((f) => f.overridden) ? "overrides" : undefined);
  }
  if (opts.checkFiles) {
    const fileProblems = unreadableFiles(parsed.data, []);
    if (fileProblems.length > 0) throw configError(file, fileProblems);
  }
  return { file, config: parsed.data };
}

/** At most MAX_ISSUES problems are listed: a 600,000-secret file with one mistake repeated must not flood the journal. */
const MAX_ISSUES = 20;

function configError(file: string, issues: string[], from?: "overrides"): ConfigError {
  const listed = issues.length > MAX_ISSUES ? [...issues.slice(0, MAX_ISSUES), `... and ${issues.length - MAX_ISSUES} more problems`] : issues;
  return new ConfigError(file, listed, from);
}

/** Whether the file uses an environment variable as `${NAME}` (looked at only for unknown SEALCACHE_* names). */
function referencedIn(text: string, name: string): boolean {
  return text.includes(`\${${name}}`);
}

/** The variables `env` providers read (prefix + path): an operator may well name them SEALCACHE_*. */
function envProviderVariables(raw: Record<string, unknown>): Set<string> {
  const out = new Set<string>();
  const providers = raw.providers;
  const secrets = raw.secrets;
  if (!isRecord(providers) || !isRecord(secrets)) return out;
  for (const entry of Object.values(secrets)) {
    if (!isRecord(entry) || typeof entry.provider !== "string" || typeof entry.path !== "string") continue;
    const p = providers[entry.provider];
    if (isRecord(p) && p.type === "env") out.add(`${typeof p.prefix === "string" ? p.prefix : ""}${entry.path}`);
  }
  return out;
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

function setPath(obj: Record<string, unknown>, keys: string[], value: unknown): void {
  let node = obj;
  for (const k of keys.slice(0, -1)) {
    const next = node[k];
    if (typeof next !== "object" || next === null || Array.isArray(next)) node[k] = {};
    node = node[k] as Record<string, unknown>;
  }
  node[keys[keys.length - 1]!] = value;
}

/**
 * One line per issue, naming the key path, or the environment variable or flag
 * that set the key (the file is not at fault there). Values are quoted clipped.
 */
function formatIssues(err: z.ZodError, sources: Sources): { text: string; overridden: boolean }[] {
  return err.issues.map((i) => {
    const source = sources.get(i.path.join("."));
    return { text: formatIssue(i, source ?? keyPath(i.path)), overridden: source !== undefined };
  });
}

function formatIssue(i: z.ZodIssue, where: string): string {
  switch (i.code) {
    case z.ZodIssueCode.unrecognized_keys: {
      const listed = i.keys.slice(0, MAX_ISSUES).map((k) => `${keyPath([...i.path, k])}: unknown key (misspelled? see the config reference in README.md)`);
      if (i.keys.length > MAX_ISSUES) listed.push(`... and ${i.keys.length - MAX_ISSUES} more unknown keys under ${where}`);
      return listed.join("\n  ");
    }
    case z.ZodIssueCode.invalid_type:
      return i.received === "undefined" ? `${where}: required (expected ${i.expected})` : `${where}: expected ${i.expected}, got ${i.received}`;
    case z.ZodIssueCode.invalid_union_discriminator:
      return `${where}: must be one of ${i.options.map((o) => JSON.stringify(o)).join(", ")}`;
    case z.ZodIssueCode.invalid_enum_value:
      return `${where}: must be one of ${i.options.map((o) => JSON.stringify(o)).join(", ")}, got ${quote(i.received)}`;
    case z.ZodIssueCode.too_small:
      return `${where}: must be at least ${String(i.minimum)}${i.type === "string" ? " characters" : ""}`;
    case z.ZodIssueCode.too_big:
      return `${where}: must be at most ${String(i.maximum)}`;
    default:
      return `${where}: ${i.message}`;
  }
}

/** Maps whose values are all file names: `mqtt.commands.trust` (key name → PEM public key). */
function isFileMap(at: readonly string[]): boolean {
  return at.length === 3 && at[0] === "mqtt" && at[1] === "commands" && at[2] === "trust";
}

/** Every `*_file` key (and every value of a file map) must name a readable regular file. Contents are read later, at use. */
function unreadableFiles(node: unknown, at: string[]): string[] {
  if (node === null || typeof node !== "object") return [];
  const out: string[] = [];
  for (const [k, v] of Object.entries(node)) {
    // A secret entry names no file of the daemon's (its path is the backend's): not walked, as there may be 100,000.
    if (at.length === 0 && k === "secrets") continue;
    if ((k.endsWith("_file") || isFileMap(at)) && typeof v === "string") {
      // A secret typed here instead of a file name would be echoed: quoted, clipped.
      try {
        fs.accessSync(v, fs.constants.R_OK);
        if (!fs.statSync(v).isFile()) out.push(`${keyPath([...at, k])}: ${clipPath(v)} is not a regular file`);
      } catch (e) {
        out.push(`${keyPath([...at, k])}: cannot read ${clipPath(v)} (${(e as NodeJS.ErrnoException).code ?? "error"})`);
      }
    } else {
      out.push(...unreadableFiles(v, [...at, k]));
    }
  }
  return out;
}
