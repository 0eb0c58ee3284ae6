import fs from "node:fs";
import { Writable } from "node:stream";
import { connectAsync, type MqttClient } from "mqtt";
import type { MqttConfig } from "../../src/config/schema.js";
import { SealcacheError } from "../../src/errors.js";
import { MemoryJtiStore } from "../../src/fleet/jti-store.js";
import { createLogger, type Logger } from "../../src/log.js";
import type { FleetAuditEntry, FleetCore, FleetPrincipal, FleetStatus, FleetTarget } from "../../src/mqtt/core.js";
import { MqttPart, type MqttEvent, type MqttTiming } from "../../src/mqtt/part.js";
import { systemClock } from "../../src/sync/clock.js";
import type { Mosquitto } from "./mosquitto.js";
import { PREFIX } from "./mosquitto.js";
import { planted } from "./planted.js";

/**
 * A small in-process FleetCore: the boundary the MQTT part is built against
 * (src/mqtt/core.ts), with secrets held as planted values so a capture of the bus
 * can be searched for them. refresh and revoke follow the daemon's rules as far
 * as the part can tell: unknown names are `not_found`, a sealed core is `sealed`.
 */
export class FakeFleetCore implements FleetCore {
  readonly values = new Map<string, Uint8Array>();
  readonly calls: { op: "refresh" | "revoke"; principal: FleetPrincipal; target: FleetTarget }[] = [];
  readonly audits: FleetAuditEntry[] = [];
  sealed = false;
  revision = 1;
  stale = 0;
  providers: Record<string, "online" | "offline"> = { local: "online" };
  readonly #listeners = new Set<() => void>();

  constructor(names: readonly string[] = ["demo/api-token", "demo/db-password", "kafka/password"]) {
    for (const n of names) this.values.set(n, new TextEncoder().encode(planted(n.replaceAll("/", "-"))));
  }

  status(): FleetStatus {
    return {
      sealed: this.sealed,
      secrets: this.values.size,
      stale: this.stale,
      providers: { ...this.providers },
      revision: this.revision,
      version: "0.0.0-test",
      names: [...this.values.keys()].sort(),
    };
  }

  onStatusChange(fn: () => void): () => void {
    this.#listeners.add(fn);
    return () => this.#listeners.delete(fn);
  }

  /** Changes something status() shows, and says so (as the daemon's store and sync do). */
  change(f: (c: this) => void): void {
    f(this);
    for (const fn of this.#listeners) fn();
  }

  async refresh(principal: FleetPrincipal, target: FleetTarget): Promise<{ queued: readonly string[] }> {
    const names = this.#resolve(target);
    this.calls.push({ op: "refresh", principal, target });
    return { queued: names };
  }

  async revoke(principal: FleetPrincipal, target: FleetTarget): Promise<{ revoked: readonly string[] }> {
    const names = this.#resolve(target);
    this.calls.push({ op: "revoke", principal, target });
    this.change((c) => {
      for (const n of names) c.values.delete(n);
      c.revision++;
    });
    return { revoked: names };
  }

  secret(name: string): Uint8Array | undefined {
    const v = this.values.get(name);
    return v ? Uint8Array.from(v) : undefined;
  }

  audit(entry: FleetAuditEntry): void {
    this.audits.push(entry);
  }

  /** Every planted value this core holds (or held), for leak searches. */
  plantedValues(): string[] {
    return [...this.values.values()].map((v) => new TextDecoder().decode(v));
  }

  #resolve(target: FleetTarget): string[] {
    if (this.sealed) throw new SealcacheError("sealed", "the cache is sealed");
    if ("all" in target) return [...this.values.keys()];
    const missing = target.names.filter((n) => !this.values.has(n));
    if (missing.length > 0) throw new SealcacheError("not_found", `no secret named ${missing[0]}`);
    return [...target.names];
  }
}

/** A pino logger whose lines are kept, for the leak check. */
export function capturedLogger(): { logger: Logger; text(): string } {
  let text = "";
  const destination = new Writable({
    write(chunk: Buffer, _enc, cb) {
      text += chunk.toString();
      cb();
    },
  });
  return { logger: createLogger({ level: "debug", destination }), text: () => text };
}

/** The mqtt section for a gateway `device` on the test broker, TLS and password file included. */
export function gatewayConfig(broker: Mosquitto, device: string, dir: string, patch: Partial<MqttConfig> = {}): MqttConfig {
  const u = broker.user(device);
  const passwordFile = `${dir}/${device}.password`;
  fs.writeFileSync(passwordFile, `${u.password}\n`, { mode: 0o600 });
  return {
    url: broker.url,
    device_id: device,
    client_id: device,
    username: device,
    password_file: passwordFile,
    ca_file: broker.certs.caFile,
    cert_file: u.cert,
    key_file: u.key,
    topic_prefix: PREFIX,
    session_expiry: 3_600_000,
    reconnect: { min: 100, max: 1_000, spread: 0 },
    commands: { trust: {}, max_lifetime: 30 * 86_400_000 },
    ...patch,
  };
}

export interface Gateway {
  readonly part: MqttPart;
  readonly core: FakeFleetCore;
  readonly jtis: MemoryJtiStore;
  readonly events: MqttEvent[];
  log(): string;
}

/** An MQTT part over a FakeFleetCore, started; stopped when the test ends. */
export async function startGateway(
  t: { after(fn: () => void | Promise<void>): void },
  config: MqttConfig,
  opts: { core?: FakeFleetCore; jtis?: MemoryJtiStore; secretNames?: boolean; timing?: MqttTiming } = {},
): Promise<Gateway> {
  const core = opts.core ?? new FakeFleetCore();
  const jtis = opts.jtis ?? new MemoryJtiStore();
  const { logger, text } = capturedLogger();
  const events: MqttEvent[] = [];
  const part = new MqttPart({
    config,
    secretNames: opts.secretNames ?? false,
    logger: logger.child({ part: "mqtt" }),
    core,
    jtis,
    clock: systemClock,
    timing: { statusMinIntervalMs: 1_000, connectTimeoutMs: 3_000, keepaliveS: 5, ...opts.timing },
    onEvent: (e) => events.push(e),
  });
  t.after(() => part.stop());
  await part.start();
  return { part, core, jtis, events, log: text };
}

/** A test client on the broker as `user` (operators, the capture), MQTT 5, clean session. */
export async function busClient(
  t: { after(fn: () => void | Promise<void>): void },
  broker: Mosquitto,
  user: string,
  extra: Record<string, unknown> = {},
): Promise<MqttClient> {
  const client = await connectAsync(broker.url, { ...broker.clientOptions(user), ...extra });
  t.after(() => client.endAsync(true));
  return client;
}

export interface Capture {
  readonly messages: { topic: string; payload: string; retain: boolean }[];
  /** Every topic and payload seen, one per line, for the leak search. */
  text(): string;
  /** Resolves with the first message matching, already seen or still to come. */
  next(
    match: (m: { topic: string; payload: string; retain: boolean }, index: number) => boolean,
    timeoutMs?: number,
    what?: string,
  ): Promise<{ topic: string; payload: string; retain: boolean }>;
}

/** Subscribes `#` as the broker's admin and keeps every message. */
export async function captureBus(t: { after(fn: () => void | Promise<void>): void }, broker: Mosquitto, user = "admin", topic = "#"): Promise<Capture> {
  const client = await busClient(t, broker, user);
  const messages: Capture["messages"] = [];
  const waiters = new Set<() => void>();
  client.on("message", (topic, payload, packet) => {
    messages.push({ topic, payload: payload.toString("utf8"), retain: packet.retain });
    for (const w of waiters) w();
  });
  await client.subscribeAsync(topic, { qos: 1 });
  return {
    messages,
    text: () => messages.map((m) => `${m.topic} ${m.payload}`).join("\n"),
    next: (match, timeoutMs = 10_000, what = "a matching message") =>
      new Promise((resolve, reject) => {
        let seen = 0;
        const check = () => {
          for (; seen < messages.length; seen++) {
            if (match(messages[seen]!, seen)) {
              waiters.delete(check);
              clearTimeout(timer);
              return resolve(messages[seen]!);
            }
          }
        };
        const timer = setTimeout(() => {
          waiters.delete(check);
          reject(
            new Error(
              `no ${what} within ${timeoutMs} ms; seen:\n${messages
                .map((m) => `${m.topic} ${m.payload.slice(0, 200)}`)
                .join("\n")
                .slice(-3000)}`,
            ),
          );
        }, timeoutMs);
        waiters.add(check);
        check();
      }),
  };
}
