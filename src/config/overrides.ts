import type { z } from "zod";
import { clip, quote } from "./quote.js";

/**
 * SEALCACHE_* variables that are not config keys. Every other SEALCACHE_* name in
 * the environment must be one (a misspelt SEALCACHE_SYNC_INTERVALL would
 * otherwise be ignored in silence, while the same typo in the file is an error).
 * Listed in README.md ("Config reference"); keep the two in step.
 */
export const NOT_CONFIG_KEYS: ReadonlySet<string> = new Set([
  "SEALCACHE_CONFIG", // the config file, when --config is not given (src/cli/context.ts)
  "SEALCACHE_FAILPOINT", // tests only: kills the process at a named step (src/daemon/failpoint.ts)
  "SEALCACHE_DEBIAN_MIRROR", // package tests only: the Debian mirror for test chroots (test/support/chroot.ts)
]);

/** Which source set a key path, for errors: `environment SEALCACHE_SYNC_INTERVAL`, `flag --log-level`. */
export type Sources = Map<string, string>;

/**
 * Applies, in place, environment overrides derived from the schema: every scalar key of a fixed
 * section can be set as SEALCACHE_<PATH> (SEALCACHE_SYNC_INTERVAL, SEALCACHE_SOCKET).
 * Records (providers, secrets) and lists are file-only: their keys are data.
 * Records in `sources` which key paths it set, and in `problems` every SEALCACHE_*
 * name that is no key (with the nearest that is) and every number or boolean
 * that does not parse. `referenced(name)` says whether the file uses the variable
 * as `${name}`: such a variable is the operator's own, not a misspelt key.
 */
export function envOverrides(
  schema: z.ZodTypeAny,
  raw: Record<string, unknown>,
  env: NodeJS.ProcessEnv,
  sources: Sources,
  problems: string[],
  referenced: (name: string) => boolean,
): Record<string, unknown> {
  const out = raw;
  const leaves = scalarLeaves(schema, []);
  const known = new Set(leaves.map((l) => l.env));
  for (const name of Object.keys(env)) {
    if (!name.startsWith("SEALCACHE_") || known.has(name) || NOT_CONFIG_KEYS.has(name) || referenced(name)) continue;
    problems.push(`environment ${clip(name)}: not a config key${suggest(name, [...known])}; see "Config reference" in README.md for the SEALCACHE_* names`);
  }
  for (const leaf of leaves) {
    const v = env[leaf.env];
    if (v === undefined) continue;
    const source = `environment ${leaf.env}`;
    const value = coerce(leaf.kind, v);
    if (!value.ok) {
      problems.push(`${source}: ${value.problem}`);
      continue;
    }
    let node = out;
    for (const k of leaf.path.slice(0, -1)) {
      if (typeof node[k] !== "object" || node[k] === null) node[k] = {};
      node = node[k] as Record<string, unknown>;
    }
    node[leaf.path[leaf.path.length - 1]!] = value.value;
    sources.set(leaf.path.join("."), source);
  }
  return out;
}

export interface ScalarLeaf {
  readonly path: string[];
  readonly env: string;
  readonly kind: "string" | "number" | "boolean";
}

export function scalarLeaves(schema: z.ZodTypeAny, at: string[]): ScalarLeaf[] {
  const s = unwrap(schema);
  const typeName = (s._def as { typeName?: string }).typeName;
  if (typeName === "ZodObject") {
    const shape = (s as z.ZodObject<z.ZodRawShape>).shape;
    return Object.entries(shape).flatMap(([k, v]) => scalarLeaves(v as z.ZodTypeAny, [...at, k]));
  }
  const kind =
    typeName === "ZodNumber"
      ? "number"
      : typeName === "ZodBoolean"
        ? "boolean"
        : typeName === "ZodString" || typeName === "ZodEnum" || typeName === "ZodUnion"
          ? "string"
          : undefined;
  if (!kind || at.length === 0) return [];
  return [{ path: at, env: `SEALCACHE_${at.join("_").toUpperCase()}`, kind }];
}

function unwrap(s: z.ZodTypeAny): z.ZodTypeAny {
  for (;;) {
    const def = s._def as { typeName?: string; innerType?: z.ZodTypeAny; schema?: z.ZodTypeAny };
    if ((def.typeName === "ZodDefault" || def.typeName === "ZodOptional") && def.innerType) s = def.innerType;
    else if (def.typeName === "ZodEffects" && def.schema) s = def.schema;
    else return s;
  }
}

function coerce(kind: ScalarLeaf["kind"], v: string): { ok: true; value: unknown } | { ok: false; problem: string } {
  if (kind === "number") {
    const n = Number(v);
    return v.trim() !== "" && Number.isFinite(n) ? { ok: true, value: n } : { ok: false, problem: `expected a number, got ${quote(v)}` };
  }
  if (kind === "boolean")
    return v === "true" || v === "false" ? { ok: true, value: v === "true" } : { ok: false, problem: `expected true or false, got ${quote(v)}` };
  return { ok: true, value: v };
}

/** ` (did you mean X?)` for the valid name nearest to `name`, if one is near enough to be a typo. */
function suggest(name: string, valid: readonly string[]): string {
  if (name.length > 200) return "";
  let best: string | undefined;
  let bestDistance = Infinity;
  for (const v of valid) {
    const d = distance(name, v);
    if (d < bestDistance) [best, bestDistance] = [v, d];
  }
  // Up to a third of the part after the prefix may differ (INTERVALL, INTREVAL),
  // or the name may be a valid one with a part added or dropped (SOCKET_PATH, SYNC).
  const limit = Math.max(2, Math.floor((name.length - "SEALCACHE_".length) / 3));
  if (best !== undefined && bestDistance <= limit) return ` (did you mean ${best}?)`;
  const longer = valid
    .filter((v) => name.startsWith(`${v}_`) || v.startsWith(`${name}_`))
    .sort((a, b) => Math.abs(a.length - name.length) - Math.abs(b.length - name.length));
  return longer.length > 0 ? ` (did you mean ${longer[0]}?)` : "";
}

/** Levenshtein distance, with adjacent transpositions counted as one edit. */
function distance(a: string, b: string): number {
  const d: number[][] = Array.from({ length: a.length + 1 }, (_, i) => [i, ...new Array<number>(b.length).fill(0)]);
  for (let j = 1; j <= b.length; j++) d[0]![j] = j;
  for (let i = 1; i <= a.length; i++) {
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      let v = Math.min(d[i - 1]![j]! + 1, d[i]![j - 1]! + 1, d[i - 1]![j - 1]! + cost);
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) v = Math.min(v, d[i - 2]![j - 2]! + 1);
      d[i]![j] = v;
    }
  }
  return d[a.length]![b.length]!;
}
