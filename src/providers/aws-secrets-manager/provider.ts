import { BatchGetSecretValueCommand, GetSecretValueCommand, SecretsManagerClient, type SecretValueEntry } from "@aws-sdk/client-secrets-manager";
import type { z } from "zod";
import { classifyAws, isAccessDenied } from "../aws/errors.js";
import { credentialsFor } from "../aws/credentials.js";
import { awsBackend, requestHandler } from "../aws/client.js";
import { failed, textBytes, valueResult } from "../aws/values.js";
import { chunks, mapPool } from "../pool.js";
import { ProviderError, unchanged, type FetchResult, type Provider, type ProviderInit, type SecretRef } from "../provider.js";
import type { awsSecretsManagerSchema } from "./schema.js";

type Options = z.output<ReturnType<typeof awsSecretsManagerSchema>>;

/** BatchGetSecretValue takes at most 20 secret ids. */
export const BATCH = 20;
/** A VersionId (a UUID in practice; 32-64 characters) as opposed to a staging label. */
const VERSION_ID = /^[0-9a-fA-F-]{32,64}$/;

/**
 * AWS Secrets Manager: secrets following AWSCURRENT are read 20 at a time with
 * BatchGetSecretValue; a pinned `version` (a staging label such as AWSPREVIOUS,
 * or a VersionId) is read with GetSecretValue, and a pinned VersionId already
 * held costs no call at all (versions are immutable). If the role may not call
 * BatchGetSecretValue the provider falls back to GetSecretValue per secret.
 */
export function create(init: ProviderInit<Options>): Provider {
  const o = init.options;
  const client = new SecretsManagerClient({
    region: o.region,
    endpoint: o.endpoint,
    credentials: credentialsFor(o, "sealcache"),
    maxAttempts: 1,
    requestHandler: requestHandler(),
  });
  let batchDenied = false;

  async function getOne(ref: SecretRef, signal: AbortSignal): Promise<FetchResult> {
    const where = `secretsmanager ${ref.path}`;
    const v = ref.version;
    if (v !== undefined && VERSION_ID.test(v) && ref.cachedVersion === v) return unchanged(ref.name, v);
    try {
      const r = await client.send(
        new GetSecretValueCommand({ SecretId: ref.path, ...(v === undefined ? {} : VERSION_ID.test(v) ? { VersionId: v } : { VersionStage: v }) }),
        { abortSignal: signal },
      );
      return entryResult(ref, r, where);
    } catch (e) {
      const c = classifyAws(e, where);
      if (c.scope === "provider") throw c.error;
      return failed(ref, c.error);
    }
  }

  async function getBatch(refs: SecretRef[], signal: AbortSignal): Promise<FetchResult[]> {
    const ids = [...new Set(refs.map((r) => r.path))];
    const where = `secretsmanager BatchGetSecretValue (${ids.length} secrets)`;
    let values: SecretValueEntry[];
    let errors: { SecretId?: string | undefined; ErrorCode?: string | undefined }[];
    try {
      const r = await client.send(new BatchGetSecretValueCommand({ SecretIdList: ids }), { abortSignal: signal });
      values = r.SecretValues ?? [];
      errors = r.Errors ?? [];
      if (!Array.isArray(values) || !Array.isArray(errors)) throw new ProviderError("transient", `${where}: answer has no SecretValues/Errors lists; rejected`);
    } catch (e) {
      if (isAccessDenied(e)) {
        batchDenied = true;
        init.logger.warn(
          { provider: init.name },
          "BatchGetSecretValue is denied; reading secrets one by one with GetSecretValue (grant secretsmanager:BatchGetSecretValue to cut requests by 20x)",
        );
        return mapPool(refs, o.concurrency, (r) => getOne(r, signal));
      }
      const c = classifyAws(e, where);
      if (c.scope === "provider") throw c.error;
      return refs.map((r) => failed(r, c.error));
    }
    return refs.map((ref) => {
      const w = `secretsmanager ${ref.path}`;
      const entry = values.find((e) => e.Name === ref.path || e.ARN === ref.path || (ref.path.startsWith("arn:") && e.ARN?.startsWith(ref.path)));
      if (entry) return entryResult(ref, entry, w);
      const err = errors.find((e) => e.SecretId === ref.path);
      if (err) return failed(ref, classifyAws({ name: err.ErrorCode ?? "Error" }, w).error);
      return failed(ref, new ProviderError("transient", `${w}: BatchGetSecretValue answered neither a value nor an error for it; rejected`));
    });
  }

  return {
    maxBatch: 100,
    backend: awsBackend(o),
    async fetch(refs, signal) {
      const pinned = refs.filter((r) => r.version !== undefined);
      const current = refs.filter((r) => r.version === undefined);
      const jobs: (() => Promise<FetchResult[]>)[] = [];
      for (const r of pinned) jobs.push(async () => [await getOne(r, signal)]);
      if (batchDenied) for (const r of current) jobs.push(async () => [await getOne(r, signal)]);
      else for (const c of chunks(current, BATCH)) jobs.push(() => getBatch(c, signal));
      return (await mapPool(jobs, o.concurrency, (j) => j())).flat();
    },
    async close() {
      client.destroy();
    },
  };
}

/** A value from GetSecretValue or a BatchGetSecretValue entry; anything malformed is rejected. */
function entryResult(
  ref: SecretRef,
  e: { VersionId?: string | undefined; SecretString?: string | undefined; SecretBinary?: Uint8Array | undefined },
  where: string,
): FetchResult {
  if (typeof e.VersionId !== "string" || e.VersionId === "") return failed(ref, new ProviderError("transient", `${where}: answer has no VersionId; rejected`));
  if (typeof e.SecretString === "string") return valueResult(ref, textBytes(e.SecretString), e.VersionId, where);
  if (e.SecretBinary instanceof Uint8Array) return valueResult(ref, Uint8Array.from(e.SecretBinary), e.VersionId, where);
  return failed(ref, new ProviderError("transient", `${where}: answer has neither SecretString nor SecretBinary; rejected`));
}
