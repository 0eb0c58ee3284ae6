import os from "node:os";
import { z } from "zod";
import { formatDuration } from "./duration.js";
import { quote } from "./quote.js";
import type { SchemaTools } from "./tools.js";

/**
 * A device id is one MQTT topic level (`{prefix}/{device}/cmd`) and, with the
 * default client id, the client id too: no `/`, `+`, `#` or `$`, and short enough
 * for every broker (AWS IoT Core allows 128-byte client ids, MQTT 3.1.1 only
 * promises 23 characters, which most brokers exceed). `fleet` is the fleet-wide
 * command topic's level and cannot be a device.
 */
const DEVICE_ID = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;
const DEVICE_ID_RULE = "must be 1-64 letters, digits, '.', '_' or '-', starting with a letter or digit";
/** A trust key's name, which a command's `kid` header must equal. */
const KEY_NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;
/** Topic levels separated by `/`: no empty level, no wildcard, not a `$SYS`-style topic. */
const TOPIC_PREFIX = /^[^/+#$\s\0][^/+#\s\0]*(\/[^/+#\s\0]+)*$/;

/** Longest `commands.max_lifetime`: a signed command older than a year is a key-management problem, not a command. */
export const MAX_COMMAND_LIFETIME_MS = 365 * 86_400_000;
/** The MQTT 5 session expiry interval is a 32-bit count of seconds; 0xFFFFFFFF means "never", which we do not ask for. */
const MAX_SESSION_EXPIRY_MS = 0xfffffffe * 1000;

function bounded(t: SchemaTools, min: number, max: number) {
  return t.duration().superRefine((ms, ctx) => {
    if (ms < min) ctx.addIssue({ code: z.ZodIssueCode.custom, message: `must be at least ${days(min)}` });
    else if (ms > max) ctx.addIssue({ code: z.ZodIssueCode.custom, message: `must be at most ${days(max)}` });
  });
}

/** A bound as the operator would write it: whole days as `365d`, else as formatDuration does. */
function days(ms: number): string {
  return ms >= 86_400_000 && ms % 86_400_000 === 0 ? `${ms / 86_400_000}d` : formatDuration(ms);
}

/**
 * The `mqtt` section: the fleet channel (README "Fleet channel (MQTT)"). Defaults
 * are chosen for a fleet: the device id is the hostname, the client id the device
 * id (so a broker ACL can use `%c` as well as `%u`), and the session outlives a
 * command (`session_expiry` 30 days = `commands.max_lifetime`), so a command sent
 * while the gateway is away still reaches it.
 */
export function mqttSchema(t: SchemaTools) {
  return z
    .object({
      url: z
        .string()
        .regex(/^(mqtts?|wss?):\/\//, "must be an mqtt://, mqtts://, ws:// or wss:// URL")
        .refine((u) => hostOf(u) !== "", "must name a broker host, such as mqtts://broker:8883"),
      device_id: z
        .string()
        .regex(DEVICE_ID, DEVICE_ID_RULE)
        .refine((d) => d !== "fleet", 'must not be "fleet" (the fleet-wide command topic)')
        .optional(),
      username: z.string().min(1).max(256).optional(),
      password_secret: t.secretName().optional(),
      password_file: t.path().optional(),
      ca_file: t.path().optional(),
      cert_file: t.path().optional(),
      key_file: t.path().optional(),
      topic_prefix: z
        .string()
        .max(128)
        .regex(TOPIC_PREFIX, "must be topic levels separated by / (no empty level, no + or #, not starting with $)")
        .default("sealcache"),
      client_id: z
        .string()
        .regex(/^[\x21-\x7e]{1,128}$/, "must be 1-128 printable ASCII characters without spaces")
        .optional(),
      session_expiry: bounded(t, 60_000, MAX_SESSION_EXPIRY_MS).default("30d"),
      reconnect: z
        .object({
          min: bounded(t, 100, 60_000).default("1s"),
          max: bounded(t, 1_000, 3_600_000).default("5m"),
          spread: bounded(t, 0, 600_000).default("60s"),
        })
        .strict()
        .refine((r) => r.min <= r.max, { message: "min must not be greater than max", path: ["min"] })
        .default({}),
      commands: z
        .object({
          trust: z.record(z.string().regex(KEY_NAME, "key names (the commands' kid) are 1-64 letters, digits, '.', '_' or '-'"), t.path()).default({}),
          max_lifetime: bounded(t, 60_000, MAX_COMMAND_LIFETIME_MS).default("30d"),
        })
        .strict()
        .default({}),
    })
    .strict()
    .superRefine((m, ctx) => {
      const issue = (path: string, message: string) => ctx.addIssue({ code: z.ZodIssueCode.custom, path: [path], message });
      if (m.password_secret !== undefined && m.password_file !== undefined)
        issue("password_file", "password_secret and password_file exclude each other; keep one");
      if ((m.password_secret !== undefined || m.password_file !== undefined) && m.username === undefined) {
        issue("username", "required with a password (MQTT sends a password only with a username)");
      }
      if ((m.cert_file === undefined) !== (m.key_file === undefined))
        issue(m.cert_file === undefined ? "cert_file" : "key_file", "cert_file and key_file go together (a client certificate and its key)");
      const tls = /^(mqtts|wss):/.test(m.url);
      for (const k of ["ca_file", "cert_file", "key_file"] as const) {
        if (m[k] !== undefined && !tls) issue(k, `needs TLS: use an mqtts:// or wss:// url (it is ${quote(m.url.split(":")[0])})`);
      }
    })
    .transform((m, ctx) => {
      const device_id = m.device_id ?? os.hostname();
      if (m.device_id === undefined && (!DEVICE_ID.test(device_id) || device_id === "fleet")) {
        ctx.addIssue({
          code: z.ZodIssueCode.custom,
          path: ["device_id"],
          message: `defaults to the hostname ${quote(device_id)}, which is no device id (${DEVICE_ID_RULE}); set mqtt.device_id`,
        });
        return z.NEVER;
      }
      return { ...m, device_id, client_id: m.client_id ?? device_id };
    });
}

function hostOf(url: string): string {
  try {
    return new URL(url).hostname;
  } catch {
    return "";
  }
}

export type MqttConfig = z.output<ReturnType<typeof mqttSchema>>;
