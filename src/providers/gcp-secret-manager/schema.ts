import { z } from "zod";
import type { SchemaTools } from "../../config/tools.js";

// Validated now; the provider itself arrives with the GCP/Azure backends work.
export const gcpSecretManagerSchema = (t: SchemaTools) =>
  z
    .object({
      type: z.literal("gcp-secret-manager"),
      endpoint: z.string().min(1).optional(),
      project: z.string().optional(),
      credentials_file: t.path().optional(),
    })
    .strict();
