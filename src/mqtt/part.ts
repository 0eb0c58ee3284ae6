// Longer than 300 lines on purpose: the broker connection's state machine (connect,
// spread reconnects, subscribe, publish status, hand commands to the intake, will)
// reads as one piece; topics, backoff, status and the command intake are their own modules.
import { connect, type IClientOptions, type MqttClient } from "mqtt";
import type { MqttConfig } from "../config/schema.js";
import { clip } from "../config/quote.js";
import { describeError } from "../errors.js";
import type { JtiStore } from "../fleet/jti-store.js";
import { loadTrust, type TrustKeys } from "../fleet/trust.js";
import type { Logger } from "../log.js";
import type { Clock } from "../sync/clock.js";
import { ReconnectBackoff } from "./backoff.js";
import { CommandIntake, type CommandResult } from "./commands.js";
import type { FleetCore } from "./core.js";
import { readCredentials, type Credentials } from "./credentials.js";
import { OFFLINE_STATUS, StatusPublisher } from "./status.js";
import { fleetTopics, type FleetTopics } from "./topics.js";

/** Where the part is, for health and status. */
export interface MqttState {
  readonly state: "stopped" | "connecting" | "connected" | "backoff";
  /** Wall-clock time the part entered this state. */
  readonly since: string;
  readonly broker: string;
  readonly client_id: string;
  /** Both command topics granted by the broker (QoS 1). */
  readonly subscribed: boolean;
  /** Why the last attempt or connection failed (or a subscription was refused); null once connected cleanly. */
  readonly last_error: string | null;
  /** In backoff: milliseconds until the next attempt. */
  readonly next_attempt_ms: number | null;
  /** Connection attempts since start. */
  readonly attempts: number;
  /** Trust keys loaded, and each unusable one with its reason. */
  readonly trust: { readonly keys: readonly string[]; readonly problems: Readonly<Record<string, string>> };
}

/** Knobs for tests and the bench; the daemon uses the defaults. */
export interface MqttTiming {
  readonly statusMinIntervalMs?: number;
  /** How long a connection must last to count as established (backoff.ts). Default 30 s. */
  readonly stableMs?: number;
  readonly connectTimeoutMs?: number;
  readonly keepaliveS?: number;
}

/** What happened, for tests and the bench to count. */
export type MqttEvent = { readonly type: "attempt" | "connected" | "closed"; readonly mono: number };

export interface MqttPartOptions {
  readonly config: MqttConfig;
  /** `metrics.secret_names`: status and results may name secrets. */
  readonly secretNames: boolean;
  readonly logger: Logger;
  readonly core: FleetCore;
  readonly jtis: JtiStore;
  readonly clock: Clock;
  readonly timing?: MqttTiming;
  readonly random?: () => number;
  readonly onEvent?: (e: MqttEvent) => void;
}

/**
 * How many results wait for a connection at most (a command finishing while the
 * broker is away); the oldest go first. Each one is in the audit trail anyway.
 */
const MAX_PENDING_RESULTS = 100;
/** The largest packet the broker may send us; bigger ones it drops (MQTT 5). Commands are refused past 64 KiB anyway. */
const MAX_PACKET_BYTES = 2 * 1024 * 1024;
/** How long stop() waits for a command being carried out, and then for the offline status to be acknowledged. */
const STOP_WAIT_MS = 10_000;
const STOP_PUBLISH_MS = 2_000;

/**
 * The fleet channel (README "Fleet channel (MQTT)"): one MQTT 5 connection with a
 * persistent session, a retained status, the command intake, and its own
 * reconnect backoff. A part of the daemon with start()/stop(); never on the path
 * of a lookup. Nothing the broker does (down, slow, refusing, misconfigured)
 * throws out of it: it is reported by state() and the log, and retried.
 */
export class MqttPart {
  readonly #o: MqttPartOptions;
  readonly #log: Logger;
  readonly #topics: FleetTopics;
  readonly #backoff: ReconnectBackoff;
  #trust: TrustKeys = { keys: new Map(), problems: new Map() };
  #client: MqttClient | undefined;
  #clientOptions: IClientOptions | undefined;
  #status: StatusPublisher | undefined;
  #intake: CommandIntake | undefined;
  #unsubscribe: (() => void) | undefined;
  #timer: NodeJS.Timeout | undefined;
  #nextAt: number | undefined;
  #credentials: Credentials | undefined;
  #pending: CommandResult[] = [];
  #state: MqttState["state"] = "stopped";
  #since = 0;
  #subscribed = false;
  #lastError: string | null = null;
  #attempts = 0;
  #stopping = false;

  constructor(opts: MqttPartOptions) {
    this.#o = opts;
    this.#log = opts.logger;
    this.#topics = fleetTopics(opts.config.topic_prefix, opts.config.device_id);
    this.#since = opts.clock.wall();
    const r = opts.config.reconnect;
    this.#backoff = new ReconnectBackoff({ minMs: r.min, maxMs: r.max, spreadMs: r.spread, stableMs: opts.timing?.stableMs ?? 30_000, random: opts.random });
  }

  state(): MqttState {
    return {
      state: this.#state,
      since: new Date(this.#since).toISOString(),
      broker: this.#o.config.url,
      client_id: this.#o.config.client_id,
      subscribed: this.#subscribed,
      last_error: this.#lastError,
      next_attempt_ms: this.#state === "backoff" && this.#nextAt !== undefined ? Math.max(0, Math.round(this.#nextAt - this.#o.clock.mono())) : null,
      attempts: this.#attempts,
      trust: { keys: [...this.#trust.keys.keys()], problems: Object.fromEntries(this.#trust.problems) },
    };
  }

  /** Loads the trust keys and makes the first attempt; resolves at once (the broker may be down for hours). */
  async start(): Promise<void> {
    if (this.#client || this.#stopping) return;
    const c = this.#o.config;
    this.#trust = loadTrust(c.commands.trust);
    for (const [name, problem] of this.#trust.problems)
      this.#log.error({ key: name }, `mqtt.commands.trust.${name} cannot be used: ${problem}; commands it signs are refused`);
    if (this.#trust.keys.size === 0) this.#log.warn("mqtt: no usable trust key (mqtt.commands.trust); every command will be refused");
    this.#status = new StatusPublisher({
      core: this.#o.core,
      clock: this.#o.clock,
      logger: this.#log,
      secretNames: this.#o.secretNames,
      minIntervalMs: this.#o.timing?.statusMinIntervalMs,
      publish: (payload) => this.#publish(this.#topics.status, payload, true),
    });
    this.#intake = new CommandIntake({
      deviceId: c.device_id,
      trust: this.#trust,
      maxLifetimeMs: c.commands.max_lifetime,
      core: this.#o.core,
      jtis: this.#o.jtis,
      clock: this.#o.clock,
      logger: this.#log,
      secretNames: this.#o.secretNames,
      publishResult: (r) => this.#result(r),
    });
    this.#unsubscribe = this.#o.core.onStatusChange(() => this.#status?.changed());
    this.#clientOptions = {
      protocolVersion: 5,
      clientId: c.client_id,
      clean: false,
      manualConnect: true,
      // Reconnection is ours (backoff.ts): mqtt.js would retry at a fixed period.
      reconnectPeriod: 0,
      resubscribe: false,
      connectTimeout: this.#o.timing?.connectTimeoutMs ?? 10_000,
      keepalive: this.#o.timing?.keepaliveS ?? 60,
      rejectUnauthorized: true,
      username: c.username,
      properties: { sessionExpiryInterval: Math.floor(c.session_expiry / 1000), receiveMaximum: 32, maximumPacketSize: MAX_PACKET_BYTES },
      will: { topic: this.#topics.status, payload: Buffer.from(OFFLINE_STATUS), qos: 1, retain: true },
    };
    try {
      this.#client = connect(c.url, this.#clientOptions);
    } catch (e) {
      // A URL mqtt.js cannot use (the schema checked its form): reported, never thrown.
      this.#lastError = `mqtt.url cannot be used: ${clip(describeError(e))}`;
      this.#log.error(this.#lastError);
      this.#enter("stopped");
      return;
    }
    this.#wire(this.#client);
    this.#log.info({ broker: c.url, client_id: c.client_id, device_id: c.device_id, trust: [...this.#trust.keys.keys()] }, "mqtt: starting");
    this.#attempt();
  }

  async stop(): Promise<void> {
    if (this.#stopping) return;
    this.#stopping = true;
    clearTimeout(this.#timer);
    this.#unsubscribe?.();
    this.#status?.disconnected();
    const client = this.#client;
    try {
      await withTimeout(this.#intake?.idle() ?? Promise.resolve(), STOP_WAIT_MS);
      if (client?.connected && this.#status) {
        // A clean DISCONNECT suppresses the will, so the offline status is published by hand.
        const offline = this.#safePayload(false) ?? OFFLINE_STATUS;
        await withTimeout(
          client.publishAsync(this.#topics.status, offline, { qos: 1, retain: true }).then(() => undefined),
          STOP_PUBLISH_MS,
        );
        await withTimeout(client.endAsync(false), STOP_PUBLISH_MS);
      }
    } catch (e) {
      this.#log.warn({ err: describeError(e) }, "mqtt: unclean stop");
    } finally {
      // end() of a client that never opened a stream (every attempt failed before connecting) would throw.
      if (client?.stream) {
        client.end(true);
        // A clean end that timed out leaves mqtt.js "disconnecting": the socket goes regardless.
        client.stream.destroy();
      }
      this.#credentials?.wipe();
      this.#enter("stopped");
      this.#log.info("mqtt: stopped");
    }
  }

  #wire(client: MqttClient): void {
    client.on("connect", (connack) => {
      this.#credentials?.wipe();
      this.#credentials = undefined;
      this.#backoff.connected(this.#o.clock.mono());
      this.#lastError = null;
      this.#enter("connected");
      this.#event("connected");
      this.#log.info({ session_present: connack.sessionPresent }, "mqtt: connected");
      this.#subscribe(client);
      this.#status?.connected();
      for (const r of this.#pending.splice(0)) this.#result(r);
    });
    client.on("message", (topic, payload) => {
      if (topic === this.#topics.cmd || topic === this.#topics.fleetCmd) this.#intake?.receive(topic, payload);
    });
    client.on("error", (e) => {
      // Logged with the retry that follows (mqtt.js may emit one failure twice).
      this.#lastError = clip(describeError(e)).slice(0, 200);
      this.#log.debug({ err: this.#lastError }, "mqtt: error");
    });
    client.on("disconnect", (packet) => {
      const reason = packet.properties?.reasonString ?? `reason code ${packet.reasonCode ?? 0}`;
      this.#lastError = `the broker disconnected us (${clip(reason)})`;
      this.#log.warn(this.#lastError);
    });
    client.on("close", () => this.#closed());
  }

  #attempt(): void {
    this.#timer = undefined;
    if (this.#stopping || !this.#client || !this.#clientOptions) return;
    this.#attempts++;
    this.#enter("connecting");
    this.#event("attempt");
    let creds: Credentials;
    try {
      creds = readCredentials(this.#o.config, this.#o.core);
    } catch (e) {
      this.#lastError = describeError(e);
      this.#log.warn(`mqtt: ${this.#lastError}`);
      return this.#retry();
    }
    this.#credentials?.wipe();
    this.#credentials = creds;
    // mqtt.js reads these from its options object (a copy of ours) at each connect(): files are
    // re-read, so a renewed certificate or a rotated password is picked up without a restart.
    Object.assign(this.#client.options, { ca: creds.ca, cert: creds.cert, key: creds.key, password: creds.password });
    try {
      this.#client.connect();
    } catch (e) {
      this.#lastError = clip(describeError(e));
      this.#retry();
    }
  }

  #closed(): void {
    this.#credentials?.wipe();
    this.#credentials = undefined;
    if (this.#client) this.#client.options.password = undefined;
    this.#subscribed = false;
    this.#status?.disconnected();
    this.#event("closed");
    if (this.#stopping) return;
    if (this.#state === "connected") {
      this.#lastError ??= "the connection was closed (by the broker or the network)";
      this.#log.warn({ err: this.#lastError }, "mqtt: connection lost");
    }
    this.#retry();
  }

  #retry(): void {
    if (this.#stopping || this.#timer) return;
    const delay = this.#backoff.closed(this.#o.clock.mono());
    this.#nextAt = this.#o.clock.mono() + delay;
    this.#enter("backoff");
    this.#log.info({ delay_ms: delay, err: this.#lastError, attempts: this.#attempts }, "mqtt: next attempt");
    this.#timer = setTimeout(() => this.#attempt(), delay);
  }

  #subscribe(client: MqttClient): void {
    const topics = [this.#topics.cmd, this.#topics.fleetCmd];
    // rh 1: retained messages only for a new subscription, so a retained command is not re-read at every reconnect.
    client.subscribe(topics, { qos: 1, rh: 1 }, (err, granted) => {
      if (err) {
        this.#lastError = `subscribing to the command topics failed: ${clip(describeError(err))}`;
        return this.#log.error(this.#lastError);
      }
      const refused = (granted ?? []).filter((g) => g.qos >= 0x80);
      this.#subscribed = refused.length === 0 && (granted ?? []).length === topics.length;
      if (refused.length > 0) {
        this.#lastError =
          `the broker refused the subscription to ` +
          `${refused.map((g) => `${g.topic} (reason code 0x${g.qos.toString(16)})`).join(", ")}: check its ACL (each gateway reads ` +
          `${this.#topics.cmd} and ${this.#topics.fleetCmd})`;
        this.#log.error(this.#lastError);
      } else {
        this.#log.info({ topics }, "mqtt: subscribed");
      }
    });
  }

  #result(r: CommandResult): void {
    if (!this.#client?.connected) {
      this.#pending.push(r);
      if (this.#pending.length > MAX_PENDING_RESULTS) this.#pending.shift();
      return;
    }
    this.#publish(this.#topics.result, JSON.stringify(r), false);
  }

  #publish(topic: string, payload: string, retain: boolean): void {
    this.#client?.publish(topic, payload, { qos: 1, retain }, (err) => {
      if (!err || this.#stopping) return;
      // A PUBACK with a reason code >= 0x80 (0x87 not authorized): the broker's ACL, which no retry fixes.
      const refused = typeof (err as { code?: unknown }).code === "number" && (err as { code: number }).code >= 0x80;
      if (refused)
        this.#lastError =
          `the broker refused our publish on ${topic} (${clip(describeError(err))}): check its ACL (each gateway writes ` +
          `${this.#topics.status} and ${this.#topics.result})`;
      this.#log.warn({ topic, err: clip(describeError(err)) }, "mqtt: publish failed");
    });
  }

  #safePayload(online: boolean): string | undefined {
    try {
      return this.#status?.payload(online);
    } catch {
      return undefined;
    }
  }

  #enter(state: MqttState["state"]): void {
    if (this.#state !== state) this.#since = this.#o.clock.wall();
    this.#state = state;
  }

  #event(type: MqttEvent["type"]): void {
    this.#o.onEvent?.({ type, mono: this.#o.clock.mono() });
  }
}

function withTimeout<T>(p: Promise<T>, ms: number): Promise<T | undefined> {
  let timer: NodeJS.Timeout | undefined;
  return Promise.race([p, new Promise<undefined>((resolve) => (timer = setTimeout(() => resolve(undefined), ms)))]).finally(() => clearTimeout(timer));
}
