import { z } from "zod";
import type { SchemaTools } from "../../config/tools.js";

/** HOST or HOST:PORT (IPv6 in brackets): the gRPC endpoint, TLS always, so no scheme. */
export const ENDPOINT = /^(?:[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?|\[[0-9A-Fa-f:.]+\])(?::[0-9]{1,5})?$/;

export const gcpSecretManagerSchema = (t: SchemaTools) =>
  z
    .object({
      type: z.literal("gcp-secret-manager"),
      /**
       * A non-default gRPC endpoint (default secretmanager.googleapis.com:443): a
       * regional one (secretmanager.REGION.rep.googleapis.com), Private Service
       * Connect, or a test server.
       */
      endpoint: z.string().regex(ENDPOINT, 'must be HOST or HOST:PORT such as "secretmanager.googleapis.com:443" (gRPC over TLS: no scheme)').optional(),
      /** The project of a secret whose `path` is its id alone (`db-password` is projects/{project}/secrets/db-password). */
      project: z
        .string()
        .regex(/^[a-z0-9][a-z0-9.:-]{0,62}$/, "must be a project id or number")
        .optional(),
      /** A service-account key or an external_account (workload identity federation) file; without it, the metadata server. */
      credentials_file: t.path().optional(),
      tls: z
        .object({
          /** CAs trusted, besides the public roots, for the endpoint and the external_account token endpoints. */
          ca_file: t.path().optional(),
          /**
           * The name the endpoint's certificate is checked against (and sent as SNI): for an endpoint given by IP,
           * such as a Private Service Connect address.
           */
          server_name: z
            .string()
            .regex(/^[A-Za-z0-9.-]+$/, "must be a DNS name such as secretmanager.googleapis.com")
            .optional(),
        })
        .strict()
        .optional(),
      /** AccessSecretVersion calls in flight at once within one sync batch (there is no batch read). */
      concurrency: z.number().int().min(1).max(64).default(8),
    })
    .strict();
