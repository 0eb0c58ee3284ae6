import type { PipelineRequest, PipelineResponse } from "@azure/core-rest-pipeline";
import { ProviderError, isProviderError } from "../provider.js";

/**
 * Key Vault and token-endpoint failures, sorted by what they mean for the cache.
 * Messages are built from HTTP statuses, Key Vault error codes, OAuth error codes
 * and AADSTS numbers only: SDK messages and response bodies are never copied
 * (a garbage answer could be anything, and MSAL's messages carry whole
 * descriptions from the server).
 */

/** What the last request to a token endpoint (Entra ID, the Arc agent, IMDS) got back. */
export interface Exchange {
  readonly seq: number;
  readonly host: string;
  readonly status: number | undefined;
  /** A connection-level failure (ECONNREFUSED, a TLS error, a timeout). */
  readonly network: string | undefined;
  readonly oauthError: string | undefined;
  readonly aadsts: number | undefined;
  readonly retryAfter: number | undefined;
  /** The Arc agent's key-file challenge (401 with `WWW-Authenticate: Basic realm=...`). */
  readonly basicChallenge: boolean;
}

/**
 * Every answer the token side of the SDK receives passes through here (it is the
 * HTTP client's observer), so a failed getToken can be explained from the wire:
 * MSAL and identity wrap most failures into errors without their cause. Only
 * error bodies are parsed, and only their `error` / `error_codes` fields kept: a
 * 200 answer carries an access token and is never read here.
 */
export class Exchanges {
  #seq = 0;
  #last: Exchange | undefined;

  constructor(readonly vaultHost: string) {}

  mark(): number {
    return this.#seq;
  }

  /** The last exchange after `mark`, if any. */
  since(mark: number): Exchange | undefined {
    return this.#last && this.#last.seq > mark ? this.#last : undefined;
  }

  observe(request: PipelineRequest, response: PipelineResponse | undefined, error: unknown): void {
    const url = new URL(request.url);
    if (url.host === this.vaultHost) return;
    let oauthError: string | undefined;
    let aadsts: number | undefined;
    const status = response?.status;
    if (status !== undefined && status >= 400 && typeof response?.bodyAsText === "string") {
      try {
        const b = JSON.parse(response.bodyAsText) as { error?: unknown; error_codes?: unknown };
        if (typeof b.error === "string" && /^[a-z_]{1,60}$/.test(b.error)) oauthError = b.error;
        const c = Array.isArray(b.error_codes) ? b.error_codes[0] : undefined;
        if (typeof c === "number" && Number.isInteger(c)) aadsts = c;
      } catch {
        /* not JSON: the status says enough */
      }
    }
    const network = error === undefined ? undefined : (networkCode(error) ?? "error");
    this.#last = {
      seq: ++this.#seq,
      host: url.host,
      status,
      network,
      oauthError,
      aadsts,
      retryAfter: retryAfterSeconds(response?.headers.get("retry-after")),
      basicChallenge: status === 401 && /^Basic realm=/i.test(response?.headers.get("www-authenticate") ?? ""),
    };
  }
}

/** A getToken that failed, explained by the token endpoint's last answer. */
export function tokenFailure(e: unknown, x: Exchange | undefined, where: string): ProviderError {
  if (isProviderError(e)) return e;
  const name = errName(e);
  if (!x) {
    // Nothing was sent: the SDK refused its own input (a malformed certificate, no
    // managed identity source) or gave up before sending.
    if (name === "AbortError") return new ProviderError("transient", `${where}: token request abandoned (sync.timeout or shutdown)`);
    return new ProviderError("auth", `${where}: no token could be requested (${name}); check the auth block`);
  }
  const at = `token endpoint ${x.host}`;
  if (x.network !== undefined)
    return new ProviderError(
      "transient",
      isTlsCode(x.network)
        ? `${where}: ${at}'s TLS certificate is not trusted (${x.network}); check tls.ca_file`
        : `${where}: ${at} unreachable or the connection broke (${x.network})`,
    );
  const st = x.status ?? 0;
  if (st === 429) return new ProviderError("transient", `${where}: ${at} throttled the request (HTTP 429); backing off`, { retryAfter: x.retryAfter ?? 1 });
  if (st >= 500) return new ProviderError("transient", `${where}: ${at} answered HTTP ${st}`, x.retryAfter === undefined ? {} : { retryAfter: x.retryAfter });
  if (x.basicChallenge)
    return new ProviderError(
      "auth",
      `${where}: the Arc agent's key-file challenge could not be answered (HTTP 401); the daemon's user must be able to read ` +
        `/var/opt/azcmagent/tokens (group himds)`,
    );
  if (st >= 400) {
    const code = [x.oauthError, x.aadsts === undefined ? undefined : `AADSTS${x.aadsts}`].filter(Boolean).join(", ");
    return new ProviderError(
      "auth",
      `${where}: ${at} refused the credentials (${code || "no error code"}, HTTP ${st}); check tenant_id, client_id and the secret, certificate or token`,
    );
  }
  // A 2xx (or 3xx) answer the SDK could not use: not a token response.
  return new ProviderError("transient", `${where}: ${at} answered HTTP ${st} with no usable token (${name}); rejected`);
}

/** The secret name, version and status of a vault answer: what a per-secret message says. */
export type VaultOutcome = { scope: "secret" | "provider" | "unauthorized"; error: ProviderError };

interface RestErrorLike {
  name?: string;
  code?: string;
  statusCode?: number;
  details?: { error?: { code?: unknown; innerError?: { code?: unknown } } };
  response?: { headers?: { get(name: string): string | undefined } };
}

const KV_CODE = /^[A-Za-z]{1,60}$/;

/** A SecretClient.getSecret failure. */
export function classifyVault(e: unknown, where: string, signal: AbortSignal): VaultOutcome {
  if (isProviderError(e)) return { scope: e.kind === "permanent" ? "secret" : "provider", error: e };
  const err = (e ?? {}) as RestErrorLike;
  const name = errName(e);
  const status = err.statusCode;
  const code = typeof err.code === "string" && KV_CODE.test(err.code) ? err.code : undefined;
  const inner = err.details?.error?.innerError?.code;
  const innerCode = typeof inner === "string" && KV_CODE.test(inner) ? inner : undefined;
  const codes = [code, innerCode].filter(Boolean).join("/");
  const http = `HTTP ${status}`;
  if (name === "AbortError" || signal.aborted) {
    return {
      scope: "provider",
      error: new ProviderError("transient", signal.aborted ? `${where}: abandoned (sync.timeout or shutdown)` : `${where}: no answer in time`),
    };
  }
  if (status === undefined) {
    const net = networkCode(e);
    if (net !== undefined)
      return {
        scope: "provider",
        error: new ProviderError(
          "transient",
          isTlsCode(net)
            ? `${where}: Key Vault's TLS certificate is not trusted (${net}); check tls.ca_file`
            : `${where}: Key Vault unreachable or the connection broke (${net})`,
        ),
      };
    // The SDK could not read a 2xx answer (not JSON, cut off, not a secret bundle): nothing of it is used.
    return { scope: "secret", error: new ProviderError("transient", `${where}: the answer could not be read (${code ?? name}); rejected`) };
  }
  if (status === 401)
    return {
      scope: "unauthorized",
      error: new ProviderError(
        "auth",
        `${where}: Key Vault refused the access token (${codes || "Unauthorized"}, ${http}), also after the credential was built anew; check the ` +
          `identity's tenant and its access to the vault`,
      ),
    };
  if (status === 429) {
    const ra = retryAfterSeconds(err.response?.headers?.get("retry-after")) ?? 1;
    return {
      scope: "provider",
      error: new ProviderError("transient", `${where}: throttled by Key Vault (${codes || "Throttled"}, ${http}); backing off`, { retryAfter: ra }),
    };
  }
  if (status >= 500) {
    const ra = retryAfterSeconds(err.response?.headers?.get("retry-after"));
    return {
      scope: "provider",
      error: new ProviderError("transient", `${where}: Key Vault answered ${codes || "an error"} (${http})`, ra === undefined ? {} : { retryAfter: ra }),
    };
  }
  if (status === 404) return { scope: "secret", error: new ProviderError("permanent", `${where}: not found (${codes || "SecretNotFound"}, ${http})`) };
  if (status === 403) {
    if (innerCode === "SecretDisabled")
      return {
        scope: "secret",
        error: new ProviderError("permanent", `${where}: the secret is disabled (${codes}, ${http}); enable it or pin another version`),
      };
    if (innerCode === "ForbiddenByFirewall")
      return { scope: "secret", error: new ProviderError("permanent", `${where}: the vault's firewall refuses this gateway's address (${codes}, ${http})`) };
    return {
      scope: "secret",
      error: new ProviderError(
        "permanent",
        `${where}: access denied (${codes || "Forbidden"}, ${http}); grant the identity get on secrets (role Key Vault Secrets User, or an access policy)`,
      ),
    };
  }
  return { scope: "secret", error: new ProviderError("permanent", `${where}: rejected (${codes || "no error code"}, ${http})`) };
}

function errName(e: unknown): string {
  const n = (e as { name?: unknown } | null)?.name;
  return typeof n === "string" && /^[A-Za-z]{1,60}$/.test(n) ? n : "Error";
}

function isTlsCode(c: string): boolean {
  return /CERT|^UNABLE_TO_|^ERR_TLS_/.test(c);
}

/** A Node socket/TLS error code (ECONNREFUSED, CERT_HAS_EXPIRED, ERR_TLS_CERT_ALTNAME_INVALID...), or undefined. */
function networkCode(e: unknown): string | undefined {
  const c = (e as { code?: unknown } | null)?.code;
  if (typeof c === "string" && (/^E[A-Z_]{2,40}$/.test(c) || /^(ERR_TLS_[A-Z_]+|[A-Z_]*CERT[A-Z_]*|UNABLE_TO_[A-Z_]+|DEPTH_ZERO_SELF_SIGNED_CERT)$/.test(c)))
    return c;
  if (c === "REQUEST_SEND_ERROR") return c;
  if (errName(e) === "AbortError") return "timeout";
  return undefined;
}

export function retryAfterSeconds(v: string | undefined): number | undefined {
  if (v === undefined) return undefined;
  const n = Number(v);
  if (Number.isFinite(n) && n >= 0) return Math.min(n, 3600);
  const at = Date.parse(v);
  return Number.isNaN(at) ? undefined : Math.max(0, Math.min(3600, Math.ceil((at - Date.now()) / 1000)));
}
