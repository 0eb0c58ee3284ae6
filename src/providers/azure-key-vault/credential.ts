import fs from "node:fs";
import type { AccessToken, GetTokenOptions, TokenCredential } from "@azure/core-auth";
import { ClientCertificateCredential, ClientSecretCredential, ManagedIdentityCredential, WorkloadIdentityCredential } from "@azure/identity";
import type { z } from "zod";
import { ProviderError, isProviderError } from "../provider.js";
import { tokenFailure, type Exchanges } from "./errors.js";
import type { AgentHttpClient } from "./http.js";
import type { azureKeyVaultSchema } from "./schema.js";

export type Options = z.output<ReturnType<typeof azureKeyVaultSchema>>;
export type Auth = Options["auth"];

export const DEFAULT_AUTHORITY = "https://login.microsoftonline.com";

/**
 * Entra ID hosts of the Azure clouds: MSAL knows their metadata. Any other
 * authority (ADFS, a test server) needs instance discovery off, or MSAL would ask
 * login.microsoftonline.com about it first.
 */
const MICROSOFT_AUTHORITIES = new Set([
  "login.microsoftonline.com",
  "login.microsoft.com",
  "login.windows.net",
  "sts.windows.net",
  "login.microsoftonline.us",
  "login.usgovcloudapi.net",
  "login-us.microsoftonline.com",
  "login.chinacloudapi.cn",
  "login.partner.microsoftonline.cn",
  "login.microsoftonline.de",
]);

/**
 * The resources a Key Vault challenge may name (public, US Government, China,
 * Germany clouds, Managed HSM). Where the SDK's own check of the challenge against
 * the vault's host is off (a vault_url outside *.vault.azure.net), this list
 * stands in for it: a server at vault_url cannot obtain a token for another
 * resource (Azure Resource Manager, Graph) by challenging for it.
 */
const KEY_VAULT_SCOPES = new Set([
  "https://vault.azure.net/.default",
  "https://vault.usgovcloudapi.net/.default",
  "https://vault.azure.cn/.default",
  "https://vault.microsoftazure.de/.default",
  "https://managedhsm.azure.net/.default",
]);

const GUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/** What the credential is, for messages and logs: method, tenant, client id; nothing secret. */
export function describeAuth(a: Auth): string {
  if (a.method === "managed_identity") return a.client_id ? `managed identity ${a.client_id}` : "managed identity";
  return `${a.method} ${a.client_id} in tenant ${a.tenant_id}`;
}

/**
 * The SDK credential for `auth.method`, behind a wrapper that checks the
 * requested scope and turns every failure into a ProviderError built from what
 * the token endpoint answered (Exchanges), never from SDK message text.
 * Files are read here, at each build: the provider builds a new credential after
 * the old one was refused, so a rotated client secret or certificate is picked up
 * then (and at every start). The workload identity token file is re-read by the
 * SDK at least every 5 minutes (projected tokens rotate).
 */
export function buildCredential(o: Options, http: AgentHttpClient, exchanges: Exchanges): TokenCredential {
  const a = o.auth;
  const common = { httpClient: http, retryOptions: { maxRetries: 0 } };
  const where = `azure-key-vault ${describeAuth(a)}`;
  if (a.method === "managed_identity") {
    // IMDS, or the Arc agent (HIMDS) when IDENTITY_ENDPOINT/IMDS_ENDPOINT are set or
    // /opt/azcmagent/bin/himds exists; the SDK picks, once per process.
    return new ScopedCredential(
      new ManagedIdentityCredential({ ...common, ...(a.client_id ? { clientId: a.client_id } : {}) }),
      undefined,
      [],
      exchanges,
      where,
    );
  }
  const authorityHost = (a.authority_host ?? DEFAULT_AUTHORITY).replace(/\/+$/, "");
  const msal = { ...common, authorityHost, disableInstanceDiscovery: !MICROSOFT_AUTHORITIES.has(new URL(authorityHost).hostname.toLowerCase()) };
  switch (a.method) {
    case "client_secret": {
      const secret = readText(a.client_secret_file, "client_secret_file").trim();
      if (secret === "") throw new ProviderError("auth", `${where}: client_secret_file ${a.client_secret_file} is empty`);
      return new ScopedCredential(new ClientSecretCredential(a.tenant_id, a.client_id, secret, msal), a.tenant_id, [], exchanges, where);
    }
    case "certificate": {
      const pem = readText(a.certificate_file, "certificate_file");
      if (!/-----BEGIN CERTIFICATE-----/.test(pem) || !/-----BEGIN (RSA |EC )?PRIVATE KEY-----/.test(pem)) {
        throw new ProviderError("auth", `${where}: certificate_file ${a.certificate_file} must hold a PEM certificate and its unencrypted private key`);
      }
      const cred = new ClientCertificateCredential(a.tenant_id, a.client_id, { certificate: pem }, { ...msal, sendCertificateChain: a.send_certificate_chain });
      return new ScopedCredential(cred, a.tenant_id, [], exchanges, where);
    }
    case "workload_identity":
      return new ScopedCredential(
        new WorkloadIdentityCredential({ ...msal, tenantId: a.tenant_id, clientId: a.client_id, tokenFilePath: a.token_file }),
        a.tenant_id,
        [["token_file", a.token_file]],
        exchanges,
        where,
      );
  }
}

function readText(file: string, key: string): string {
  try {
    return fs.readFileSync(file, "utf8");
  } catch (e) {
    throw new ProviderError("auth", `azure-key-vault auth.${key} ${file} cannot be read (${(e as NodeJS.ErrnoException).code ?? "error"})`);
  }
}

class ScopedCredential implements TokenCredential {
  constructor(
    readonly inner: TokenCredential,
    readonly tenant: string | undefined,
    /** Files the SDK reads at token time: checked first, for a clear error. */
    readonly files: readonly [string, string][],
    readonly exchanges: Exchanges,
    readonly where: string,
  ) {}

  async getToken(scopes: string | string[], options: GetTokenOptions = {}): Promise<AccessToken | null> {
    const list = Array.isArray(scopes) ? scopes : [scopes];
    const foreign = list.find((s) => !KEY_VAULT_SCOPES.has(s));
    if (foreign !== undefined)
      throw new ProviderError(
        "auth",
        `${this.where}: the vault's challenge asks for a token for ${JSON.stringify(foreign.slice(0, 60))}, which is not a Key Vault resource; ` +
          `refused (check vault_url)`,
      );
    const opts = { ...options };
    // The challenge names the vault's tenant. The credential is for one tenant (the
    // config's): a GUID that differs is a config error, said plainly; a domain name
    // cannot be compared, so the request goes to the configured tenant and a wrong
    // one is refused by the vault.
    if (opts.tenantId !== undefined && this.tenant !== undefined && opts.tenantId.toLowerCase() !== this.tenant.toLowerCase()) {
      if (GUID.test(this.tenant))
        throw new ProviderError("auth", `${this.where}: the vault belongs to tenant ${opts.tenantId.slice(0, 60)}, not auth.tenant_id ${this.tenant}`);
      delete opts.tenantId;
    }
    for (const [key, file] of this.files) {
      try {
        fs.accessSync(file, fs.constants.R_OK);
      } catch (e) {
        throw new ProviderError("auth", `${this.where}: auth.${key} ${file} cannot be read (${(e as NodeJS.ErrnoException).code ?? "error"})`);
      }
    }
    const mark = this.exchanges.mark();
    try {
      const token = await this.inner.getToken(list, opts);
      if (!token?.token) throw new ProviderError("auth", `${this.where}: no access token in the answer`);
      return token;
    } catch (e) {
      if (isProviderError(e)) throw e;
      throw tokenFailure(e, this.exchanges.since(mark), this.where);
    }
  }
}
