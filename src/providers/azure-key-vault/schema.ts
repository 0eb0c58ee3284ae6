import { z } from "zod";
import type { SchemaTools } from "../../config/tools.js";

// Validated now; the provider itself arrives with the GCP/Azure backends work.
export const azureKeyVaultSchema = (t: SchemaTools) =>
  z
    .object({
      type: z.literal("azure-key-vault"),
      vault_url: z.string().url().optional(),
      endpoint: z.string().url().optional(),
      auth: z
        .object({
          method: z.enum(["client_secret", "certificate", "managed_identity", "workload_identity"]),
          tenant_id: z.string().optional(),
          client_id: z.string().optional(),
          client_secret_file: t.path().optional(),
          certificate_file: t.path().optional(),
          authority_host: z.string().url().optional(),
        })
        .strict()
        .optional(),
    })
    .strict();
