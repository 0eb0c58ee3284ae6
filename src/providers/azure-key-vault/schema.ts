import { z } from "zod";
import type { SchemaTools } from "../../config/tools.js";

const https = (what: string) =>
  z
    .string()
    .url(`must be a URL such as ${what}`)
    .refine((u) => u.startsWith("https://"), "must be an https:// URL (tokens are sent to it)");
/** A directory (tenant) id or a verified domain, as Entra accepts them. */
const tenant = z.string().regex(/^[0-9A-Za-z.-]{1,256}$/, "must be a directory (tenant) id or a domain such as contoso.onmicrosoft.com");
const clientId = z.string().min(1, "must be the application (client) id");
const authority = https("https://login.microsoftonline.com").optional();

/**
 * `auth.method` and the keys each method takes (the README lists them all; each
 * method accepts only its own, so a key meant for another method is an error, not
 * silently unused).
 */
const auth = (t: SchemaTools) =>
  z.discriminatedUnion("method", [
    z.object({ method: z.literal("client_secret"), tenant_id: tenant, client_id: clientId, client_secret_file: t.path(), authority_host: authority }).strict(),
    z
      .object({
        method: z.literal("certificate"),
        tenant_id: tenant,
        client_id: clientId,
        /** PEM with the certificate and its (unencrypted) private key. */
        certificate_file: t.path(),
        /** Sends the certificate chain (x5c) with each assertion, for subject name / issuer authentication. */
        send_certificate_chain: z.boolean().default(false),
        authority_host: authority,
      })
      .strict(),
    /**
     * The machine's identity: Azure Arc's local agent (HIMDS) on an Arc-connected
     * gateway, IMDS on an Azure VM. `client_id` picks a user-assigned identity (IMDS only).
     */
    z.object({ method: z.literal("managed_identity"), client_id: clientId.optional() }).strict(),
    z.object({ method: z.literal("workload_identity"), tenant_id: tenant, client_id: clientId, token_file: t.path(), authority_host: authority }).strict(),
  ]);

export const azureKeyVaultSchema = (t: SchemaTools) =>
  z
    .object({
      type: z.literal("azure-key-vault"),
      /**
       * https://NAME.vault.azure.net (or a sovereign cloud's vault). This is the
       * provider's endpoint: there is no separate `endpoint` key.
       */
      vault_url: https("https://NAME.vault.azure.net"),
      /** A CA bundle trusted for the vault and the token endpoint (a TLS-inspecting proxy, a test server). */
      tls: z.object({ ca_file: t.path().optional() }).strict().optional(),
      /** Default: the machine's managed identity (Arc or IMDS). */
      auth: auth(t).default({ method: "managed_identity" }),
      /** Secrets read at once within one sync batch (Key Vault has no batch read). */
      concurrency: z.number().int().min(1).max(64).default(4),
    })
    .strict();
