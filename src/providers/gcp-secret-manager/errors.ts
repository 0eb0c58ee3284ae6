import { ProviderError } from "../provider.js";

/** gRPC status codes (google.rpc.Code) this provider tells apart. */
export const Code = {
  CANCELLED: 1,
  UNKNOWN: 2,
  INVALID_ARGUMENT: 3,
  DEADLINE_EXCEEDED: 4,
  NOT_FOUND: 5,
  PERMISSION_DENIED: 7,
  RESOURCE_EXHAUSTED: 8,
  FAILED_PRECONDITION: 9,
  ABORTED: 10,
  OUT_OF_RANGE: 11,
  UNIMPLEMENTED: 12,
  INTERNAL: 13,
  UNAVAILABLE: 14,
  DATA_LOSS: 15,
  UNAUTHENTICATED: 16,
} as const;
const NAMES: Record<number, string> = Object.fromEntries(Object.entries(Code).map(([k, v]) => [v, k]));

/** `reconnect`: the channel itself may be broken (a new one connects at once, see Channel in client.ts). */
export type Classified = { scope: "secret" | "provider"; error: ProviderError; reconnect?: boolean };

interface GrpcErrorLike {
  code?: unknown;
  details?: unknown;
  statusDetails?: unknown;
}

/**
 * What an AccessSecretVersion call threw, sorted by what it means for the cache.
 * Messages are built from the status code only; the server's `details` are read
 * to tell cases apart (disabled or destroyed, a TLS failure) but never copied.
 */
export function classifyGrpc(e: unknown, where: string, credentials: string): Classified {
  if (e instanceof ProviderError) return { scope: e.kind === "permanent" ? "secret" : "provider", error: e };
  const err = (e ?? {}) as GrpcErrorLike;
  const code = typeof err.code === "number" ? err.code : undefined;
  const details = typeof err.details === "string" ? err.details : "";
  const name = code !== undefined ? (NAMES[code] ?? `code ${code}`) : undefined;
  const secret = (kind: "permanent" | "transient", m: string): Classified => ({ scope: "secret", error: new ProviderError(kind, `${where}: ${m}`) });
  const provider = (kind: "transient" | "auth", m: string, retryAfter?: number): Classified => ({
    scope: "provider",
    error: new ProviderError(kind, `${where}: ${m}`, retryAfter === undefined ? {} : { retryAfter }),
    // A call abandoned at sync.timeout may sit on a connection that died silently (a NAT
    // timeout on a cellular link): without keepalive pings only a new channel notices.
    reconnect: code === Code.UNAVAILABLE || code === Code.DEADLINE_EXCEEDED || code === Code.CANCELLED,
  });
  switch (code) {
    case Code.NOT_FOUND:
      return secret("permanent", "not found (NOT_FOUND): no such secret, or no such version or alias");
    case Code.PERMISSION_DENIED:
      return secret(
        "permanent",
        `permission denied (PERMISSION_DENIED) for ${credentials}: it needs secretmanager.versions.access (roles/secretmanager.secretAccessor) on ` +
          `the secret; Secret Manager answers this too for a secret that does not exist`,
      );
    case Code.FAILED_PRECONDITION: {
      const state = /DESTROYED/i.test(details) ? "destroyed" : /DISABLED/i.test(details) ? "disabled" : "disabled or destroyed";
      return secret("permanent", `the version is ${state} (FAILED_PRECONDITION); enable it, or point version at another`);
    }
    case Code.INVALID_ARGUMENT:
    case Code.OUT_OF_RANGE:
      return secret("permanent", `rejected (${name}); check path and version`);
    case Code.UNIMPLEMENTED:
      return secret("permanent", "the endpoint does not serve AccessSecretVersion (UNIMPLEMENTED); check endpoint");
    case Code.RESOURCE_EXHAUSTED:
      return provider("transient", "throttled: quota exceeded (RESOURCE_EXHAUSTED); backing off", retryDelay(err.statusDetails));
    case Code.UNAVAILABLE:
      if (/certificate|self[- ]signed|SSL|TLS|handshake/i.test(details))
        return provider("transient", "TLS handshake with the endpoint failed (UNAVAILABLE); check endpoint and tls.ca_file");
      return provider("transient", "Secret Manager unreachable or unavailable (UNAVAILABLE)");
    case Code.DEADLINE_EXCEEDED:
      return provider("transient", "no answer in time (DEADLINE_EXCEEDED)");
    case Code.ABORTED:
      return provider("transient", "aborted by the server (ABORTED); retrying later");
    case Code.CANCELLED:
      // Our own cancels (sync.timeout, shutdown) are told apart by the caller.
      return provider("transient", "the call was cut before an answer (CANCELLED)");
    case Code.UNAUTHENTICATED:
      return provider(
        "auth",
        `Secret Manager refused the credentials of ${credentials} (UNAUTHENTICATED); check the credentials file, the key's state and the clock`,
      );
    case Code.INTERNAL:
    case Code.UNKNOWN:
    case Code.DATA_LOSS:
      // A server error, or an answer the client could not decode: nothing of it is used.
      return secret("transient", `the answer could not be used (${name}); rejected`);
  }
  return secret("transient", `the call failed (${name ?? (e instanceof Error ? e.name : "error")}); rejected`);
}

/** Seconds a google.rpc.RetryInfo among the status details asks to wait (capped at an hour). */
function retryDelay(details: unknown): number | undefined {
  if (!Array.isArray(details)) return undefined;
  for (const d of details) {
    const delay = (d as { retryDelay?: { seconds?: unknown; nanos?: unknown } } | null)?.retryDelay;
    if (!delay) continue;
    const s = Number(typeof delay.seconds === "object" && delay.seconds !== null ? String(delay.seconds) : (delay.seconds ?? 0));
    const n = Number(delay.nanos ?? 0);
    if (Number.isFinite(s) && Number.isFinite(n) && s >= 0) return Math.min(3600, Math.ceil(s + n / 1e9));
  }
  return undefined;
}
