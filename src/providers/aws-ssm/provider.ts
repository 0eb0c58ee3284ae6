import { GetParametersByPathCommand, GetParametersCommand, SSMClient, type Parameter } from "@aws-sdk/client-ssm";
import type { z } from "zod";
import { classifyAws, isAccessDenied } from "../aws/errors.js";
import { credentialsFor } from "../aws/credentials.js";
import { awsBackend, requestHandler } from "../aws/client.js";
import { failed, textBytes, valueResult } from "../aws/values.js";
import { chunks, mapPool } from "../pool.js";
import { ProviderError, unchanged, type FetchResult, type Member, type Provider, type ProviderInit, type SecretRef } from "../provider.js";
import type { awsSsmSchema } from "./schema.js";

type Options = z.output<ReturnType<typeof awsSsmSchema>>;

/** GetParameters takes at most 10 names; GetParametersByPath answers at most 10 per page. */
export const BATCH = 10;

/**
 * A hierarchy: `path: /app/prod/*` (one level) or `/app/prod/**` (recursive) reads
 * every parameter under `/app/prod/` with GetParametersByPath, and each becomes a
 * secret of its own, named after the entry and the parameter's path below the
 * prefix (entry `app/prod`, parameter `/app/prod/db/password`: `app/prod/db/password`;
 * see src/sync/engine.ts for naming, removal and errors). `key` and `version` have
 * no meaning there (name one parameter as `path` to pick a JSON key out of it, or
 * to pin its version) and are refused for the entry.
 */
export function hierarchyOf(path: string): { prefix: string; recursive: boolean } | undefined {
  const m = /^(.*\/)(\*\*?)$/.exec(path);
  return m ? { prefix: m[1]!, recursive: m[2] === "**" } : undefined;
}

/**
 * AWS SSM Parameter Store: named parameters 10 per GetParameters call (SecureString
 * decrypted unless with_decryption is false), a pinned `version` (number or label)
 * as the `name:version` selector, hierarchies through GetParametersByPath.
 */
export function create(init: ProviderInit<Options>): Provider {
  const o = init.options;
  const client = new SSMClient({
    region: o.region,
    endpoint: o.endpoint,
    credentials: credentialsFor(o, "sealcache"),
    maxAttempts: 1,
    requestHandler: requestHandler(),
  });

  const selectorOf = (ref: SecretRef) => (ref.version !== undefined ? `${ref.path}:${ref.version}` : ref.path);

  /** One GetParameters call; a denial of the whole call (IAM denies it if any name is denied) is narrowed down name by name. */
  async function getParams(refs: SecretRef[], signal: AbortSignal): Promise<FetchResult[]> {
    const names = [...new Set(refs.map(selectorOf))];
    const where = `ssm GetParameters (${names.length} names)`;
    let params: Parameter[];
    let invalid: string[];
    try {
      const r = await client.send(new GetParametersCommand({ Names: names, WithDecryption: o.with_decryption }), { abortSignal: signal });
      params = r.Parameters ?? [];
      invalid = r.InvalidParameters ?? [];
    } catch (e) {
      if (isAccessDenied(e) && names.length > 1) {
        const byName = new Map<string, SecretRef[]>();
        for (const r of refs) byName.set(selectorOf(r), [...(byName.get(selectorOf(r)) ?? []), r]);
        return (await mapPool([...byName.values()], o.concurrency, (group) => getParams(group, signal))).flat();
      }
      const c = classifyAws(e, names.length === 1 ? `ssm ${names[0]}` : where);
      if (c.scope === "provider") throw c.error;
      return refs.map((r) => failed(r, c.error));
    }
    return refs.map((ref) => {
      const w = `ssm ${selectorOf(ref)}`;
      const p =
        params.find((x) => x.Name === ref.path && (ref.version === undefined ? !x.Selector : x.Selector === `:${ref.version}`)) ??
        params.find((x) => x.Name === ref.path);
      if (p) {
        if (typeof p.Value !== "string" || typeof p.Version !== "number")
          return failed(ref, new ProviderError("transient", `${w}: answer has no Value/Version; rejected`));
        return valueResult(ref, textBytes(p.Value), String(p.Version), w);
      }
      if (invalid.includes(selectorOf(ref))) return failed(ref, new ProviderError("permanent", `${w}: not found (listed in InvalidParameters)`));
      return failed(ref, new ProviderError("transient", `${w}: GetParameters answered neither a value nor InvalidParameters for it; rejected`));
    });
  }

  /** One complete walk (every page) of a hierarchy; anything malformed rejects the whole walk, since what it omits is removed. */
  async function getTree(prefix: string, recursive: boolean, refs: SecretRef[], signal: AbortSignal): Promise<FetchResult[]> {
    const where = `ssm ${prefix}${recursive ? "**" : "*"}`;
    const found: { relative: string; value: string; version: string }[] = [];
    try {
      let token: string | undefined;
      let pages = 0;
      do {
        const r = await client.send(
          new GetParametersByPathCommand({
            Path: prefix.length > 1 ? prefix.replace(/\/$/, "") : prefix,
            Recursive: recursive,
            WithDecryption: o.with_decryption,
            MaxResults: BATCH,
            NextToken: token,
          }),
          { abortSignal: signal },
        );
        for (const p of r.Parameters ?? []) {
          if (
            typeof p.Name !== "string" ||
            typeof p.Value !== "string" ||
            typeof p.Version !== "number" ||
            !p.Name.startsWith(prefix) ||
            p.Name.length === prefix.length
          ) {
            throw new ProviderError("transient", `${where}: GetParametersByPath answered a parameter without Name/Value/Version under the path; walk rejected`);
          }
          found.push({ relative: p.Name.slice(prefix.length), value: p.Value, version: String(p.Version) });
        }
        token = r.NextToken;
        if (++pages > 1000) throw new ProviderError("transient", `${where}: more than 1000 pages; rejected`);
      } while (token);
    } catch (e) {
      // Our own rejections (a malformed or endless answer) are about this hierarchy, not an outage.
      if (e instanceof ProviderError) return refs.map((r) => failed(r, e));
      const c = classifyAws(e, where);
      if (c.scope === "provider") throw c.error;
      return refs.map((r) => failed(r, c.error));
    }
    // Each entry naming this hierarchy gets its own copies: the engine zeroes what it is given.
    return refs.map(
      (ref): FetchResult => ({
        name: ref.name,
        ok: true,
        members: found.map((f): Member => ({ relative: f.relative, value: textBytes(f.value), version: f.version })),
      }),
    );
  }

  return {
    maxBatch: 100,
    backend: awsBackend(o),
    expands: (path) => hierarchyOf(path) !== undefined,
    async fetch(refs, signal) {
      const out: FetchResult[] = [];
      const trees = new Map<string, SecretRef[]>();
      const plain: SecretRef[] = [];
      for (const r of refs) {
        if (hierarchyOf(r.path) && (r.key !== undefined || r.version !== undefined)) {
          const what = r.key !== undefined ? "key" : "version";
          out.push(
            failed(
              r,
              new ProviderError(
                "permanent",
                `ssm ${r.path}: ${what} cannot be used with a hierarchy: each parameter under it is served as its own secret (${r.name}/NAME); to ` +
                  `pick a ${what} of one parameter, give its own name as path`,
              ),
            ),
          );
        } else if (hierarchyOf(r.path)) trees.set(r.path, [...(trees.get(r.path) ?? []), r]);
        // A pinned version never changes: once held, no call.
        else if (r.version !== undefined && r.cachedVersion !== undefined && /^\d+$/.test(r.version) && r.cachedVersion === r.version)
          out.push(unchanged(r.name, r.version));
        else plain.push(r);
      }
      const jobs: (() => Promise<FetchResult[]>)[] = chunks(plain, BATCH).map((c) => () => getParams(c, signal));
      for (const [path, group] of trees) {
        const h = hierarchyOf(path)!;
        jobs.push(() => getTree(h.prefix, h.recursive, group, signal));
      }
      out.push(...(await mapPool(jobs, o.concurrency, (j) => j())).flat());
      return out;
    },
    async close() {
      client.destroy();
    },
  };
}
