import tls from "node:tls";
// The v1 client alone: the package's index also loads the v1beta clients and 1.1 MB
// of generated static protobuf code (its `protos` typings export), which the gRPC
// client does not use. The SDK is pinned (package.json), so this path is stable.
import { SecretManagerServiceClient } from "@google-cloud/secret-manager/build/src/v1/secret_manager_service_client.js";
import { GoogleAuth, PassThroughClient } from "google-auth-library";
import { grpc, routingHeader } from "google-gax";
import type { Logger } from "../../log.js";
import { ProviderError } from "../provider.js";
import type { GcpCredentials } from "./credentials.js";
import { SERVICE } from "./credentials.js";
import { quietIpServername, quietSdk } from "./quiet.js";

const SERVICE_NAME = "google.cloud.secretmanager.v1.SecretManagerService";

/**
 * The SDK's retries for AccessSecretVersion are off: by default it retries
 * RESOURCE_EXHAUSTED and UNAVAILABLE for up to 10 minutes (2 s doubling to
 * 60 s), which would hold a batch past sync.timeout and multiply the requests a
 * throttled project sees. The sync engine backs off with jitter instead.
 */
const NO_RETRIES = {
  interfaces: {
    [SERVICE_NAME]: {
      retry_codes: { none: [] },
      methods: { AccessSecretVersion: { retry_codes_name: "none", retry_params_name: "default", timeout_millis: 60_000 } },
    },
  },
};

export function splitEndpoint(endpoint: string | undefined): { host: string; port: number } {
  const e = endpoint ?? `${SERVICE}:443`;
  const m = /^(\[[^\]]+\]|[^:]+)(?::(\d+))?$/.exec(e);
  return { host: m?.[1] ?? e, port: m?.[2] !== undefined ? Number(m[2]) : 443 };
}

/**
 * The SDK client over gRPC (its default transport) with our own channel
 * credentials: TLS trusting the public roots plus `tls.ca_file`, combined with
 * call credentials from GcpCredentials. google-gax adds the call credentials
 * itself only when it builds the TLS credentials too, so with our own
 * `sslCreds` they are combined here; the auth library answers `Headers`, grpc-js
 * wants Metadata. The SDK's own `auth` is a pass-through that never looks for
 * Application Default Credentials.
 */
export function openClient(o: {
  endpoint: string | undefined;
  ca: Buffer | undefined;
  serverName: string | undefined;
  credentials: GcpCredentials;
  logger: Logger;
}): SecretManagerServiceClient {
  quietSdk(o.logger);
  const { host, port } = splitEndpoint(o.endpoint);
  quietIpServername(o.serverName ?? host.replace(/^\[|\]$/g, ""), o.logger);
  const roots = o.ca ? Buffer.concat([Buffer.from(tls.rootCertificates.join("\n") + "\n"), o.ca]) : null;
  const call = grpc.credentials.createFromMetadataGenerator((_params, callback) => {
    o.credentials.headers().then(
      (h) => {
        const md = new grpc.Metadata();
        h.forEach((value, key) => {
          md.add(key, value);
        });
        callback(null, md);
      },
      (e: Error & { kind?: string }) =>
        callback(Object.assign(new Error(e.message), { code: e.kind === "auth" ? grpc.status.UNAUTHENTICATED : grpc.status.UNAVAILABLE })),
    );
  });
  return new SecretManagerServiceClient({
    apiEndpoint: host,
    port,
    sslCreds: grpc.credentials.combineChannelCredentials(grpc.credentials.createSsl(roots), call),
    auth: new GoogleAuth({ authClient: new PassThroughClient(), universeDomain: "googleapis.com" }),
    universeDomain: "googleapis.com",
    fallback: false,
    clientConfig: NO_RETRIES,
    ...(o.serverName !== undefined ? { "grpc.ssl_target_name_override": o.serverName } : {}),
  });
}

interface Conn {
  readonly client: SecretManagerServiceClient;
  readonly ready: Promise<unknown>;
  readonly calls: Set<() => void>;
  users: number;
  retired: boolean;
}
export type { Conn };
type Cancellable<T> = Promise<T> & { cancel?: () => void };

/**
 * One SDK client (one gRPC channel) in use at a time. A channel whose calls
 * failed at the connection level (UNAVAILABLE, DEADLINE_EXCEEDED, or abandoned
 * at sync.timeout) is retired:
 * the next fetch opens a new one, which connects at once, instead of waiting out
 * grpc-js's own reconnect backoff (up to 2 minutes) after the engine's backoff
 * already decided to try again. A retired channel is closed once no fetch uses
 * it; close() cancels the calls in flight and closes every channel.
 */
export class Channel {
  readonly #open: () => SecretManagerServiceClient;
  #current: Conn | undefined;
  readonly #all = new Set<Conn>();

  constructor(open: () => SecretManagerServiceClient) {
    this.#open = open;
  }

  async use<T>(fn: (c: Conn) => Promise<T>): Promise<T> {
    let conn = this.#current;
    if (!conn) {
      const client = this.#open();
      conn = { client, ready: client.initialize(), calls: new Set(), users: 0, retired: false };
      this.#current = conn;
      this.#all.add(conn);
    }
    conn.users++;
    try {
      await conn.ready.catch((e: unknown) => {
        this.retire(conn);
        throw new ProviderError("transient", `gcp: the SDK client could not be set up (${e instanceof Error ? e.name : "error"})`);
      });
      return await fn(conn);
    } finally {
      conn.users--;
      if (conn.retired && conn.users === 0) await this.#close(conn);
    }
  }

  retire(conn: Conn): void {
    conn.retired = true;
    if (this.#current === conn) this.#current = undefined;
  }

  /** One AccessSecretVersion, cancelled when `signal` fires or the channel is closed. */
  access<R>(conn: Conn, name: string, signal: AbortSignal): Promise<R> {
    const options = { otherArgs: { headers: { "x-goog-request-params": routingHeader.fromParams({ name }) } } };
    // The SDK method's own promise cannot be cancelled; the inner call it wraps can.
    const p = conn.client.innerApiCalls.accessSecretVersion!({ name }, options) as Cancellable<[R, unknown, unknown]>;
    const cancel = () => p.cancel?.();
    conn.calls.add(cancel);
    signal.addEventListener("abort", cancel, { once: true });
    return p
      .then(([r]) => r)
      .finally(() => {
        conn.calls.delete(cancel);
        signal.removeEventListener("abort", cancel);
      });
  }

  async close(): Promise<void> {
    this.#current = undefined;
    for (const c of [...this.#all]) {
      c.retired = true;
      for (const cancel of [...c.calls]) cancel();
      await this.#close(c);
    }
  }

  async #close(c: Conn): Promise<void> {
    if (!this.#all.delete(c)) return;
    await c.client.close().catch(() => undefined);
  }
}
