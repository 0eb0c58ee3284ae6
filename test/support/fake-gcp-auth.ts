import fs from "node:fs";
import type http from "node:http";
import https from "node:https";
import path from "node:path";
import { LocalServer } from "./local-server.js";
import { planted } from "./planted.js";
import { makeCerts } from "./certs.js";
import { FakeGcp } from "./fake-gcp.js";

/**
 * The token sources a gateway's Secret Manager credentials come from, for
 * FakeGcp: the GCE metadata server (HTTP, `Metadata-Flavor: Google` both ways)
 * and, for workload identity federation, STS's token exchange (RFC 8693) and
 * IAM Credentials' generateAccessToken for service-account impersonation, over
 * TLS. Tokens they issue are registered with the FakeGcp, which then accepts
 * them. Faults: errors, refusals, hangs, and a metadata answer without its
 * Metadata-Flavor header (something else answering on that address).
 */
export type TokenFault = "error" | "refuse" | "hang" | "noflavor";

abstract class TokenServer extends LocalServer {
  readonly counts = new Map<string, number>();
  /** Query/form parameters of each request, by operation. */
  readonly params = new Map<string, URLSearchParams[]>();
  protected fault: { kind: TokenFault; times: number } | undefined;

  constructor(protected readonly gcp: FakeGcp) {
    super();
  }

  count(op: string): number {
    return this.counts.get(op) ?? 0;
  }

  fail(kind: TokenFault, times = Infinity): void {
    this.fault = { kind, times };
  }

  heal(): void {
    this.fault = undefined;
    this.releaseHung();
  }

  protected record(op: string, p: URLSearchParams): void {
    this.counts.set(op, this.count(op) + 1);
    this.params.set(op, [...(this.params.get(op) ?? []), p]);
  }

  /** The fault to apply now, if any (consumed). */
  protected takeFault(): TokenFault | undefined {
    const f = this.fault;
    if (!f || f.times <= 0) return undefined;
    f.times--;
    return f.kind;
  }

  protected issue(principal: string): string {
    const t = `ya29.${planted("access-token")}`;
    this.gcp.accessTokens.set(t, principal);
    return t;
  }
}

export class FakeMetadata extends TokenServer {
  serviceAccount: string;
  expiresIn = 3599;

  constructor(gcp: FakeGcp) {
    super(gcp);
    this.serviceAccount = `1234567-compute@developer.gserviceaccount.com`;
  }

  /** What GCE_METADATA_HOST is set to for a client of this server. */
  get host(): string {
    return `127.0.0.1:${this.port}`;
  }

  protected async handle(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const url = new URL(req.url ?? "/", "http://metadata");
    const op = url.pathname === "/computeMetadata/v1/instance/service-accounts/default/token" ? "token" : url.pathname;
    this.record(op, url.searchParams);
    const send = (status: number, body: string, flavor = true) => {
      res.writeHead(status, { "content-type": "application/json", ...(flavor ? { "metadata-flavor": "Google" } : {}) });
      res.end(body);
    };
    // The metadata server refuses requests without the header (a guard against SSRF).
    if (req.headers["metadata-flavor"] !== "Google") return send(403, "Missing required header: Metadata-Flavor");
    switch (this.takeFault()) {
      case "error":
        return send(503, "unavailable");
      case "refuse":
        return send(404, "service account not found");
      case "hang":
        this.hung.add(res);
        return;
      case "noflavor":
        return send(200, `<html>captive portal ${planted("portal")}</html>`, false);
    }
    if (op !== "token" || req.method !== "GET") return send(404, "not found");
    send(200, JSON.stringify({ access_token: this.issue(this.serviceAccount), expires_in: this.expiresIn, token_type: "Bearer" }));
  }
}

/** STS and IAM Credentials on one TLS listener (the config names each URL). */
export class FakeSts extends TokenServer {
  readonly audience = "//iam.googleapis.com/projects/240170053851/locations/global/workloadIdentityPools/edge/providers/gateways";
  /** The OIDC token a gateway presents (from its credential_source file). */
  subjectToken = planted("oidc-subject");
  readonly impersonated = "secret-reader@fleet.iam.gserviceaccount.com";

  constructor(
    gcp: FakeGcp,
    private readonly tlsOpts: { key: Buffer | string; cert: Buffer | string },
  ) {
    super(gcp);
  }

  protected override createServer(handler: http.RequestListener): https.Server {
    return https.createServer({ key: this.tlsOpts.key, cert: this.tlsOpts.cert }, handler);
  }

  get url(): string {
    return `https://127.0.0.1:${this.port}`;
  }

  /** An external_account file with a file-sourced OIDC token (and impersonation when asked), as `gcloud iam workload-identity-pools create-cred-config` writes it. */
  writeExternalAccount(dir: string, opts: { impersonate?: boolean; tokenFile?: string } = {}): { file: string; tokenFile: string } {
    const tokenFile = opts.tokenFile ?? path.join(dir, "oidc-token");
    fs.writeFileSync(tokenFile, this.subjectToken, { mode: 0o600 });
    const cfg = {
      type: "external_account",
      audience: this.audience,
      subject_token_type: "urn:ietf:params:oauth:token-type:jwt",
      token_url: `${this.url}/v1/token`,
      credential_source: { file: tokenFile, format: { type: "text" } },
      ...(opts.impersonate ? { service_account_impersonation_url: `${this.url}/v1/projects/-/serviceAccounts/${this.impersonated}:generateAccessToken` } : {}),
      universe_domain: "googleapis.com",
    };
    const file = path.join(dir, opts.impersonate ? "gcp-wif-impersonate.json" : "gcp-wif.json");
    fs.writeFileSync(file, JSON.stringify(cfg, null, 2), { mode: 0o600 });
    return { file, tokenFile };
  }

  protected async handle(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const chunks: Buffer[] = [];
    for await (const c of req) chunks.push(c as Buffer);
    const body = Buffer.concat(chunks).toString("utf8");
    const url = new URL(req.url ?? "/", "https://sts");
    const json = (status: number, v: unknown) => {
      res.writeHead(status, { "content-type": "application/json" });
      res.end(JSON.stringify(v));
    };
    const op = url.pathname === "/v1/token" ? "sts.token" : /:generateAccessToken$/.test(url.pathname) ? "iam.generateAccessToken" : url.pathname;
    this.record(op, op === "sts.token" ? new URLSearchParams(body) : url.searchParams);
    switch (this.takeFault()) {
      case "error":
        return json(503, { error: "temporarily_unavailable" });
      case "refuse":
        return json(400, {
          error: "invalid_grant",
          error_description: `The audience in ID Token [${this.subjectToken}] does not match the expected audience.`,
        });
      case "hang":
        this.hung.add(res);
        return;
    }
    if (op === "sts.token" && req.method === "POST") {
      const f = new URLSearchParams(body);
      if (
        f.get("grant_type") !== "urn:ietf:params:oauth:grant-type:token-exchange" ||
        f.get("requested_token_type") !== "urn:ietf:params:oauth:token-type:access_token"
      )
        return json(400, { error: "invalid_request" });
      if (f.get("audience") !== this.audience || f.get("subject_token_type") !== "urn:ietf:params:oauth:token-type:jwt")
        return json(400, { error: "invalid_target" });
      if (f.get("subject_token") !== this.subjectToken)
        return json(400, { error: "invalid_grant", error_description: "ID Token issued at ... is stale to sign-in." });
      return json(200, {
        access_token: this.issue(`principal://${this.audience.slice(2)}`),
        issued_token_type: "urn:ietf:params:oauth:token-type:access_token",
        token_type: "Bearer",
        expires_in: 3600,
      });
    }
    if (op === "iam.generateAccessToken" && req.method === "POST") {
      const bearer = /^Bearer (\S+)$/.exec(String(req.headers.authorization ?? ""))?.[1];
      if (!bearer || !this.gcp.accessTokens.get(bearer)?.startsWith("principal://")) return json(401, { error: { code: 401, status: "UNAUTHENTICATED" } });
      if (!url.pathname.endsWith(`/serviceAccounts/${this.impersonated}:generateAccessToken`))
        return json(403, { error: { code: 403, status: "PERMISSION_DENIED" } });
      return json(200, { accessToken: this.issue(this.impersonated), expireTime: new Date(Date.now() + 3600_000).toISOString() });
    }
    json(404, { error: "not_found" });
  }
}

/** The three local servers a GCP test needs, with a test CA (the server certificate is for 127.0.0.1 and localhost), stopped when the test ends. */
export async function startGcp(t: { after(fn: () => void | Promise<void>): void }, dir: string) {
  const certs = makeCerts(path.join(dir, "certs"));
  const tls = { key: fs.readFileSync(certs.serverKey), cert: fs.readFileSync(certs.serverCert) };
  const gcp = await new FakeGcp(tls).start();
  const metadata = await new FakeMetadata(gcp).start();
  const sts = await new FakeSts(gcp, tls).start();
  t.after(async () => {
    await gcp.stop();
    await metadata.stop();
    await sts.stop();
  });
  return { gcp, metadata, sts, certs };
}
