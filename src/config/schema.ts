import { z } from "zod";
import { providerTypes } from "../providers/registry.js";
import { schemaTools, type SchemaTools } from "./tools.js";
import { clip, quote } from "./quote.js";
import { secretsSchema, type SecretConfig } from "./secrets-schema.js";
import { mqttSchema, type MqttConfig } from "./mqtt-schema.js";

export const SEAL_TYPES = ["tpm2", "host", "tpm2+host"] as const;
export const LOG_LEVELS = ["fatal", "error", "warn", "info", "debug", "trace", "silent"] as const;

// A policy glob: secret-name characters plus `*` (one segment) and `**` (any depth).
const GLOB = /^[a-z0-9*][a-z0-9._/*-]*$/;

const policyRule = z
  .object({
    match: z
      .object({
        uid: z.number().int().min(0).optional(),
        user: z.string().min(1).optional(),
        gid: z.number().int().min(0).optional(),
        group: z.string().min(1).optional(),
        unit: z.string().min(1).optional(),
        exe: z.string().startsWith("/", "must be an absolute path").optional(),
      })
      .strict()
      .refine((m) => Object.keys(m).length > 0, "must name at least one of uid, user, gid, group, unit, exe"),
    allow: z.array(z.string().regex(GLOB, "must be a secret-name glob such as kafka/* or db/**")).default([]),
    admin: z.boolean().default(false),
  })
  .strict();

/** The whole config; built per file because relative paths resolve against its folder. */
export function configSchema(baseDir: string) {
  const t = schemaTools(baseDir);
  const providerUnion = z.discriminatedUnion(
    "type",
    Object.values(providerTypes).map((p) => p.schema(t)) as unknown as [z.ZodDiscriminatedUnionOption<"type">, ...z.ZodDiscriminatedUnionOption<"type">[]],
  );
  return z
    .object({
      data_dir: t.path().default("/var/lib/sealcache"),
      socket: t.path().default("/run/sealcache/sealcache.sock"),
      seal: z
        .object({
          type: z.enum(SEAL_TYPES).default("tpm2"),
          tcti: z.string().min(1).default("device:/dev/tpmrm0"),
          pcrs: z.array(z.number().int().min(0).max(23)).default([]),
          // TPM anti-rollback NV counter; the owner NV range. Default: DEFAULT_COUNTER_INDEX in src/seal/rollback.ts.
          counter_index: z
            .number()
            .int()
            .min(0x01000000, "must be in the owner NV range 0x01000000-0x013fffff")
            .max(0x013fffff, "must be in the owner NV range 0x01000000-0x013fffff")
            .default(0x01005343),
        })
        .strict()
        .default({}),
      sync: syncSchema(t).default({}),
      providers: z.record(z.string().regex(/^[a-z0-9][a-z0-9_-]*$/, "provider names are [a-z0-9][a-z0-9_-]*"), providerUnion).default({}),
      secrets: secretsSchema(),
      policy: z.array(policyRule).optional(),
      mqtt: mqttSchema(t).optional(),
      server: serverSchema().default({}),
      audit: z
        .object({
          retention: t.duration().default("30d"),
          max_rows: z.number().int().min(100).max(100_000_000).default(100_000),
        })
        .strict()
        .default({}),
      metrics: z
        .object({ secret_names: z.boolean().default(false) })
        .strict()
        .default({}),
      log: z
        .object({ level: z.enum(LOG_LEVELS).default("info") })
        .strict()
        .default({}),
    })
    .strict()
    .superRefine((c, ctx) => {
      for (const [name, s] of Object.entries(c.secrets)) {
        if (!(s.provider in c.providers)) {
          ctx.addIssue({
            code: z.ZodIssueCode.custom,
            path: ["secrets", name, "provider"],
            message: `no provider named ${quote(s.provider)}; defined providers: ${listNames(Object.keys(c.providers))}`,
          });
        }
      }
      if (c.mqtt?.password_secret && !(c.mqtt.password_secret in c.secrets)) {
        ctx.addIssue({
          code: z.ZodIssueCode.custom,
          path: ["mqtt", "password_secret"],
          message: `no secret named ${quote(c.mqtt.password_secret)} under secrets`,
        });
      }
    });
}

/** Names for an error: the first ten (each clipped) and how many more. */
function listNames(names: readonly string[]): string {
  if (names.length === 0) return "(none)";
  const shown = names.slice(0, 10).map(clip).join(", ");
  return names.length > 10 ? `${shown} and ${names.length - 10} more` : shown;
}

function syncSchema(t: SchemaTools) {
  return z
    .object({
      interval: t.duration().default("5m"),
      jitter: z.number().min(0).max(1).default(0.2),
      /** How old (since its last successful fetch) a value that cannot be refreshed may be served; 0 = forever. */
      max_stale: t.duration().default(0),
      concurrency: z.number().int().min(1).max(64).default(4),
      timeout: t.duration().default("30s"),
      backoff_min: t.duration().default("2s"),
      backoff_max: t.duration().default("5m"),
    })
    .strict();
}

/** Limits on the socket: connections overall and per uid, and a per-uid request rate (token bucket). */
function serverSchema() {
  return z
    .object({
      max_connections: z.number().int().min(1).max(65_536).default(256),
      max_connections_per_uid: z.number().int().min(1).max(65_536).default(10),
      rate: z
        .object({
          per_uid_rps: z.number().positive().max(1_000_000).default(100),
          burst: z.number().int().min(1).max(1_000_000).default(200),
        })
        .strict()
        .default({}),
    })
    .strict();
}

export type Config = z.output<ReturnType<typeof configSchema>>;
export type SyncConfig = Config["sync"];
export type { SecretConfig };
export type PolicyRule = NonNullable<Config["policy"]>[number];
export type SealConfig = Config["seal"];
export type ServerConfig = Config["server"];
export type { MqttConfig };
