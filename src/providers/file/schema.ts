import { z } from "zod";
import type { SchemaTools } from "../../config/tools.js";

export const fileSchema = (t: SchemaTools) =>
  z
    .object({
      type: z.literal("file"),
      /** Folder holding one file per secret (/run/secrets, a Kubernetes secret mount) or .env/JSON files. */
      dir: t.path(),
      /** Largest file read, so a wrong path (a log, a device) cannot fill memory. */
      max_bytes: z
        .number()
        .int()
        .min(1)
        .max(16 * 1024 * 1024)
        .default(1024 * 1024),
    })
    .strict();
