import { AssumeRoleCommand, STSClient } from "@aws-sdk/client-sts";
import { defaultProvider } from "@aws-sdk/credential-provider-node";
import type { AwsCredentialIdentity, AwsCredentialIdentityProvider } from "@smithy/types";
import type { AwsOptions } from "./client.js";
import { requestHandler } from "./client.js";
import { ProviderError } from "../provider.js";
import { classifyAws } from "./errors.js";

/** Temporary credentials are refreshed once less than this is left (or a third of their lifetime, if shorter). */
const REFRESH_MARGIN_MS = 5 * 60_000;

/**
 * The standard AWS credential chain (environment, SSO, web identity, shared files
 * with `profile` / `credentials_file`, container and instance metadata), with
 * `role_arn` assumed on top of it through STS when configured.
 */
export function credentialsFor(o: AwsOptions, sessionName: string): AwsCredentialIdentityProvider {
  const base = defaultProvider({ profile: o.profile, filepath: o.credentials_file });
  if (!o.role_arn) return base;
  return assumedRole({ base, roleArn: o.role_arn, sessionName, region: o.region, endpoint: o.sts_endpoint });
}

export function stsClient(opts: { base: AwsCredentialIdentityProvider; region: string | undefined; endpoint: string | undefined }): STSClient {
  return new STSClient({ region: opts.region, endpoint: opts.endpoint, credentials: opts.base, maxAttempts: 1, requestHandler: requestHandler() });
}

export interface TemporaryCredentials {
  readonly AccessKeyId: string;
  readonly SecretAccessKey: string;
  readonly SessionToken: string;
  readonly Expiration: Date;
}

/** One AssumeRole call; the answer is checked for every field the caller needs. */
export async function assumeRole(
  sts: STSClient,
  params: { roleArn: string; sessionName: string; durationSeconds?: number | undefined },
  signal?: AbortSignal,
): Promise<TemporaryCredentials> {
  const r = await sts.send(new AssumeRoleCommand({ RoleArn: params.roleArn, RoleSessionName: params.sessionName, DurationSeconds: params.durationSeconds }), {
    abortSignal: signal,
  });
  const c = r.Credentials;
  if (!c?.AccessKeyId || !c.SecretAccessKey || !c.SessionToken || !(c.Expiration instanceof Date) || Number.isNaN(c.Expiration.getTime())) {
    throw Object.assign(new Error("AssumeRole answer lacks credentials"), { name: "MalformedAnswer" });
  }
  return { AccessKeyId: c.AccessKeyId, SecretAccessKey: c.SecretAccessKey, SessionToken: c.SessionToken, Expiration: c.Expiration };
}

/** A credential provider that assumes `roleArn` and refreshes before expiry; concurrent callers share one call. */
export function assumedRole(opts: {
  base: AwsCredentialIdentityProvider;
  roleArn: string;
  sessionName: string;
  region: string | undefined;
  endpoint: string | undefined;
}): AwsCredentialIdentityProvider {
  const sts = stsClient(opts);
  let held: (AwsCredentialIdentity & { expiration: Date }) | undefined;
  let obtained = 0;
  let pending: Promise<AwsCredentialIdentity> | undefined;
  return async () => {
    const now = Date.now();
    if (held?.expiration) {
      const left = held.expiration.getTime() - now;
      if (left > Math.min(REFRESH_MARGIN_MS, (held.expiration.getTime() - obtained) / 3)) return held;
    }
    pending ??= assumeRole(sts, { roleArn: opts.roleArn, sessionName: opts.sessionName })
      .then((c) => {
        obtained = Date.now();
        const fresh = { accessKeyId: c.AccessKeyId, secretAccessKey: c.SecretAccessKey, sessionToken: c.SessionToken, expiration: c.Expiration };
        held = fresh;
        return fresh;
      })
      .catch((e: unknown) => {
        // The role cannot be had: every call of this provider fails the same way.
        const c = classifyAws(e, `sts AssumeRole ${opts.roleArn} (role_arn)`);
        throw c.error.kind === "transient"
          ? c.error
          : new ProviderError("auth", `${c.error.message.replace(/; check the IAM policy$/, "")}; check role_arn and its trust policy`);
      })
      .finally(() => (pending = undefined));
    return pending;
  };
}
