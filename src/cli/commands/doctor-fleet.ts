import net from "node:net";
import tls from "node:tls";
import { connect } from "mqtt";
import type { Config, MqttConfig } from "../../config/schema.js";
import { clip } from "../../config/quote.js";
import { describeError } from "../../errors.js";
import { readTrustKey } from "../../fleet/trust.js";
import type { FleetCore } from "../../mqtt/core.js";
import { readCredentials } from "../../mqtt/credentials.js";
import type { MqttState } from "../../mqtt/part.js";

type Add = (check: string, level: "ok" | "warn" | "fail", message: string) => void;

const TIMEOUT_MS = 5_000;

/**
 * doctor's checks of the fleet channel (`mqtt` section):
 * - the trust keys: each readable, a PEM public key, Ed25519;
 * - the broker: reachable, and for mqtts:// the TLS handshake (the server's
 *   certificate against ca_file, our client certificate accepted);
 * - the MQTT login, only while the daemon is not running. doctor then connects
 *   exactly as the daemon does (its client id, clean: false, its session expiry)
 *   so the gateway's session is resumed, never ended; it acknowledges nothing
 *   (commands queued for the gateway stay queued for the daemon) and drops the
 *   connection at the CONNACK. While the daemon runs, a second connection with
 *   its identity would take its session over, so doctor reports the daemon's own
 *   state instead (`daemonMqtt`, from /v1/health when the daemon gives it).
 * With `password_secret` the password is in the sealed cache, which doctor does
 * not open: the login is then left to the daemon.
 */
export async function checkFleet(c: Config, add: Add, opts: { daemonMqtt?: MqttState } = {}): Promise<void> {
  const m = c.mqtt;
  if (!m) return;
  checkTrustKeys(m, add);
  const u = brokerAddress(m.url);
  const tcp = await reachable(u.host, u.port);
  // Unreachable is a warning, like an offline backend: it may be the network, and the daemon serves meanwhile.
  // A broker that answers but refuses our TLS or our login is a failure: that does not heal by itself.
  if (tcp) return add("broker", "warn", `${m.url}: cannot connect (${tcp}); the daemon keeps retrying with backoff and serves meanwhile`);
  if (u.tls) {
    const problem = await tlsHandshake(m, u.host, u.port);
    if (problem) return add("broker", "fail", `${m.url}: TLS: ${problem}`);
    add(
      "broker",
      "ok",
      `${m.url}: reachable; TLS verified${m.ca_file ? ` against ${m.ca_file}` : ""}${m.cert_file ? "; our client certificate accepted" : ""}`,
    );
  } else {
    add("broker", "warn", `${m.url}: reachable, without TLS: the password and the commands cross the network in clear; use mqtts://`);
  }
  if (opts.daemonMqtt) return reportDaemonMqtt(opts.daemonMqtt, add);
  if (await daemonRunning(c.socket)) {
    return add("broker", "ok", "the daemon runs and holds the MQTT session; doctor does not log in beside it (sealcache status shows its broker state)");
  }
  if (m.password_secret !== undefined) {
    return add(
      "broker",
      "warn",
      `login not checked: the password is the cached secret ${m.password_secret}, and doctor does not unseal the cache; the daemon logs in at start`,
    );
  }
  await checkLogin(m, add);
}

/** The daemon's own view of its broker connection (MqttPart.state(), as /v1/health gives it). */
export function reportDaemonMqtt(s: MqttState, add: Add): void {
  const err = s.last_error ? ` (${s.last_error})` : "";
  if (s.state === "connected")
    add(
      "broker",
      s.subscribed && !s.last_error ? "ok" : "warn",
      `the daemon is connected as ${s.client_id}${s.subscribed ? ", subscribed to its command topics" : ", but not subscribed to its command topics"}${err}`,
    );
  else
    add(
      "broker",
      "fail",
      `the daemon is ` +
        `${s.state === "backoff" ? `waiting to retry (next attempt in ${Math.round((s.next_attempt_ms ?? 0) / 1000)} s, ${s.attempts} attempts)` : s.state}` +
        `${err}`,
    );
  for (const [name, problem] of Object.entries(s.trust.problems)) add("trust", "fail", `${name}: ${problem}`);
}

function checkTrustKeys(m: MqttConfig, add: Add): void {
  const entries = Object.entries(m.commands.trust);
  if (entries.length === 0)
    return add("trust", "warn", "no mqtt.commands.trust keys: every command sent to this gateway is refused (sealcache fleet keygen makes one)");
  for (const [name, file] of entries) {
    try {
      readTrustKey(file);
      add("trust", "ok", `${name}: ${file} is an Ed25519 public key`);
    } catch (e) {
      add("trust", "fail", `${name}: ${describeError(e)}`);
    }
  }
}

function brokerAddress(url: string): { host: string; port: number; tls: boolean } {
  const u = new URL(url);
  const tls = u.protocol === "mqtts:" || u.protocol === "wss:";
  const port = Number(u.port || (u.protocol === "mqtts:" ? 8883 : u.protocol === "mqtt:" ? 1883 : tls ? 443 : 80));
  return { host: u.hostname.replace(/^\[|\]$/g, ""), port, tls };
}

function reachable(host: string, port: number): Promise<string | undefined> {
  return new Promise((resolve) => {
    const s = net.connect({ host, port, timeout: TIMEOUT_MS });
    s.once("connect", () => (s.destroy(), resolve(undefined)));
    s.once("timeout", () => (s.destroy(), resolve(`no answer within ${TIMEOUT_MS / 1000} s`)));
    s.once("error", (e: NodeJS.ErrnoException) => resolve(e.code ?? clip(e.message)));
  });
}

/** Undefined when the handshake completes with the server verified (and, with a client certificate, not refused). */
async function tlsHandshake(m: MqttConfig, host: string, port: number): Promise<string | undefined> {
  let creds: ReturnType<typeof readCredentials>;
  try {
    creds = readCredentials({ ...m, password_file: undefined, password_secret: undefined }, { secret: () => undefined });
  } catch (e) {
    return describeError(e);
  }
  return new Promise((resolve) => {
    const s = tls.connect({
      host,
      port,
      servername: net.isIP(host) ? undefined : host,
      ca: creds.ca,
      cert: creds.cert,
      key: creds.key,
      rejectUnauthorized: true,
      timeout: TIMEOUT_MS,
    });
    const done = (r: string | undefined) => {
      creds.wipe();
      s.destroy();
      resolve(r);
    };
    // A server that refuses the client certificate closes after the handshake (TLS 1.3): give it a moment to say so.
    s.once("secureConnect", () => setTimeout(() => done(undefined), 300));
    s.once("timeout", () => done(`no handshake within ${TIMEOUT_MS / 1000} s`));
    s.once("error", (e: NodeJS.ErrnoException) =>
      done(e.code === "ERR_SSL_TLSV13_ALERT_CERTIFICATE_REQUIRED" ? "the broker requires a client certificate (mqtt.cert_file / key_file)" : clip(e.message)),
    );
  });
}

async function checkLogin(m: MqttConfig, add: Add): Promise<void> {
  let creds: ReturnType<typeof readCredentials>;
  try {
    creds = readCredentials(m, { secret: () => undefined } as Pick<FleetCore, "secret">);
  } catch (e) {
    return add("broker", "fail", describeError(e));
  }
  const result = await new Promise<{ ok: boolean; message: string }>((resolve) => {
    const client = connect(m.url, {
      protocolVersion: 5,
      clientId: m.client_id,
      clean: false,
      reconnectPeriod: 0,
      connectTimeout: TIMEOUT_MS,
      username: m.username,
      password: creds.password,
      ca: creds.ca,
      cert: creds.cert,
      key: creds.key,
      properties: { sessionExpiryInterval: Math.floor(m.session_expiry / 1000) },
    });
    // Never acknowledge: a command queued in the gateway's session stays queued for the daemon.
    client.handleMessage = () => undefined;
    let done = false;
    const finish = (r: { ok: boolean; message: string }) => {
      if (done) return;
      done = true;
      client.end(true);
      creds.wipe();
      resolve(r);
    };
    client.once("connect", (connack) =>
      finish({
        ok: true,
        message:
          `logged in as ${m.username ?? "(no username)"} with client id ${m.client_id}; the session is ` +
          `${connack.sessionPresent ? "present (kept by the broker since the daemon's last connection)" : "new"}`,
      }),
    );
    client.once("error", (e) => finish({ ok: false, message: clip(describeError(e)) }));
    client.once("close", () => finish({ ok: false, message: "the broker closed the connection before accepting the login" }));
  });
  add("broker", result.ok ? "ok" : "fail", result.message);
}

function daemonRunning(socket: string): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.connect({ path: socket });
    s.once("connect", () => (s.destroy(), resolve(true)));
    s.once("error", () => resolve(false));
  });
}
