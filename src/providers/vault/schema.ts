import { z } from "zod";
import type { SchemaTools } from "../../config/tools.js";

// Validated now so a config written for a later release is checked, not ignored;
// the Vault provider itself arrives with the "Backends I" work.
export const vaultSchema = (t: SchemaTools) =>
  z
    .object({
      type: z.literal("vault"),
      address: z.string().url("must be a URL such as https://vault:8200"),
      namespace: z.string().optional(),
      auth: z.discriminatedUnion("method", [
        z.object({ method: z.literal("token"), token_file: t.path() }).strict(),
        z.object({ method: z.literal("approle"), role_id_file: t.path(), secret_id_file: t.path(), mount: z.string().optional() }).strict(),
        z.object({ method: z.literal("kubernetes"), role: z.string(), jwt_file: t.path().optional(), mount: z.string().optional() }).strict(),
        z.object({ method: z.literal("jwt"), role: z.string(), jwt_file: t.path(), mount: z.string().optional() }).strict(),
      ]),
      tls: z
        .object({ ca_file: t.path().optional(), cert_file: t.path().optional(), key_file: t.path().optional(), server_name: z.string().optional() })
        .strict()
        .optional(),
    })
    .strict();
