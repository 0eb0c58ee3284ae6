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
  typeof v !== "string"
    ? { ok: false, message: `expected string, got ${typeOf(v)}` }
    : v.length === 0
      ? { ok: false, message: "must be at least 1 characters" }
      : { ok: true, value: v };

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
    // Checked in place (a duration becomes its ms) and returned as parsed: at 100,000
    // secrets a copy of every entry was 100,000 objects of garbage at start.
    const out = raw as Record<string, Record<string, unknown>>;
    const required = Object.entries(FIELDS).filter(([, f]) => f.required);
    // A YAML alias makes several names share one entry object: it is converted once.
    const done = new WeakSet<object>();
    for (const name in out) {
      const entry = out[name];
      const problem = nameProblem(name);
      if (problem) ctx.addIssue({ code: z.ZodIssueCode.custom, path: [name], message: `secret name ${quote(name)} ${problem}` });
      if (typeof entry !== "object" || entry === null || Array.isArray(entry)) {
        ctx.addIssue({ code: z.ZodIssueCode.custom, path: [name], message: `expected object, got ${typeOf(entry)}` });
        continue;
      }
      if (done.has(entry)) continue;
      done.add(entry);
      for (const k in entry) {
        const field = FIELDS[k];
        if (!field) {
          ctx.addIssue({ code: z.ZodIssueCode.custom, path: [name, k], message: "unknown key (misspelled? see the config reference in README.md)" });
          continue;
        }
        const r = field.check(entry[k]);
        if (r.ok) entry[k] = r.value;
        else ctx.addIssue({ code: z.ZodIssueCode.custom, path: [name, k], message: r.message });
      }
      for (const [k] of required) {
        if (!(k in entry)) ctx.addIssue({ code: z.ZodIssueCode.custom, path: [name, k], message: "required (expected string)" });
      }
    }
    return out as unknown as Record<string, SecretConfig>;
  });
}
