import { z } from "zod";
import type { SchemaTools } from "../../config/tools.js";

export const envSchema = (_t: SchemaTools) =>
  z
    .object({
      type: z.literal("env"),
      /** Prepended to each secret's `path` to form the variable name. */
      prefix: z
        .string()
        .regex(/^[A-Za-z_][A-Za-z0-9_]*$|^$/, "must be a valid environment variable prefix")
        .default(""),
    })
    .strict();
