// The fleet channel through the real daemon: a gateway's config for the test broker
// (test/support/mosquitto.ts), the operator's key made and used through the CLI
// (`sealcache fleet keygen` / `fleet sign`), and small readers of the bus.
import crypto from "node:crypto";
import fs from "node:fs";
import path from "node:path";
import { connectAsync } from "mqtt";
import { cli, demoConfig } from "./daemon.js";
import type { TestKey } from "./fleet-tokens.js";
import { PREFIX, type Mosquitto } from "./mosquitto.js";

/** An operator's signing key made by `sealcache fleet keygen`: the files, and the key for tokens the CLI will not sign. */
export interface OperatorKey extends TestKey {
  readonly file: string;
  readonly pub: string;
}

export async function operatorKey(dir: string, kid = "fleet-ops"): Promise<OperatorKey> {
  const file = path.join(dir, kid);
  const r = await cli(["fleet", "keygen", "--out", file]);
  if (r.code !== 0) throw new Error(`fleet keygen failed: ${r.stderr}`);
  const privatePem = fs.readFileSync(file, "utf8");
  const privateKey = crypto.createPrivateKey(privatePem);
  const publicKey = crypto.createPublicKey(privateKey);
  return { kid, file, pub: `${file}.pub`, privateKey, publicKey, privatePem, publicPem: fs.readFileSync(`${file}.pub`, "utf8") };
}

/** `sealcache fleet sign --key F ARGS`: the token it prints. */
export async function signWithCli(key: OperatorKey, args: string[]): Promise<string> {
  const r = await cli(["fleet", "sign", "--key", key.file, ...args]);
  if (r.code !== 0) throw new Error(`fleet sign ${args.join(" ")} failed: ${r.stderr}`);
  return r.stdout.trim();
}

/** The jti a compact JWT claims (unverified). */
export function jtiOf(token: string): string {
  return JSON.parse(Buffer.from(token.split(".")[1]!, "base64url").toString("utf8")).jti;
}

export interface GatewayOptions {
  /** Trust keys by kid. */
  readonly trust: Readonly<Record<string, string>>;
  /** `file`: mqtt.password_file; `secret`: mqtt.password_secret, served from the cache (a file-provider secret). */
  readonly password?: "file" | "secret";
  /** Merged over the daemon config (demoConfig). */
  readonly patch?: Record<string, unknown>;
  /** Merged over the mqtt section. */
  readonly mqtt?: Record<string, unknown>;
}

/**
 * A daemon config for gateway `device` on the test broker: the demo secrets, a
 * sync interval of an hour (anything fetched sooner was asked for), and the fleet
 * channel with TLS, the device's client certificate, its login, and quick
 * reconnects (the defaults spread a fleet's reconnects over a minute).
 */
export function gatewayDaemonConfig(dir: string, broker: Mosquitto, device: string, o: GatewayOptions): Record<string, unknown> {
  const u = broker.user(device);
  const base = demoConfig(dir);
  const secrets: Record<string, unknown> = { ...(base.secrets as object) };
  const login: Record<string, unknown> = {};
  if (o.password === "secret") {
    fs.writeFileSync(path.join(dir, "secrets", "mqtt-password"), u.password, { mode: 0o600 });
    secrets["mqtt/password"] = { provider: "demo", path: "mqtt-password" };
    login.password_secret = "mqtt/password";
  } else {
    const f = path.join(dir, "mqtt.password");
    fs.writeFileSync(f, `${u.password}\n`, { mode: 0o600 });
    login.password_file = f;
  }
  return {
    ...base,
    sync: { interval: "1h", backoff_min: "200ms", backoff_max: "1s" },
    secrets,
    mqtt: {
      url: broker.url,
      device_id: device,
      username: device,
      ...login,
      ca_file: broker.certs.caFile,
      cert_file: u.cert,
      key_file: u.key,
      topic_prefix: PREFIX,
      session_expiry: "1h",
      reconnect: { min: "100ms", max: "1s", spread: "0" },
      commands: { trust: o.trust, max_lifetime: "30d" },
      ...o.mqtt,
    },
    ...o.patch,
  };
}

/**
 * The retained message on `topic`, as a new subscriber (`user`) gets it at once; undefined when
 * nothing is retained there. A client of its own each time, closed after.
 */
export async function retained(broker: Mosquitto, user: string, topic: string, waitMs = 2_000): Promise<{ payload: any; retain: boolean } | undefined> {
  const client = await connectAsync(broker.url, broker.clientOptions(user));
  try {
    return await new Promise((resolve) => {
      const timer = setTimeout(() => resolve(undefined), waitMs);
      client.on("message", (_t, payload, packet) => {
        clearTimeout(timer);
        resolve({ payload: JSON.parse(payload.toString("utf8")), retain: packet.retain });
      });
      void client.subscribeAsync(topic, { qos: 1 });
    });
  } finally {
    await client.endAsync(true);
  }
}
