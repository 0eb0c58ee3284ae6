import { z } from "zod";
import type { SchemaTools } from "../../config/tools.js";

/** Where a pod's service-account token is mounted. */
export const K8S_SA_TOKEN = "/var/run/secrets/kubernetes.io/serviceaccount/token";

const mount = z
  .string()
  .regex(/^[A-Za-z0-9][A-Za-z0-9_./-]*$/, "must be an auth mount path such as approle or team/approle")
  .optional();

export const vaultSchema = (t: SchemaTools) =>
  z
    .object({
      type: z.literal("vault"),
      address: z.string().url("must be a URL such as https://vault:8200"),
      /** Vault Enterprise namespace, sent as X-Vault-Namespace on every request (login included). */
      namespace: z.string().optional(),
      auth: z.discriminatedUnion("method", [
        z.object({ method: z.literal("token"), token_file: t.path() }).strict(),
        z.object({ method: z.literal("approle"), role_id_file: t.path(), secret_id_file: t.path().optional(), mount }).strict(),
        z.object({ method: z.literal("kubernetes"), role: z.string().min(1), jwt_file: t.path().default(K8S_SA_TOKEN), mount }).strict(),
        z.object({ method: z.literal("jwt"), role: z.string().min(1), jwt_file: t.path(), mount }).strict(),
      ]),
      tls: z
        .object({ ca_file: t.path().optional(), cert_file: t.path().optional(), key_file: t.path().optional(), server_name: z.string().optional() })
        .strict()
        .refine((v) => (v.cert_file === undefined) === (v.key_file === undefined), "cert_file and key_file go together (a client certificate needs its key)")
        .optional(),
      /** Secrets read at once within one sync batch (Vault has no batch read). */
      concurrency: z.number().int().min(1).max(64).default(8),
    })
    .strict();
