import { createHash } from "node:crypto";
import { GetParametersByPathCommand, GetParametersCommand, SSMClient, type Parameter } from "@aws-sdk/client-ssm";
import type { z } from "zod";
import { classifyAws, isAccessDenied } from "../aws/errors.js";
import { credentialsFor } from "../aws/credentials.js";
import { requestHandler } from "../aws/client.js";
import { failed, textBytes, valueResult } from "../aws/values.js";
import { chunks, mapPool } from "../pool.js";
import { ProviderError, unchanged, type FetchResult, type Provider, type ProviderInit, type SecretRef } from "../provider.js";
import type { awsSsmSchema } from "./schema.js";

type Options = z.output<ReturnType<typeof awsSsmSchema>>;

/** GetParameters takes at most 10 names; GetParametersByPath answers at most 10 per page. */
export const BATCH = 10;

/**
 * A hierarchy: `path: /app/prod/*` (one level) or `/app/prod/**` (recursive) reads
 * every parameter under `/app/prod/` with GetParametersByPath. The secret's value
 * is a JSON object {leaf: value} (leaf relative to the prefix, e.g. `db/host` when
 * recursive), and `key` picks one leaf; several secrets naming the same hierarchy
 * with different keys share one walk per sync.
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
  const client = new SSMClient({ region: o.region, endpoint: o.endpoint, credentials: credentialsFor(o, "sealcache"), maxAttempts: 1, requestHandler: requestHandler() });

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
      const p = params.find((x) => x.Name === ref.path && (ref.version === undefined ? !x.Selector : x.Selector === `:${ref.version}`)) ?? params.find((x) => x.Name === ref.path);
      if (p) {
        if (typeof p.Value !== "string" || typeof p.Version !== "number") return failed(ref, new ProviderError("transient", `${w}: answer has no Value/Version; rejected`));
        return valueResult(ref, textBytes(p.Value), String(p.Version), w);
      }
      if (invalid.includes(selectorOf(ref))) return failed(ref, new ProviderError("permanent", `${w}: not found (listed in InvalidParameters)`));
      return failed(ref, new ProviderError("transient", `${w}: GetParameters answered neither a value nor InvalidParameters for it; rejected`));
    });
  }

  async function getTree(prefix: string, recursive: boolean, refs: SecretRef[], signal: AbortSignal): Promise<FetchResult[]> {
    const where = `ssm ${prefix}${recursive ? "**" : "*"}`;
    const tree: Record<string, string> = {};
    const versions: string[] = [];
    try {
      let token: string | undefined;
      let pages = 0;
      do {
        const r = await client.send(
          new GetParametersByPathCommand({ Path: prefix.length > 1 ? prefix.replace(/\/$/, "") : prefix, Recursive: recursive, WithDecryption: o.with_decryption, MaxResults: BATCH, NextToken: token }),
          { abortSignal: signal },
        );
        for (const p of r.Parameters ?? []) {
          if (typeof p.Name !== "string" || typeof p.Value !== "string" || !p.Name.startsWith(prefix)) continue;
          tree[p.Name.slice(prefix.length)] = p.Value;
          versions.push(`${p.Name}@${p.Version ?? "?"}`);
        }
        token = r.NextToken;
        if (++pages > 1000) throw new ProviderError("transient", `${where}: more than 1000 pages; rejected`);
      } while (token);
    } catch (e) {
      const c = classifyAws(e, where);
      if (c.scope === "provider") throw c.error;
      return refs.map((r) => failed(r, c.error));
    }
    if (versions.length === 0) return refs.map((r) => failed(r, new ProviderError("permanent", `${where}: no parameters under ${prefix}`)));
    const version = "tree:" + createHash("sha256").update(versions.sort().join("\n")).digest("hex").slice(0, 16);
    const json = JSON.stringify(tree, Object.keys(tree).sort());
    return refs.map((ref) => (ref.version !== undefined ? failed(ref, new ProviderError("permanent", `${where}: version cannot be pinned for a hierarchy`)) : valueResult(ref, textBytes(json), version, where)));
  }

  return {
    maxBatch: 100,
    async fetch(refs, signal) {
      const out: FetchResult[] = [];
      const trees = new Map<string, SecretRef[]>();
      const plain: SecretRef[] = [];
      for (const r of refs) {
        if (hierarchyOf(r.path)) trees.set(r.path, [...(trees.get(r.path) ?? []), r]);
        // A pinned version never changes: once held, no call.
        else if (r.version !== undefined && r.cachedVersion !== undefined && /^\d+$/.test(r.version) && r.cachedVersion === r.version) out.push(unchanged(r.name, r.version));
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
