import type { z } from "zod";

/**
 * Applies, in place, environment overrides derived from the schema: every scalar key of a fixed
 * section can be set as SEALCACHE_<PATH> (SEALCACHE_SYNC_INTERVAL, SEALCACHE_SOCKET).
 * Records (providers, secrets) and lists are file-only: their keys are data.
 */
export function envOverrides(schema: z.ZodTypeAny, raw: Record<string, unknown>, env: NodeJS.ProcessEnv): Record<string, unknown> {
  const out = raw;
  for (const leaf of scalarLeaves(schema, [])) {
    const v = env[leaf.env];
    if (v === undefined) continue;
    let node = out;
    for (const k of leaf.path.slice(0, -1)) {
      if (typeof node[k] !== "object" || node[k] === null) node[k] = {};
      node = node[k] as Record<string, unknown>;
    }
    node[leaf.path[leaf.path.length - 1]!] = coerce(leaf.kind, v);
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
  const kind = typeName === "ZodNumber" ? "number" : typeName === "ZodBoolean" ? "boolean" : typeName === "ZodString" || typeName === "ZodEnum" || typeName === "ZodUnion" ? "string" : undefined;
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

function coerce(kind: ScalarLeaf["kind"], v: string): unknown {
  if (kind === "number") return v.trim() === "" ? v : Number(v);
  if (kind === "boolean") return v === "true" ? true : v === "false" ? false : v;
  return v;
}
