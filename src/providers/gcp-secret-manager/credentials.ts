import { createPrivateKey } from "node:crypto";
import fs from "node:fs/promises";
import type https from "node:https";
import { ExternalAccountClient, JWT, gaxios, type AuthClient } from "google-auth-library";
import { ProviderError, isProviderError } from "../provider.js";
import { MetadataToken, TOKEN_TIMEOUT_MS } from "./metadata.js";

/** The service a self-signed JWT is addressed to (`aud: https://secretmanager.googleapis.com/`). */
export const SERVICE = "secretmanager.googleapis.com";
export const CLOUD_PLATFORM = "https://www.googleapis.com/auth/cloud-platform";
const MAX_FILE_BYTES = 64 * 1024;
const FILE_CODES = new Set(["ENOENT", "EACCES", "EPERM", "EISDIR", "ENOTDIR", "ELOOP", "ENAMETOOLONG"]);

export interface CredentialOptions {
  readonly credentialsFile: string | undefined;
  /** Calls go to a non-default endpoint: the SDK then signs its JWT with a scope rather than an audience. */
  readonly customEndpoint: boolean;
  /** TLS options for HTTPS token endpoints (tls.ca_file added to the public roots). */
  readonly agent: https.Agent;
}

/**
 * Where the provider's call credentials come from:
 * - a service-account key file: the SDK's self-signed JWT (no token endpoint at
 *   all: the key signs each hour's JWT locally), audience
 *   `https://secretmanager.googleapis.com/`, or the cloud-platform scope on a
 *   non-default endpoint, as the SDK does;
 * - an `external_account` file (workload identity federation): the library
 *   exchanges the subject token (an OIDC token file, a URL, an executable...)
 *   at STS, and through `service_account_impersonation_url` when set;
 * - neither: the metadata server's token for the default service account
 *   (GCE_METADATA_HOST, as Google's libraries read it, or 169.254.169.254).
 *   Not the full Application Default Credentials chain: a daemon must not pick
 *   up a user's gcloud login from $HOME, and ADC's one-time "are we on GCE"
 *   probe would turn a metadata server slow at boot into a permanent failure.
 * Files are read when the credentials are first needed and again after an auth
 * failure (invalidate), so a rotated key or a fixed file is picked up.
 * Token endpoints are called without the library's retries: the sync engine's
 * backoff does the retrying.
 */
export class GcpCredentials {
  readonly #o: CredentialOptions;
  #client: Promise<AuthClient> | undefined;
  #what = "credentials";

  constructor(o: CredentialOptions) {
    this.#o = o;
  }

  /** For messages: which credentials these are (never a key or token). */
  get what(): string {
    return this.#what;
  }

  /** The headers for one call (a cached token or JWT while it is valid); failures are ProviderErrors. */
  async headers(signal?: AbortSignal): Promise<Headers> {
    try {
      this.#client ??= this.#build();
      const client = await this.#client;
      return await withSignal(client.getRequestHeaders(), signal, this.#what);
    } catch (e) {
      const err = credentialError(e, this.#what);
      if (err.kind === "auth") this.invalidate();
      throw err;
    }
  }

  /** Forget the client: the next call reads the files again. */
  invalidate(): void {
    this.#client = undefined;
  }

  async #build(): Promise<AuthClient> {
    const file = this.#o.credentialsFile;
    if (file === undefined) {
      this.#what = "metadata server credentials";
      return new MetadataToken({ scopes: [CLOUD_PLATFORM] });
    }
    const j = await readJson(file);
    const type = j.type;
    if (type === "service_account") {
      const email = j.client_email;
      const key = j.private_key;
      if (typeof email !== "string" || email === "" || typeof key !== "string")
        throw new ProviderError("auth", `gcp credentials_file ${file}: a service_account key needs client_email and private_key`);
      try {
        createPrivateKey(key);
      } catch {
        throw new ProviderError("auth", `gcp credentials_file ${file}: private_key is not a PEM private key`);
      }
      this.#what = `service account ${email}`;
      const jwt = new JWT({
        email,
        key,
        keyId: typeof j.private_key_id === "string" ? j.private_key_id : undefined,
        scopes: this.#o.customEndpoint ? [CLOUD_PLATFORM] : undefined,
        universeDomain: typeof j.universe_domain === "string" ? j.universe_domain : undefined,
      });
      // What the SDK's GAPIC clients set: a self-signed JWT for the service, no OAuth token request.
      jwt.useJWTAccessWithScope = true;
      jwt.defaultServicePath = SERVICE;
      jwt.defaultScopes = [CLOUD_PLATFORM];
      return jwt;
    }
    if (type === "external_account") {
      const audience = typeof j.audience === "string" ? j.audience : "?";
      this.#what = `external_account ${audience.replace(/^\/\/iam\.googleapis\.com\//, "")}`;
      let client: AuthClient | null;
      try {
        const transporter = this.#transporter();
        client = ExternalAccountClient.fromJSON({ ...(j as object), transporter } as Parameters<typeof ExternalAccountClient.fromJSON>[0]);
        // The library gives its STS exchange a transporter of its own (default roots, its retries): ours goes there too.
        const sts = (client as unknown as { stsCredential?: { transporter?: unknown } } | null)?.stsCredential;
        if (sts && typeof sts === "object") sts.transporter = transporter;
      } catch {
        // The library's message may quote the file: ours names the fields to check instead.
        throw new ProviderError(
          "auth",
          `gcp credentials_file ${file}: not a usable external_account configuration (check audience, subject_token_type, token_url and credential_source)`,
        );
      }
      if (!client) throw new ProviderError("auth", `gcp credentials_file ${file}: not a usable external_account configuration`);
      return client;
    }
    throw new ProviderError(
      "auth",
      `gcp credentials_file ${file} has type ${JSON.stringify(typeof type === "string" ? type.slice(0, 40) : (type ?? null))}; expected a ` +
        `service_account key or an external_account (workload identity federation) file`,
    );
  }

  /** The HTTP client for STS and IAM credentials: tls.ca_file, a timeout, no retries. */
  #transporter(): gaxios.Gaxios {
    const agent = this.#o.agent;
    const t = new gaxios.Gaxios({ agent: (u: URL) => (u.protocol === "https:" ? agent : undefined), timeout: TOKEN_TIMEOUT_MS } as gaxios.GaxiosOptions);
    t.interceptors.request.add({
      resolved: async (opts) => Object.assign(opts, { retry: false, retryConfig: { ...opts.retryConfig, retry: 0, noResponseRetries: 0 } }),
    });
    return t;
  }
}

/** The credentials file, parsed; its content never reaches a message (it holds a private key). */
async function readJson(file: string): Promise<Record<string, unknown>> {
  let raw: Buffer;
  try {
    raw = await fs.readFile(file);
  } catch (e) {
    throw new ProviderError("auth", `gcp credentials_file ${file} cannot be read (${(e as NodeJS.ErrnoException).code ?? "error"})`);
  }
  try {
    if (raw.length > MAX_FILE_BYTES) throw new ProviderError("auth", `gcp credentials_file ${file} is larger than ${MAX_FILE_BYTES} bytes`);
    let j: unknown;
    try {
      j = JSON.parse(raw.toString("utf8"));
    } catch {
      throw new ProviderError("auth", `gcp credentials_file ${file} is not JSON (expected a service-account key or an external_account file)`);
    }
    if (typeof j !== "object" || j === null || Array.isArray(j)) throw new ProviderError("auth", `gcp credentials_file ${file} is not a JSON object`);
    return j as Record<string, unknown>;
  } finally {
    raw.fill(0);
  }
}

function withSignal<T>(p: Promise<T>, signal: AbortSignal | undefined, what: string): Promise<T> {
  if (!signal) return p;
  return new Promise<T>((resolve, reject) => {
    const abort = () => reject(new ProviderError("transient", `gcp ${what}: no token in time (sync.timeout or shutdown)`));
    if (signal.aborted) return abort();
    signal.addEventListener("abort", abort, { once: true });
    p.then(resolve, reject).finally(() => signal.removeEventListener("abort", abort));
  });
}

/**
 * What obtaining a token threw, as a ProviderError with our own message: token
 * endpoints' bodies and the library's messages (which may quote a file or an
 * answer) are not copied; only an OAuth error code such as `invalid_grant`.
 */
export function credentialError(e: unknown, what: string): ProviderError {
  if (isProviderError(e)) return e;
  const g = (e ?? {}) as { response?: { status?: unknown; data?: unknown }; status?: unknown; code?: unknown; name?: unknown; type?: unknown };
  const status = typeof g.response?.status === "number" ? g.response.status : typeof g.status === "number" ? g.status : undefined;
  if (status !== undefined) {
    const data = g.response?.data as { error?: unknown } | undefined;
    const oauth = typeof data?.error === "string" && /^[a-z_]{1,40}$/.test(data.error) ? ` ${data.error}` : "";
    if (status === 429 || status >= 500 || status === 408)
      return new ProviderError("transient", `gcp ${what}: token endpoint answered HTTP ${status}${oauth}; backing off`);
    return new ProviderError("auth", `gcp ${what}: token request refused (HTTP ${status}${oauth}); check the credentials file and the workload identity pool`);
  }
  const code = typeof g.code === "string" ? g.code : undefined;
  const name = typeof g.name === "string" ? g.name : "Error";
  // A file the configuration names (credential_source.file, a certificate) is missing or unreadable.
  if (code !== undefined && FILE_CODES.has(code)) return new ProviderError("auth", `gcp ${what}: a file its credential_source names cannot be read (${code})`);
  if (
    (code !== undefined && /^(E[A-Z_]+|UND_ERR_[A-Z_]+)$/.test(code)) ||
    name === "AbortError" ||
    name === "TimeoutError" ||
    g.type === "request-timeout" ||
    g.type === "system"
  ) {
    return new ProviderError("transient", `gcp ${what}: token endpoint unreachable (${code ?? name})`);
  }
  const msg = e instanceof Error ? e.message : "";
  if (/credential_source|subject[_ ]token/i.test(msg))
    return new ProviderError("auth", `gcp ${what}: the subject token (credential_source) could not be read; check the file or URL it names`);
  if (/decoder|private key|PEM|asn1/i.test(msg)) return new ProviderError("auth", `gcp ${what}: the private key cannot sign`);
  return new ProviderError("auth", `gcp ${what}: no token could be obtained (${name})`);
}
