import http from "node:http";
import { Compute } from "google-auth-library";
import { ProviderError } from "../provider.js";

/** Token endpoints (STS, IAM credentials, the metadata server) that do not answer by then count as down. */
export const TOKEN_TIMEOUT_MS = 10_000;
const MAX_TOKEN_ANSWER = 64 * 1024;

/**
 * The metadata server's token for the default service account: the library's
 * Compute client (token cache, refresh before expiry) with its one request made
 * here, so that it has a timeout, no retries, and failures we can classify.
 */
export class MetadataToken extends Compute {
  protected override async refreshTokenNoCache(): Promise<{ tokens: { access_token: string; token_type: string; expiry_date: number }; res: null }> {
    // The variables Google's libraries read, in their order.
    const base = process.env.GCE_METADATA_IP || process.env.GCE_METADATA_HOST || "169.254.169.254";
    const url = new URL(
      `/computeMetadata/v1/instance/service-accounts/${encodeURIComponent(this.serviceAccountEmail)}/token`,
      /^https?:\/\//.test(base) ? base : `http://${base}`,
    );
    if (this.scopes.length > 0) url.searchParams.set("scopes", this.scopes.join(","));
    const where = `metadata server ${url.host}`;
    const { status, flavor, body } = await getOnce(url, { "metadata-flavor": "Google" }, where);
    try {
      if (status === 429 || status >= 500) throw new ProviderError("transient", `${where}: token request answered HTTP ${status}`);
      if (status !== 200) throw new ProviderError("auth", `${where}: token request refused (HTTP ${status}); does this machine have a service account?`);
      // Anything else that answers (a captive portal, a proxy) is not the metadata server.
      if (flavor !== "Google") throw new ProviderError("transient", `${where}: the answer lacks Metadata-Flavor: Google; not the metadata server; rejected`);
      let t: { access_token?: unknown; expires_in?: unknown; token_type?: unknown };
      try {
        t = JSON.parse(body.toString("utf8"));
      } catch {
        throw new ProviderError("transient", `${where}: token answer is not JSON; rejected`);
      }
      if (typeof t?.access_token !== "string" || t.access_token === "" || typeof t.expires_in !== "number")
        throw new ProviderError("transient", `${where}: token answer lacks access_token/expires_in; rejected`);
      return { tokens: { access_token: t.access_token, token_type: "Bearer", expiry_date: Date.now() + t.expires_in * 1000 }, res: null };
    } finally {
      body.fill(0);
    }
  }
}

function getOnce(url: URL, headers: Record<string, string>, where: string): Promise<{ status: number; flavor: string | undefined; body: Buffer }> {
  return new Promise((resolve, reject) => {
    const req = http.get(url, { headers, timeout: TOKEN_TIMEOUT_MS, agent: false }, (res) => {
      const chunks: Buffer[] = [];
      let size = 0;
      res.on("data", (c: Buffer) => {
        size += c.length;
        if (size > MAX_TOKEN_ANSWER) {
          res.destroy();
          reject(new ProviderError("transient", `${where}: token answer larger than ${MAX_TOKEN_ANSWER} bytes; rejected`));
        } else chunks.push(c);
      });
      res.on("error", () => reject(new ProviderError("transient", `${where}: token answer cut off`)));
      res.on("end", () => resolve({ status: res.statusCode ?? 0, flavor: headerOf(res.headers["metadata-flavor"]), body: Buffer.concat(chunks) }));
    });
    req.on("timeout", () => req.destroy(Object.assign(new Error("timeout"), { code: "ETIMEDOUT" })));
    req.on("error", (e: NodeJS.ErrnoException) => reject(new ProviderError("transient", `${where} unreachable (${e.code ?? e.name})`)));
  });
}

function headerOf(v: string | string[] | undefined): string | undefined {
  return Array.isArray(v) ? v[0] : v;
}
