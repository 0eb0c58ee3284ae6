import http from "node:http";
import https from "node:https";

/** The options every AWS provider type shares (see schema.ts). */
export interface AwsOptions {
  readonly region?: string | undefined;
  readonly endpoint?: string | undefined;
  readonly role_arn?: string | undefined;
  readonly sts_endpoint?: string | undefined;
  readonly profile?: string | undefined;
  readonly credentials_file?: string | undefined;
}

/**
 * The HTTP layer every AWS client here uses: keep-alive agents, a connect
 * timeout, and no SDK retries (maxAttempts: 1 in each client): the sync engine
 * backs off with jitter across the fleet, and SDK retries would multiply the
 * requests a throttled backend sees.
 */
export function requestHandler(): { connectionTimeout: number; httpAgent: http.Agent; httpsAgent: https.Agent } {
  return {
    connectionTimeout: 5_000,
    httpAgent: new http.Agent({ keepAlive: true, maxSockets: 16 }),
    httpsAgent: new https.Agent({ keepAlive: true, maxSockets: 16 }),
  };
}

/** Which account view a provider reads (Provider.backend): a cached version from another says nothing here. */
export function awsBackend(o: AwsOptions): string {
  return JSON.stringify([o.region ?? null, o.endpoint ?? null, o.role_arn ?? null, o.profile ?? null]);
}
