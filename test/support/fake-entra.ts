import { createHash, createPublicKey, generateKeyPairSync, randomBytes, randomUUID, sign, verify, constants, type KeyObject } from "node:crypto";
import { execFileSync } from "node:child_process";
import fs from "node:fs";
import type http from "node:http";
import https from "node:https";
import path from "node:path";
import { LocalServer } from "./local-server.js";
import { planted } from "./planted.js";

/**
 * Local stand-ins for the places an Azure SDK gets its access tokens:
 * - FakeEntra: the Microsoft Entra ID v2 endpoints MSAL uses over HTTPS
 *   (`/{tenant}/v2.0/.well-known/openid-configuration` and
 *   `/{tenant}/oauth2/v2.0/token`, client credentials with a client secret or a
 *   client-assertion JWT: one signed with an app's registered certificate, checked
 *   by its `x5t` / `x5t#S256` thumbprint, or a federated token from an external
 *   issuer, as workload identity sends), with Entra's error shape and AADSTS codes;
 * - FakeManagedIdentity: the Azure Arc agent's local identity endpoint (HIMDS) with
 *   its key-file challenge, or the IMDS token endpoint of an Azure VM.
 * Both issue tokens into a shared TokenIssuer that the fake Key Vault checks.
 */

/** What a token was issued for; Key Vault checks the resource and the tenant. */
export interface IssuedToken {
  readonly principal: string;
  readonly tenant: string;
  readonly resource: string;
  readonly expiresAt: number;
}

export class TokenIssuer {
  readonly #tokens = new Map<string, IssuedToken>();
  /**
   * Credentials that must never be printed, for the leak checks: every token
   * handed out, and what tests add (client secrets). It grows as tokens are issued,
   * so a check made at the end sees them all.
   */
  readonly secrets: string[] = [];

  issue(t: IssuedToken): string {
    // Shaped like a JWT (three base64url parts); contains the planted marker so a logged token is caught.
    const token = `eyJ0eXAiOiJKV1QifQ.${planted("aad-token")}.${randomBytes(16).toString("base64url")}`;
    this.#tokens.set(token, t);
    this.secrets.push(token);
    return token;
  }

  check(token: string): IssuedToken | undefined {
    const t = this.#tokens.get(token);
    return t && t.expiresAt > Date.now() ? t : undefined;
  }

  /** Every token issued so far stops working (a revoked app secret, a disabled identity). */
  revokeAll(): void {
    this.#tokens.clear();
  }
}

/** An RSA certificate with its key, as an app registration's credential (Entra requires RSA for assertions). */
export interface AppCertificate {
  /** cert + key in one PEM file, as ClientCertificateCredential reads it. */
  readonly pemFile: string;
  /** The private key alone (PEM), for the leak checks. */
  readonly keyPem: string;
  readonly x5t: string;
  readonly x5tS256: string;
  readonly publicKey: KeyObject;
}

export function makeAppCertificate(dir: string, name = "app"): AppCertificate {
  fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
  const key = path.join(dir, `${name}.key`);
  const cert = path.join(dir, `${name}.crt`);
  execFileSync("openssl", ["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", cert, "-days", "1", "-subj", `/CN=sealcache ${name}`], {
    stdio: ["ignore", "ignore", "pipe"],
  });
  const certPem = fs.readFileSync(cert, "utf8");
  const keyPem = fs.readFileSync(key, "utf8");
  const pemFile = path.join(dir, `${name}.pem`);
  fs.writeFileSync(pemFile, certPem + keyPem, { mode: 0o600 });
  const der = Buffer.from(certPem.replace(/-----[^-]+-----/g, "").replace(/\s+/g, ""), "base64");
  return {
    pemFile,
    keyPem,
    x5t: createHash("sha1").update(der).digest("base64url"),
    x5tS256: createHash("sha256").update(der).digest("base64url"),
    publicKey: createPublicKey(certPem),
  };
}

/** A federated identity credential: tokens from `issuer` for `subject` are accepted for the app. */
export interface Federated {
  readonly issuer: string;
  readonly subject: string;
  readonly audience: string;
  readonly publicKey: KeyObject;
}

/**
 * An external OIDC issuer (a Kubernetes cluster, a device's own identity service)
 * whose tokens an app trusts through a federated identity credential; `token()`
 * mints one (ES256), as the platform writes into a workload's token file.
 */
export function makeFederatedIssuer(subject = "system:serviceaccount:edge:sealcache"): Federated & { token(claims?: Record<string, unknown>): string } {
  const { privateKey, publicKey } = generateKeyPairSync("ec", { namedCurve: "P-256" });
  const issuer = `https://oidc.${randomBytes(4).toString("hex")}.gateway.example`;
  const audience = "api://AzureADTokenExchange";
  return {
    issuer,
    subject,
    audience,
    publicKey,
    token(claims = {}) {
      const now = Math.floor(Date.now() / 1000);
      const header = Buffer.from(JSON.stringify({ alg: "ES256", typ: "JWT", kid: "k1" })).toString("base64url");
      const body = Buffer.from(
        JSON.stringify({ iss: issuer, sub: subject, aud: [audience], iat: now, nbf: now, exp: now + 3600, jti: planted("fed-jti"), ...claims }),
      ).toString("base64url");
      const sig = sign("sha256", Buffer.from(`${header}.${body}`), { key: privateKey, dsaEncoding: "ieee-p1363" }).toString("base64url");
      return `${header}.${body}.${sig}`;
    },
  };
}

export interface App {
  secret?: string;
  certificates: AppCertificate[];
  federated: Federated[];
}

export type EntraFault = "throttle" | "error" | "unavailable" | "hang" | "garbage";

const ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

export class FakeEntra extends LocalServer {
  readonly tenant: string;
  readonly apps = new Map<string, App>();
  readonly counts = new Map<string, number>();
  /** Which grant each token request used: "client_secret", "certificate:x5t", "certificate:x5t#S256", "federated". */
  readonly grants: string[] = [];
  tokenLifetime = 3600;
  retryAfter = 2;
  readonly #tls: { key: Buffer | string; cert: Buffer | string };
  #fault: { kind: EntraFault; times: number } | undefined;

  constructor(
    readonly issuer: TokenIssuer,
    tls: { key: Buffer | string; cert: Buffer | string },
    tenant = randomUUID(),
  ) {
    super();
    this.#tls = tls;
    this.tenant = tenant;
  }

  /** The authority host a credential is given (`auth.authority_host`). */
  get url(): string {
    return `https://127.0.0.1:${this.port}`;
  }

  get tokenEndpoint(): string {
    return `${this.url}/${this.tenant}/oauth2/v2.0/token`;
  }

  count(op: string): number {
    return this.counts.get(op) ?? 0;
  }

  resetCounts(): void {
    this.counts.clear();
    this.grants.length = 0;
  }

  /** Registers an app with a client secret; returns its client id and secret. */
  addSecretApp(): { clientId: string; secret: string } {
    const clientId = randomUUID();
    const secret = planted("client-secret");
    this.apps.set(clientId, { secret, certificates: [], federated: [] });
    return { clientId, secret };
  }

  addCertificateApp(cert: AppCertificate): string {
    const clientId = randomUUID();
    this.apps.set(clientId, { certificates: [cert], federated: [] });
    return clientId;
  }

  addFederatedApp(f: Federated): string {
    const clientId = randomUUID();
    this.apps.set(clientId, { certificates: [], federated: [f] });
    return clientId;
  }

  fail(kind: EntraFault, opts: { times?: number } = {}): void {
    this.#fault = { kind, times: opts.times ?? Infinity };
  }

  heal(): void {
    this.#fault = undefined;
    this.releaseHung();
  }

  protected override createServer(handler: http.RequestListener): https.Server {
    return https.createServer({ key: this.#tls.key, cert: this.#tls.cert }, handler);
  }

  protected async handle(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const chunks: Buffer[] = [];
    for await (const c of req) chunks.push(c as Buffer);
    const url = new URL(req.url ?? "/", this.url);
    const m = /^\/([^/]+)\/(v2\.0\/\.well-known\/openid-configuration|oauth2\/v2\.0\/token)$/.exec(url.pathname);
    const op = !m ? "entra.unknown" : m[2]!.startsWith("v2.0") ? "entra.openid" : "entra.token";
    this.counts.set(op, (this.counts.get(op) ?? 0) + 1);
    if (!m) return oauthError(res, 404, "invalid_request", `AADSTS90099: The path ${url.pathname} is not served.`, 90099);
    const tenant = decodeURIComponent(m[1]!);
    if (tenant !== this.tenant)
      return oauthError(
        res,
        400,
        "invalid_request",
        `AADSTS90002: Tenant '${tenant}' not found. Check to make sure you have the correct tenant ID and are signing into the correct cloud.`,
        90002,
      );

    const f = this.#fault;
    if (f && f.times > 0) {
      f.times--;
      switch (f.kind) {
        case "throttle":
          res.setHeader("retry-after", String(this.retryAfter));
          return oauthError(
            res,
            429,
            "temporarily_unavailable",
            "AADSTS50196: The server terminated an operation because it encountered a client request loop.",
            50196,
          );
        case "error":
          return oauthError(res, 500, "server_error", "AADSTS90033: A transient error has occurred. Please try again.", 90033);
        case "unavailable":
          res.setHeader("retry-after", String(this.retryAfter));
          return oauthError(res, 503, "temporarily_unavailable", "AADSTS90033: A transient error has occurred. Please try again.", 90033);
        case "hang":
          this.hung.add(res);
          return;
        case "garbage":
          res.writeHead(200, { "content-type": "text/html" });
          res.end("<html>captive portal " + planted("entra-garbage") + "</html>");
          return;
      }
    }

    if (op === "entra.openid") {
      if (req.method !== "GET") return oauthError(res, 405, "invalid_request", "AADSTS900561: The endpoint only accepts GET requests.", 900561);
      return sendJson(res, 200, this.#openIdConfiguration());
    }
    if (req.method !== "POST")
      return oauthError(res, 405, "invalid_request", "AADSTS900561: The endpoint only accepts POST, OPTIONS requests. Received a GET request.", 900561);
    if (!String(req.headers["content-type"] ?? "").startsWith("application/x-www-form-urlencoded"))
      return oauthError(res, 400, "invalid_request", "AADSTS900144: The request body must contain the following parameter: 'grant_type'.", 900144);
    return this.#token(res, new URLSearchParams(Buffer.concat(chunks).toString("utf8")));
  }

  #openIdConfiguration(): Record<string, unknown> {
    const base = `${this.url}/${this.tenant}`;
    return {
      token_endpoint: `${base}/oauth2/v2.0/token`,
      token_endpoint_auth_methods_supported: ["client_secret_post", "private_key_jwt", "client_secret_basic"],
      jwks_uri: `${this.url}/${this.tenant}/discovery/v2.0/keys`,
      response_modes_supported: ["query", "fragment", "form_post"],
      subject_types_supported: ["pairwise"],
      id_token_signing_alg_values_supported: ["RS256"],
      response_types_supported: ["code", "id_token", "code id_token", "id_token token"],
      scopes_supported: ["openid", "profile", "email", "offline_access"],
      issuer: `${this.url}/${this.tenant}/v2.0`,
      request_uri_parameter_supported: false,
      userinfo_endpoint: "https://graph.microsoft.com/oidc/userinfo",
      authorization_endpoint: `${base}/oauth2/v2.0/authorize`,
      device_authorization_endpoint: `${base}/oauth2/v2.0/devicecode`,
      http_logout_supported: true,
      frontchannel_logout_supported: true,
      end_session_endpoint: `${base}/oauth2/v2.0/logout`,
      claims_supported: ["sub", "iss", "aud", "exp", "iat", "nbf", "tid"],
      kerberos_endpoint: `${base}/kerberos`,
      tenant_region_scope: "EU",
      cloud_instance_name: "microsoftonline.com",
      cloud_graph_host_name: "graph.windows.net",
      msgraph_host: "graph.microsoft.com",
      rbac_url: "https://pas.windows.net",
    };
  }

  #token(res: http.ServerResponse, form: URLSearchParams): void {
    if (form.get("grant_type") !== "client_credentials")
      return oauthError(res, 400, "unsupported_grant_type", "AADSTS70003: The app requested an unsupported grant type.", 70003);
    const clientId = form.get("client_id") ?? "";
    const app = this.apps.get(clientId);
    if (!app)
      return oauthError(
        res,
        400,
        "unauthorized_client",
        `AADSTS700016: Application with identifier '${clientId}' was not found in the directory '${this.tenant}'.`,
        700016,
      );
    const scope = form.get("scope") ?? "";
    const resource = scope
      .split(" ")
      .find((s) => s.endsWith("/.default"))
      ?.slice(0, -"/.default".length);
    if (!resource)
      return oauthError(
        res,
        400,
        "invalid_scope",
        `AADSTS1002012: The provided value for scope ${scope} is not valid. Client credential flows must have a scope value with /.default suffixed to the resource identifier.`,
        1002012,
      );
    const secret = form.get("client_secret");
    const assertion = form.get("client_assertion");
    if (secret !== null) {
      if (app.secret === undefined || secret !== app.secret)
        return oauthError(
          res,
          401,
          "invalid_client",
          `AADSTS7000215: Invalid client secret provided. Ensure the secret being sent in the request is the client secret value, not the client secret ID, for a secret added to app '${clientId}'.`,
          7000215,
        );
      this.grants.push("client_secret");
    } else if (assertion !== null) {
      // A signed assertion is a credential for its lifetime: the leak checks look for it too.
      this.issuer.secrets.push(assertion);
      if (form.get("client_assertion_type") !== ASSERTION_TYPE)
        return oauthError(res, 400, "invalid_request", "AADSTS50027: JWT token is invalid or malformed.", 50027);
      const problem = this.#checkAssertion(app, clientId, assertion);
      if (problem) return oauthError(res, problem.status, problem.error, problem.description, problem.code);
    } else {
      return oauthError(
        res,
        401,
        "invalid_client",
        "AADSTS7000218: The request body must contain the following parameter: 'client_assertion' or 'client_secret'.",
        7000218,
      );
    }
    const token = this.issuer.issue({ principal: clientId, tenant: this.tenant, resource, expiresAt: Date.now() + this.tokenLifetime * 1000 });
    sendJson(res, 200, { token_type: "Bearer", expires_in: this.tokenLifetime, ext_expires_in: this.tokenLifetime, access_token: token });
  }

  /** A certificate assertion (iss = sub = client id, aud = the token endpoint) or a federated token; undefined when valid. */
  #checkAssertion(app: App, clientId: string, jwt: string): { status: number; error: string; description: string; code: number } | undefined {
    const bad = (code: number, description: string, status = 401, error = "invalid_client") => ({
      status,
      error,
      description: `AADSTS${code}: ${description}`,
      code,
    });
    const parts = jwt.split(".");
    if (parts.length !== 3) return bad(50027, "JWT token is invalid or malformed.", 400, "invalid_request");
    let header: Record<string, unknown>;
    let claims: Record<string, unknown>;
    try {
      header = JSON.parse(Buffer.from(parts[0]!, "base64url").toString("utf8"));
      claims = JSON.parse(Buffer.from(parts[1]!, "base64url").toString("utf8"));
    } catch {
      return bad(50027, "JWT token is invalid or malformed.", 400, "invalid_request");
    }
    const now = Date.now() / 1000;
    if (typeof claims.exp !== "number" || claims.exp < now - 300 || (typeof claims.nbf === "number" && claims.nbf > now + 300))
      return bad(700024, "Client assertion is not within its valid time range.");
    const signed = Buffer.from(`${parts[0]}.${parts[1]}`);
    const sig = Buffer.from(parts[2]!, "base64url");
    const fed = app.federated.find((f) => f.issuer === claims.iss);
    if (fed) {
      if (claims.sub !== fed.subject || !(Array.isArray(claims.aud) ? claims.aud.includes(fed.audience) : claims.aud === fed.audience)) {
        return bad(
          70021,
          "No matching federated identity record found for presented assertion. Assertion Issuer, Subject and Audience must match a federated identity credential of the app.",
          400,
          "invalid_request",
        );
      }
      if (!verifyJws(String(header.alg), signed, sig, fed.publicKey)) return bad(700027, "Client assertion failed signature validation.");
      this.grants.push("federated");
      return undefined;
    }
    if (claims.iss !== clientId || claims.sub !== clientId) return bad(700021, `Client assertion application identifier doesn't match 'client_id' parameter.`);
    if (claims.aud !== this.tokenEndpoint)
      return bad(700212, `No matching federated identity record found for presented assertion audience '${String(claims.aud)}'.`);
    if (typeof claims.jti !== "string" || claims.jti === "") return bad(50027, "JWT token is invalid or malformed.", 400, "invalid_request");
    const byS256 = typeof header["x5t#S256"] === "string";
    const thumb = byS256 ? header["x5t#S256"] : header.x5t;
    const cert = app.certificates.find((c) => (byS256 ? c.x5tS256 : c.x5t) === thumb);
    if (!cert)
      return bad(
        700027,
        `Client assertion contains an invalid signature. [Reason - The key was not found., Thumbprint of key used by client: '${String(thumb)}']`,
      );
    if (!verifyJws(String(header.alg), signed, sig, cert.publicKey)) return bad(700027, "Client assertion failed signature validation.");
    this.grants.push(byS256 ? "certificate:x5t#S256" : "certificate:x5t");
    return undefined;
  }
}

/** RS256, PS256 and ES256 (JOSE's raw r||s signature). */
export function verifyJws(alg: string, data: Buffer, sig: Buffer, key: KeyObject): boolean {
  try {
    if (alg === "RS256") return verify("sha256", data, key, sig);
    if (alg === "PS256") return verify("sha256", data, { key, padding: constants.RSA_PKCS1_PSS_PADDING, saltLength: constants.RSA_PSS_SALTLEN_DIGEST }, sig);
    if (alg === "ES256") return verify("sha256", data, { key, dsaEncoding: "ieee-p1363" }, sig);
  } catch {
    return false;
  }
  return false;
}

/** Where the Arc agent writes its challenge key files on Linux (MSAL accepts no other folder). */
export const ARC_TOKENS_DIR = "/var/opt/azcmagent/tokens/";

export type IdentityFault = "error" | "unavailable" | "hang" | "garbage" | "throttle";

/**
 * A managed identity endpoint on 127.0.0.1 (plain HTTP, as on a real machine):
 * - `arc`: HIMDS, `GET /metadata/identity/oauth2/token?api-version=2019-11-01&resource=R`
 *   with `Metadata: true`; a request without credentials is answered `401` with
 *   `WWW-Authenticate: Basic realm=/var/opt/azcmagent/tokens/<id>.key` after writing
 *   a fresh secret to that file (here: into `keyDir`, which the daemon sees at that
 *   path through a bind mount); the retry must carry `Authorization: Basic <secret>`,
 *   and each secret is good once.
 * - `imds`: `GET /metadata/identity/oauth2/token?api-version=2018-02-01&resource=R[&client_id=C]`.
 * Tokens are issued for the machine's identity (`principal`) into the shared issuer.
 */
export class FakeManagedIdentity extends LocalServer {
  readonly counts = new Map<string, number>();
  readonly principal = "msi-" + randomUUID();
  /** The user-assigned identities IMDS knows (client ids); the system identity is always there. */
  readonly userAssigned = new Set<string>();
  tokenLifetime = 3600;
  readonly #pending = new Map<string, string>();
  #fault: { kind: IdentityFault; times: number } | undefined;

  constructor(
    readonly issuer: TokenIssuer,
    readonly tenant: string,
    readonly mode: "arc" | "imds",
    /** Where key files are written (arc); announced as ARC_TOKENS_DIR + name. */
    readonly keyDir?: string,
  ) {
    super();
  }

  get url(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  /** The environment that points the SDK at this endpoint, as the Arc agent / AKS pod identity set it. */
  env(): NodeJS.ProcessEnv {
    return this.mode === "arc"
      ? { IDENTITY_ENDPOINT: `${this.url}/metadata/identity/oauth2/token`, IMDS_ENDPOINT: this.url }
      : { AZURE_POD_IDENTITY_AUTHORITY_HOST: this.url };
  }

  count(op: string): number {
    return this.counts.get(op) ?? 0;
  }

  fail(kind: IdentityFault, opts: { times?: number } = {}): void {
    this.#fault = { kind, times: opts.times ?? Infinity };
  }

  heal(): void {
    this.#fault = undefined;
    this.releaseHung();
  }

  protected async handle(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    for await (const _ of req) void _;
    const url = new URL(req.url ?? "/", this.url);
    const bump = (op: string) => this.counts.set(op, (this.counts.get(op) ?? 0) + 1);
    // MSAL canonicalizes the IMDS endpoint with a trailing slash; the real endpoints take both.
    if (url.pathname.replace(/\/$/, "") !== "/metadata/identity/oauth2/token") {
      bump(`${this.mode}.unknown`);
      return sendJson(res, 404, { error: "not_found", error_description: "Not found" });
    }
    if (req.headers.metadata !== "true") {
      bump(`${this.mode}.no-metadata`);
      return sendJson(res, 400, { error: "invalid_request", error_description: "Required metadata header not specified" });
    }
    const f = this.#fault;
    if (f && f.times > 0) {
      f.times--;
      bump(`${this.mode}.fault`);
      switch (f.kind) {
        case "throttle":
          res.setHeader("retry-after", "2");
          return sendJson(res, 429, { error: "too_many_requests", error_description: "Too many requests" });
        case "error":
          return sendJson(res, 500, { error: "unknown", error_description: "Internal error" });
        case "unavailable":
          return sendJson(res, 503, { error: "unavailable", error_description: "Service unavailable" });
        case "hang":
          this.hung.add(res);
          return;
        case "garbage":
          res.writeHead(200, { "content-type": "text/html" });
          res.end("<html>" + planted("mi-garbage") + "</html>");
          return;
      }
    }
    const resource = url.searchParams.get("resource") ?? "";
    const api = url.searchParams.get("api-version");
    if (this.mode === "arc") {
      if (api !== "2019-11-01") return sendJson(res, 400, { error: "invalid_request", error_description: "Invalid api-version" });
      const auth = req.headers.authorization;
      if (!auth) {
        bump("arc.challenge");
        const id = randomUUID();
        const secret = randomBytes(32).toString("hex");
        fs.writeFileSync(path.join(this.keyDir!, `${id}.key`), secret, { mode: 0o600 });
        this.#pending.set(secret, id);
        res.writeHead(401, { "www-authenticate": `Basic realm=${ARC_TOKENS_DIR}${id}.key`, "content-type": "application/json" });
        res.end(JSON.stringify({ error: "unauthorized", error_description: "Authorization header required" }));
        return;
      }
      const secret = /^Basic (.+)$/.exec(auth)?.[1];
      const id = secret === undefined ? undefined : this.#pending.get(secret);
      if (id === undefined) {
        bump("arc.refused");
        return sendJson(res, 401, { error: "unauthorized", error_description: "Invalid or expired key" });
      }
      this.#pending.delete(secret!);
      fs.rmSync(path.join(this.keyDir!, `${id}.key`), { force: true });
      bump("arc.token");
    } else {
      if (api !== "2018-02-01") return sendJson(res, 400, { error: "invalid_request", error_description: "Invalid api-version" });
      const clientId = url.searchParams.get("client_id");
      if (clientId !== null && !this.userAssigned.has(clientId)) {
        bump("imds.unknown-identity");
        return sendJson(res, 400, { error: "invalid_request", error_description: "Identity not found" });
      }
      bump("imds.token");
    }
    if (!resource) return sendJson(res, 400, { error: "invalid_request", error_description: "Required query variable 'resource' is missing" });
    const now = Math.floor(Date.now() / 1000);
    const token = this.issuer.issue({
      principal: this.principal,
      tenant: this.tenant,
      resource: resource.replace(/\/$/, ""),
      expiresAt: (now + this.tokenLifetime) * 1000,
    });
    // Numbers as strings, as HIMDS and IMDS send them.
    sendJson(res, 200, {
      access_token: token,
      expires_in: String(this.tokenLifetime),
      expires_on: String(now + this.tokenLifetime),
      ext_expires_in: String(this.tokenLifetime),
      not_before: String(now),
      resource,
      token_type: "Bearer",
    });
  }
}

export function sendJson(res: http.ServerResponse, status: number, body: unknown): void {
  const s = JSON.stringify(body);
  res.writeHead(status, { "content-type": "application/json; charset=utf-8", "content-length": String(Buffer.byteLength(s)) });
  res.end(s);
}

/** Entra's OAuth error body. */
function oauthError(res: http.ServerResponse, status: number, error: string, description: string, code: number): void {
  const trace = randomUUID();
  const corr = randomUUID();
  const at = new Date()
    .toISOString()
    .replace("T", " ")
    .replace(/\.\d+Z$/, "Z");
  sendJson(res, status, {
    error,
    error_description: `${description} Trace ID: ${trace} Correlation ID: ${corr} Timestamp: ${at}`,
    error_codes: [code],
    timestamp: at,
    trace_id: trace,
    correlation_id: corr,
    error_uri: `https://login.microsoftonline.com/error?code=${code}`,
  });
}
