import { z } from "zod";
import { parseDuration } from "./duration.js";
import { nameProblem } from "./names.js";
import { quote, typeOf } from "./quote.js";

/** One entry of the `secrets` section, after validation. */
export interface SecretConfig {
  readonly provider: string;
  readonly path: string;
  readonly key?: string;
  readonly version?: string;
  /** ms */
  readonly refresh?: number;
  /** An empty value is served (otherwise it is an error for the secret and the cached value is kept). */
  readonly allow_empty?: boolean;
}

type Field = (v: unknown) => { ok: true; value: unknown } | { ok: false; message: string };

const nonEmpty: Field = (v) =>
  typeof v !== "string" ? { ok: false, message: `expected string, got ${typeOf(v)}` } : v.length === 0 ? { ok: false, message: "must be at least 1 characters" } : { ok: true, value: v };

const duration: Field = (v) => {
  const ms = typeof v === "string" || typeof v === "number" ? parseDuration(v) : undefined;
  return ms === undefined ? { ok: false, message: `expected a duration such as "30s", "5m" or "1h", got ${quote(v)}` } : { ok: true, value: ms };
};

const boolean: Field = (v) => (typeof v === "boolean" ? { ok: true, value: v } : { ok: false, message: `expected boolean, got ${typeOf(v)}` });

// Adding a key to a secret entry is adding a line here.
const FIELDS: Record<string, { check: Field; required: boolean }> = {
  provider: { check: nonEmpty, required: true },
  path: { check: nonEmpty, required: true },
  key: { check: nonEmpty, required: false },
  version: { check: nonEmpty, required: false },
  refresh: { check: duration, required: false },
  allow_empty: { check: boolean, required: false },
};

/**
 * The `secrets` section, checked by hand rather than by zod objects: a gateway
 * may configure thousands, and zod's per-entry cost (~20 µs and a few KB of
 * garbage each) was most of the daemon's start-up time and resident heap at
 * 10,000 secrets. Same rules and messages as the rest of the schema.
 */
export function secretsSchema() {
  return z.unknown().transform((raw, ctx): Record<string, SecretConfig> => {
    if (raw === undefined || raw === null) return {};
    if (typeof raw !== "object" || Array.isArray(raw)) {
      ctx.addIssue({ code: z.ZodIssueCode.custom, message: `expected object, got ${typeOf(raw)}` });
      return z.NEVER;
    }
    const out: Record<string, SecretConfig> = {};
    for (const [name, entry] of Object.entries(raw)) {
      const problem = nameProblem(name);
      if (problem) ctx.addIssue({ code: z.ZodIssueCode.custom, path: [name], message: `secret name ${quote(name)} ${problem}` });
      if (typeof entry !== "object" || entry === null || Array.isArray(entry)) {
        ctx.addIssue({ code: z.ZodIssueCode.custom, path: [name], message: `expected object, got ${typeOf(entry)}` });
        continue;
      }
      const value: Record<string, unknown> = {};
      for (const [k, v] of Object.entries(entry)) {
        const field = FIELDS[k];
        if (!field) {
          ctx.addIssue({ code: z.ZodIssueCode.custom, path: [name, k], message: "unknown key (misspelled? see the config reference in README.md)" });
          continue;
        }
        const r = field.check(v);
        if (r.ok) value[k] = r.value;
        else ctx.addIssue({ code: z.ZodIssueCode.custom, path: [name, k], message: r.message });
      }
      for (const [k, f] of Object.entries(FIELDS)) {
        if (f.required && !(k in entry)) ctx.addIssue({ code: z.ZodIssueCode.custom, path: [name, k], message: "required (expected string)" });
      }
      out[name] = value as unknown as SecretConfig;
    }
    return out;
  });
}
