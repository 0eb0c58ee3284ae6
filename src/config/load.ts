import fs from "node:fs";
import path from "node:path";
import yaml from "js-yaml";
import { z } from "zod";
import { ConfigError } from "../errors.js";
import { configSchema, type Config } from "./schema.js";
import { interpolateEnv } from "./interpolate.js";
import { envOverrides } from "./overrides.js";

export const DEFAULT_CONFIG_PATH = "/etc/sealcache/sealcache.yaml";

export interface LoadOptions {
  readonly file: string;
  readonly env?: NodeJS.ProcessEnv;
  /** Highest precedence: values from CLI flags, by key path ("socket", "log.level"). */
  readonly overrides?: Readonly<Record<string, string>>;
  /** Check that every `*_file` the config names can be read (the daemon wants this; tooling may not). */
  readonly checkFiles?: boolean;
}

export interface LoadedConfig {
  readonly file: string;
  readonly config: Config;
}

/** Reads, interpolates and validates a config file. Throws ConfigError naming every problem. */
export function loadConfig(opts: LoadOptions): LoadedConfig {
  const file = path.resolve(opts.file);
  let text: string;
  try {
    text = fs.readFileSync(file, "utf8");
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code ?? "error";
    throw new ConfigError(file, [`cannot read the config file (${code}); pass --config PATH or create it`]);
  }
  return parseConfig(text, { ...opts, file });
}

export function parseConfig(text: string, opts: LoadOptions): LoadedConfig {
  const file = opts.file;
  const env = opts.env ?? process.env;
  let raw: unknown;
  try {
    // js-yaml: ~30x faster than `yaml` on a 10,000-secret config, which matters for
    // cold start and for the garbage a gateway's heap keeps afterwards. Core schema:
    // no custom tags; duplicate keys are errors.
    raw = yaml.load(text, { schema: yaml.CORE_SCHEMA, json: false, filename: file }) ?? {};
  } catch (e) {
    // The exception's message quotes the offending text; only its reason and position are used.
    const mark = (e as { mark?: { line: number; column: number } }).mark;
    const reason = (e as { reason?: string }).reason ?? "unparseable";
    throw new ConfigError(file, [`${mark ? `line ${mark.line + 1}, column ${mark.column + 1}: ` : ""}YAML syntax: ${reason}`]);
  }
  if (typeof raw !== "object" || raw === null || Array.isArray(raw)) {
    throw new ConfigError(file, ["the top level must be a mapping of sections (data_dir, socket, seal, sync, providers, secrets, policy, mqtt, log)"]);
  }
  const problems: string[] = [];
  const interpolated = interpolateEnv(raw, env, [], problems) as Record<string, unknown>;
  if (problems.length > 0) throw new ConfigError(file, problems);

  const baseDir = path.dirname(file);
  const schema = configSchema(baseDir);
  const merged = envOverrides(schema, interpolated, env);
  for (const [keyPath, value] of Object.entries(opts.overrides ?? {})) setPath(merged, keyPath.split("."), value);

  const parsed = schema.safeParse(merged);
  if (!parsed.success) throw new ConfigError(file, formatIssues(parsed.error));
  if (opts.checkFiles) {
    const fileProblems = unreadableFiles(parsed.data, []);
    if (fileProblems.length > 0) throw new ConfigError(file, fileProblems);
  }
  return { file, config: parsed.data };
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

function formatIssues(err: z.ZodError): string[] {
  return err.issues.map((i) => {
    const where = i.path.length > 0 ? i.path.join(".") : "(top level)";
    switch (i.code) {
      case z.ZodIssueCode.unrecognized_keys:
        return i.keys.map((k) => `${i.path.length ? `${where}.` : ""}${k}: unknown key (misspelled? see the config reference in README.md)`).join("\n  ");
      case z.ZodIssueCode.invalid_type:
        return i.received === "undefined" ? `${where}: required (expected ${i.expected})` : `${where}: expected ${i.expected}, got ${i.received}`;
      case z.ZodIssueCode.invalid_union_discriminator:
        return `${where}: must be one of ${i.options.map((o) => JSON.stringify(o)).join(", ")}`;
      case z.ZodIssueCode.invalid_enum_value:
        return `${where}: must be one of ${i.options.map((o) => JSON.stringify(o)).join(", ")}, got ${JSON.stringify(i.received)}`;
      case z.ZodIssueCode.too_small:
        return `${where}: must be at least ${String(i.minimum)}${i.type === "string" ? " characters" : ""}`;
      case z.ZodIssueCode.too_big:
        return `${where}: must be at most ${String(i.maximum)}`;
      default:
        return `${where}: ${i.message}`;
    }
  });
}

/** Every `*_file` key must name a readable regular file. Contents are read later, at use. */
function unreadableFiles(node: unknown, at: string[]): string[] {
  if (node === null || typeof node !== "object") return [];
  const out: string[] = [];
  for (const [k, v] of Object.entries(node)) {
    if (k.endsWith("_file") && typeof v === "string") {
      try {
        fs.accessSync(v, fs.constants.R_OK);
        if (!fs.statSync(v).isFile()) out.push(`${[...at, k].join(".")}: ${v} is not a regular file`);
      } catch (e) {
        out.push(`${[...at, k].join(".")}: cannot read ${v} (${(e as NodeJS.ErrnoException).code ?? "error"})`);
      }
    } else {
      out.push(...unreadableFiles(v, [...at, k]));
    }
  }
  return out;
}
