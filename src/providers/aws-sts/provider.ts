import type { z } from "zod";
import { classifyAws } from "../aws/errors.js";
import { assumeRole, assumedRole, stsClient } from "../aws/credentials.js";
import { failed, textBytes, valueResult } from "../aws/values.js";
import { defaultProvider } from "@aws-sdk/credential-provider-node";
import { mapPool } from "../pool.js";
import { ProviderError, unchanged, type FetchResult, type Provider, type ProviderInit, type SecretRef } from "../provider.js";
import type { awsStsSchema } from "./schema.js";

type Options = z.output<ReturnType<typeof awsStsSchema>>;

/**
 * AWS STS: AssumeRole, its temporary credentials served as a secret, a JSON
 * object in the `credential_process` format ({Version: 1, AccessKeyId,
 * SecretAccessKey, SessionToken, Expiration}); `key` picks one field. The role
 * is the secret's `path` when it is a role ARN (assumed with the provider's
 * credentials, `role_arn` included), otherwise the provider's `role_arn` with the
 * path as the session name. Credentials are fetched again once 2/3 of their
 * lifetime has passed (the engine schedules that from `expiresAt`); before then a
 * sync costs no call.
 */
export function create(init: ProviderInit<Options>): Provider {
  const o = init.options;
  const base = defaultProvider({ profile: o.profile, filepath: o.credentials_file });
  const endpoint = o.endpoint ?? o.sts_endpoint;
  const direct = stsClient({ base, region: o.region, endpoint });
  const chained = o.role_arn
    ? stsClient({
        base: assumedRole({ base, roleArn: o.role_arn, sessionName: o.session_name ?? "sealcache", region: o.region, endpoint }),
        region: o.region,
        endpoint,
      })
    : direct;
  const held = new Map<string, { version: string; obtained: number; expiresAt: number }>();

  async function one(ref: SecretRef, signal: AbortSignal): Promise<FetchResult> {
    const isArn = ref.path.startsWith("arn:");
    const roleArn = isArn ? ref.path : o.role_arn;
    const where = `sts AssumeRole ${roleArn ?? "(no role)"}`;
    if (!roleArn)
      return failed(ref, new ProviderError("permanent", `sts: secret path ${JSON.stringify(ref.path)} is not a role ARN and the provider has no role_arn`));
    if (ref.version !== undefined) return failed(ref, new ProviderError("permanent", `${where}: version cannot be pinned for STS credentials`));
    const h = held.get(ref.name);
    if (h && ref.cachedVersion === h.version && Date.now() < h.expiresAt - (h.expiresAt - h.obtained) / 3) return unchanged(ref.name, h.version, h.expiresAt);
    const session = o.session_name ?? (isArn ? "sealcache" : ref.path.replace(/[^\w+=,.@-]/g, "-").slice(0, 64));
    try {
      const c = await assumeRole(
        isArn ? chained : direct,
        { roleArn, sessionName: session, durationSeconds: o.duration === undefined ? undefined : Math.round(o.duration / 1000) },
        signal,
      );
      const expiresAt = c.Expiration.getTime();
      held.set(ref.name, { version: c.AccessKeyId, obtained: Date.now(), expiresAt });
      const json = JSON.stringify({
        Version: 1,
        AccessKeyId: c.AccessKeyId,
        SecretAccessKey: c.SecretAccessKey,
        SessionToken: c.SessionToken,
        Expiration: c.Expiration.toISOString(),
      });
      return valueResult(ref, textBytes(json), c.AccessKeyId, where, expiresAt);
    } catch (e) {
      if ((e as Error)?.name === "MalformedAnswer") return failed(ref, new ProviderError("transient", `${where}: answer lacks credentials; rejected`));
      const c = classifyAws(e, where);
      if (c.scope === "provider") throw c.error;
      return failed(ref, c.error);
    }
  }

  return {
    maxBatch: 50,
    async fetch(refs, signal) {
      return mapPool(refs, o.concurrency, (r) => one(r, signal));
    },
    async close() {
      direct.destroy();
      if (chained !== direct) chained.destroy();
    },
  };
}
