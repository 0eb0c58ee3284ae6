import { randomBytes } from "node:crypto";
import fs from "node:fs";
import type http from "node:http";
import https from "node:https";
import path from "node:path";
import { makeCerts, type TestCerts } from "./certs.js";
import { FakeEntra, FakeManagedIdentity, TokenIssuer, sendJson } from "./fake-entra.js";
import { LocalServer } from "./local-server.js";
import { planted } from "./planted.js";

export { ARC_TOKENS_DIR, FakeEntra, FakeManagedIdentity, TokenIssuer, makeAppCertificate, makeFederatedIssuer } from "./fake-entra.js";

/**
 * A local Azure Key Vault speaking the secrets REST API over HTTPS as the
 * official SDK calls it: `GET /secrets/{name}/{version}?api-version=...` (an empty
 * version is the current one), answered with the secret bundle `{value, id,
 * contentType, attributes: {enabled, nbf, exp, created, updated, recoveryLevel},
 * tags}`. A request without a bearer token gets Key Vault's challenge (`401`,
 * `WWW-Authenticate: Bearer authorization="https://login.microsoftonline.com/TENANT",
 * resource="https://vault.azure.net"`); a token must have been issued by the fake
 * Entra or managed identity for that resource and tenant, or it is refused the
 * same way. Errors carry Key Vault's body `{"error": {code, message, innererror}}`:
 * SecretNotFound (404), Forbidden with ForbiddenByRbac / SecretDisabled (403),
 * BadParameter (400), Throttled (429, Retry-After), 5xx. It can throttle, fail,
 * hang, answer garbage, malformed or truncated bodies, and go away; it counts
 * requests per operation ("vault.get", "vault.challenge", "vault.refused").
 */
export type VaultFault = "throttle" | "error" | "unavailable" | "hang" | "garbage" | "malformed" | "truncated" | "wrong-version";

export const KEY_VAULT_RESOURCE = "https://vault.azure.net";
export const API_VERSION = "2025-07-01";

interface Version {
  id: string;
  value: string;
  contentType?: string | undefined;
  enabled: boolean;
  nbf?: number | undefined;
  exp?: number | undefined;
  created: number;
}
interface Secret {
  name: string;
  versions: Version[];
}

export interface SecretAttributes {
  contentType?: string;
  enabled?: boolean;
  /** Seconds since the epoch, as Key Vault stores them. */
  nbf?: number;
  exp?: number;
}

export class FakeKeyVault extends LocalServer {
  readonly counts = new Map<string, number>();
  /** When each request arrived (ms), for backoff checks. */
  readonly times: number[] = [];
  readonly secrets = new Map<string, Secret>();
  /** Secret names the caller's role assignment does not cover (403 ForbiddenByRbac). */
  readonly denied = new Set<string>();
  /** Every token is refused (an identity whose access was removed, a token for another tenant). */
  refuseTokens = false;
  /** The resource the challenge names (a hostile or misconfigured server may name another). */
  challengeResource = KEY_VAULT_RESOURCE;
  retryAfter = 2;
  /** Each authorized GET, as `name` or `name/version`. */
  readonly reads: string[] = [];
  /** Principals whose tokens were accepted, in order. */
  readonly callers: string[] = [];
  /** api-version of each request. */
  readonly apiVersions = new Set<string>();
  readonly #tls: { key: Buffer | string; cert: Buffer | string };
  #fault: { kind: VaultFault; match: RegExp | undefined; times: number } | undefined;

  constructor(
    readonly issuer: TokenIssuer,
    readonly tenant: string,
    tls: { key: Buffer | string; cert: Buffer | string },
  ) {
    super();
    this.#tls = tls;
  }

  get url(): string {
    return `https://127.0.0.1:${this.port}`;
  }

  count(op: string): number {
    return this.counts.get(op) ?? 0;
  }

  total(): number {
    let n = 0;
    for (const v of this.counts.values()) n += v;
    return n;
  }

  resetCounts(): void {
    this.counts.clear();
    this.times.length = 0;
    this.callers.length = 0;
    this.reads.length = 0;
  }

  /** Sets a secret (a new current version, as `az keyvault secret set` does); returns the version id. */
  putSecret(name: string, value: string, attrs: SecretAttributes = {}): string {
    const key = name.toLowerCase();
    const s = this.secrets.get(key) ?? { name, versions: [] };
    const id = randomBytes(16).toString("hex");
    s.versions.push({
      id,
      value,
      contentType: attrs.contentType,
      enabled: attrs.enabled ?? true,
      nbf: attrs.nbf,
      exp: attrs.exp,
      created: Math.floor(Date.now() / 1000),
    });
    this.secrets.set(key, s);
    return id;
  }

  /** Changes a version's attributes (`az keyvault secret set-attributes`); the current one by default. */
  setAttributes(name: string, attrs: SecretAttributes, version?: string): void {
    const s = this.secrets.get(name.toLowerCase());
    const v = version ? s?.versions.find((x) => x.id === version) : s?.versions.at(-1);
    if (!v) throw new Error(`no secret ${name}`);
    Object.assign(v, attrs);
  }

  deleteSecret(name: string): void {
    this.secrets.delete(name.toLowerCase());
  }

  /** The next `times` requests (for a secret name matching `match`, if given) fail as `kind`. */
  fail(kind: VaultFault, opts: { match?: RegExp; times?: number } = {}): void {
    this.#fault = { kind, match: opts.match, times: opts.times ?? Infinity };
  }

  heal(): void {
    this.#fault = undefined;
    this.releaseHung();
  }

  protected override createServer(handler: http.RequestListener): https.Server {
    return https.createServer({ key: this.#tls.key, cert: this.#tls.cert }, handler);
  }

  #bump(op: string): void {
    this.counts.set(op, (this.counts.get(op) ?? 0) + 1);
    this.times.push(Date.now());
  }

  protected async handle(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    for await (const _ of req) void _;
    const url = new URL(req.url ?? "/", this.url);
    const api = url.searchParams.get("api-version");
    const m = /^\/secrets\/([^/]*)(?:\/([^/]*))?\/?$/.exec(url.pathname);
    // Key Vault checks the token before anything else.
    const auth = req.headers.authorization;
    if (!auth) {
      this.#bump("vault.challenge");
      return this.#challenge(res, "AKV10000: Request is missing a Bearer or PoP token.");
    }
    const bearer = /^Bearer (.+)$/.exec(auth)?.[1];
    const token = bearer === undefined ? undefined : this.issuer.check(bearer);
    if (!token || this.refuseTokens || token.tenant !== this.tenant || token.resource !== KEY_VAULT_RESOURCE) {
      this.#bump("vault.refused");
      const why = !token
        ? "AKV10032: Invalid issuer. Token validation failed."
        : token.resource !== KEY_VAULT_RESOURCE
          ? `AKV10022: Invalid audience. Expected ${KEY_VAULT_RESOURCE}, found: ${token.resource}.`
          : "AKV10032: Invalid issuer. Expected one of https://sts.windows.net/" + this.tenant + "/.";
      return this.#challenge(res, why);
    }
    this.callers.push(token.principal);
    if (!api) {
      this.#bump("vault.bad");
      return kvError(res, 400, "BadParameter", "The request URI contains an invalid api-version parameter.");
    }
    this.apiVersions.add(api);
    if (!m || req.method !== "GET") {
      this.#bump("vault.bad");
      return kvError(res, 405, "BadParameter", "The requested method is not supported.");
    }
    const name = decodeURIComponent(m[1]!);
    const version = decodeURIComponent(m[2] ?? "");
    this.#bump("vault.get");
    this.reads.push(version ? `${name}/${version}` : name);

    const f = this.#fault;
    if (f && f.times > 0 && (!f.match || f.match.test(name))) {
      f.times--;
      switch (f.kind) {
        case "throttle":
          res.setHeader("retry-after", String(this.retryAfter));
          return kvError(res, 429, "Throttled", "Request was not processed because too many requests were received. Reason: A generic error occurred");
        case "error":
          return kvError(res, 500, "InternalServerError", "An unexpected error occurred.");
        case "unavailable":
          res.setHeader("retry-after", String(this.retryAfter));
          return kvError(res, 503, "ServiceUnavailable", "The service is temporarily unavailable.");
        case "hang":
          this.hung.add(res);
          return;
        case "garbage":
          res.writeHead(200, { "content-type": "text/html" });
          res.end("<html>captive portal " + planted("kv-garbage") + "</html>");
          return;
        case "malformed":
          // Well-formed JSON that is not a secret bundle: an id, no value.
          return sendJson(res, 200, { id: `${this.url}/secrets/${name}/${randomBytes(16).toString("hex")}`, attributes: { enabled: true } });
        case "wrong-version": {
          // A bundle for another version than the one asked for (a broken cache or proxy in between).
          return sendJson(res, 200, {
            value: planted("kv-wrong"),
            id: `${this.url}/secrets/${name}/${randomBytes(16).toString("hex")}`,
            attributes: { enabled: true },
          });
        }
        case "truncated": {
          const full = JSON.stringify({
            value: planted("kv-truncated"),
            id: `${this.url}/secrets/${name}/${randomBytes(16).toString("hex")}`,
            attributes: { enabled: true },
          });
          res.writeHead(200, { "content-type": "application/json; charset=utf-8", "content-length": String(full.length) });
          res.write(full.slice(0, Math.floor(full.length / 2)), () => setTimeout(() => res.socket?.destroy(), 20));
          return;
        }
      }
    }

    if (!/^[0-9a-zA-Z-]{1,127}$/.test(name)) return kvError(res, 400, "BadParameter", `The request URI contains an invalid name: ${name}`);
    const s = this.secrets.get(name.toLowerCase());
    const label = version ? `${name}/${version}` : name;
    const notFound = () =>
      kvError(
        res,
        404,
        "SecretNotFound",
        `A secret with (name/id) ${label} was not found in this key vault. If you recently deleted this secret you may be able to recover it using the correct recovery command. For help resolving this issue, please see https://go.microsoft.com/fwlink/?linkid=2125182`,
      );
    if (!s) return notFound();
    if (this.denied.has(name.toLowerCase())) {
      return kvError(
        res,
        403,
        "Forbidden",
        `Caller is not authorized to perform action on resource.\r\nIf role assignments, deny assignments or role definitions were changed recently, please observe propagation time.\r\nCaller: appid=${token.principal}\r\nAction: 'Microsoft.KeyVault/vaults/secrets/getSecret/action'\r\nResource: '/subscriptions/x/resourcegroups/edge/providers/microsoft.keyvault/vaults/fleet/secrets/${name.toLowerCase()}'`,
        "ForbiddenByRbac",
      );
    }
    const v = version ? s.versions.find((x) => x.id === version.toLowerCase()) : s.versions.at(-1);
    if (!v) return notFound();
    if (!v.enabled) return kvError(res, 403, "Forbidden", "Operation get is not allowed on a disabled secret.", "SecretDisabled");
    // Key Vault serves expired and not-yet-valid secrets (nbf/exp are advisory for secrets).
    sendJson(res, 200, {
      value: v.value,
      ...(v.contentType !== undefined ? { contentType: v.contentType } : {}),
      id: `${this.url}/secrets/${s.name}/${v.id}`,
      attributes: {
        enabled: v.enabled,
        ...(v.nbf !== undefined ? { nbf: v.nbf } : {}),
        ...(v.exp !== undefined ? { exp: v.exp } : {}),
        created: v.created,
        updated: v.created,
        recoveryLevel: "Recoverable+Purgeable",
        recoverableDays: 90,
      },
      tags: {},
    });
  }

  #challenge(res: http.ServerResponse, message: string): void {
    res.setHeader("www-authenticate", `Bearer authorization="https://login.microsoftonline.com/${this.tenant}", resource="${this.challengeResource}"`);
    kvError(res, 401, "Unauthorized", message);
  }
}

function kvError(res: http.ServerResponse, status: number, code: string, message: string, inner?: string): void {
  res.setHeader("x-ms-request-id", randomBytes(16).toString("hex"));
  sendJson(res, status, { error: { code, message, ...(inner ? { innererror: { code: inner } } : {}) } });
}

/**
 * The whole local Azure: a TLS Key Vault and Entra ID (certificates from the test
 * CA), sharing one token issuer, and optionally a managed identity endpoint.
 */
export class FakeAzure {
  readonly issuer = new TokenIssuer();
  readonly certs: TestCerts;
  readonly entra: FakeEntra;
  readonly vault: FakeKeyVault;
  identity: FakeManagedIdentity | undefined;

  constructor(readonly dir: string) {
    this.certs = makeCerts(path.join(dir, "certs"));
    const tls = { key: fs.readFileSync(this.certs.serverKey), cert: fs.readFileSync(this.certs.serverCert) };
    this.entra = new FakeEntra(this.issuer, tls);
    this.vault = new FakeKeyVault(this.issuer, this.entra.tenant, tls);
  }

  async start(): Promise<this> {
    await this.entra.start();
    await this.vault.start();
    return this;
  }

  /** Adds a managed identity endpoint; for `arc`, key files go to `keyDir`. */
  async withIdentity(mode: "arc" | "imds", keyDir?: string): Promise<FakeManagedIdentity> {
    this.identity = await new FakeManagedIdentity(this.issuer, this.entra.tenant, mode, keyDir).start();
    return this.identity;
  }

  async stop(): Promise<void> {
    await this.vault.stop();
    await this.entra.stop();
    await this.identity?.stop();
  }
}
