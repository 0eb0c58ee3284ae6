import path from "node:path";
import { z } from "zod";
import { parseDuration } from "./duration.js";
import { nameProblem } from "./names.js";
import { quote } from "./quote.js";

/**
 * Schema building blocks shared by the core schema and each provider's own schema
 * (src/providers/<type>/schema.ts). Paths are resolved against the config file's
 * folder, so a config and the files it names can move together.
 */
export interface SchemaTools {
  /** A filesystem path; relative paths are taken from the config file's folder. */
  path(): z.ZodEffects<z.ZodString, string, string>;
  /** A duration such as "30s", "5m", "1h" or a number of seconds; parsed to ms. */
  duration(): z.ZodEffects<z.ZodUnion<[z.ZodString, z.ZodNumber]>, number, string | number>;
  /** A secret name as the README defines it (Secret names). */
  secretName(): z.ZodEffects<z.ZodString, string, string>;
}

export function schemaTools(baseDir: string): SchemaTools {
  return {
    path: () =>
      z
        .string()
        .min(1, "must be a non-empty path")
        .transform((p) => (path.isAbsolute(p) ? path.normalize(p) : path.resolve(baseDir, p))),
    duration: () =>
      z.union([z.string(), z.number()]).transform((v, ctx) => {
        const ms = parseDuration(v);
        if (ms === undefined) {
          ctx.addIssue({ code: z.ZodIssueCode.custom, message: `expected a duration such as "30s", "5m" or "1h", got ${quote(v)}` });
          return z.NEVER;
        }
        return ms;
      }),
    secretName: () =>
      z.string().superRefine((n, ctx) => {
        const problem = nameProblem(n);
        if (problem) ctx.addIssue({ code: z.ZodIssueCode.custom, message: `secret name ${quote(n)} ${problem}` });
      }) as unknown as z.ZodEffects<z.ZodString, string, string>,
  };
}
