import type { SecretClient } from "@azure/keyvault-secrets";
import { valueResult } from "../extract.js";
import { ProviderError, unchanged, type FetchResult, type SecretRef } from "../provider.js";
import { classifyVault } from "./errors.js";

/** Key Vault secret names: 1-127 letters, digits and dashes. */
const NAME = /^[0-9a-zA-Z-]{1,127}$/;
/** A secret version id: 32 hex digits. */
const VERSION = /^[0-9a-fA-F]{32}$/;

export const UNAUTHORIZED = "unauthorized";

/** One secret's outcome: its result, or a 401 the provider answers with a fresh token. */
export type Read = { kind: "result"; result: FetchResult } | { kind: typeof UNAUTHORIZED; name: string; error: ProviderError };

export interface ReadContext {
  readonly client: SecretClient;
  readonly signal: AbortSignal;
}

const enc = new TextEncoder();

function where(ref: SecretRef): string {
  return `azure-key-vault ${ref.path}${ref.version ? `/${ref.version}` : ""}`;
}

function failed(ref: SecretRef, kind: "permanent" | "transient", message: string): Read {
  return { kind: "result", result: { name: ref.name, ok: false, error: new ProviderError(kind, `${where(ref)}: ${message}`) } };
}

/**
 * What can be answered without a call: a name or version Key Vault would refuse,
 * and a pinned version already cached (a version's value never changes).
 */
export function answeredLocally(ref: SecretRef): Read | undefined {
  if (!NAME.test(ref.path)) return failed(ref, "permanent", "not a Key Vault secret name (1-127 letters, digits and dashes)");
  if (ref.version !== undefined && !VERSION.test(ref.version)) return failed(ref, "permanent", "version must be a secret version id (32 hex digits)");
  const pinned = ref.version?.toLowerCase();
  if (pinned !== undefined && ref.cachedVersion === pinned) return { kind: "result", result: unchanged(ref.name, pinned) };
  return undefined;
}

/** Secrets that name the same Key Vault secret and version (names are case-insensitive) are read with one GET. */
export function readKey(ref: SecretRef): string {
  return `${ref.path.toLowerCase()}/${ref.version?.toLowerCase() ?? ""}`;
}

/**
 * One GET for `refs` (all naming the same secret and version, see readKey): `path`
 * is the secret's name, `version` pins a version id (otherwise the current one).
 * Each ref then takes its own `key` from the value, and one whose cached version
 * is still the one read is answered `unchanged`. A secret that Key Vault serves
 * although it is disabled, expired (`exp`) or not yet valid (`nbf`) is an error
 * for that secret: Key Vault treats those attributes as advisory for secrets, the
 * cache does not. Throws ProviderError only for what stops the whole provider
 * (unreachable, throttled, 5xx, no token).
 */
export async function readSecret(ctx: ReadContext, refs: readonly SecretRef[]): Promise<Read[]> {
  const ref = refs[0]!;
  const all = (one: (r: SecretRef) => Read) => refs.map(one);
  const pinned = ref.version?.toLowerCase();
  let s: Awaited<ReturnType<SecretClient["getSecret"]>>;
  try {
    s = await ctx.client.getSecret(ref.path, { version: pinned, abortSignal: ctx.signal });
  } catch (e) {
    const c = classifyVault(e, where(ref), ctx.signal);
    if (c.scope === "provider") throw c.error;
    if (c.scope === "unauthorized") return all((r) => ({ kind: UNAUTHORIZED, name: r.name, error: c.error }));
    return all((r) => ({ kind: "result", result: { name: r.name, ok: false, error: c.error } }));
  }
  const p = s.properties;
  const version = typeof p.version === "string" ? p.version.toLowerCase() : undefined;
  const problem = ((): ["permanent" | "transient", string] | undefined => {
    if (version === undefined || !VERSION.test(version)) return ["transient", "the answer has no secret version id; rejected"];
    if (p.name?.toLowerCase() !== ref.path.toLowerCase() || (pinned !== undefined && version !== pinned))
      return ["transient", `the answer is for ${String(p.name).slice(0, 60)}/${version}, not what was asked; rejected`];
    if (typeof s.value !== "string") return ["transient", "the answer has no value; rejected"];
    const now = Date.now();
    if (p.enabled === false) return ["permanent", `version ${version} is disabled; enable it or pin another version`];
    if (p.expiresOn instanceof Date && p.expiresOn.getTime() <= now)
      return ["permanent", `version ${version} expired at ${p.expiresOn.toISOString()} (exp); set a new version or a later expiry`];
    if (p.notBefore instanceof Date && p.notBefore.getTime() > now)
      return ["permanent", `version ${version} is not valid before ${p.notBefore.toISOString()} (nbf)`];
    return undefined;
  })();
  if (problem) return all((r) => failed(r, ...problem));
  const value = s.value!;
  // The version held is still the current one: the cache keeps (and does not rewrite) its value.
  return all((r) => ({
    kind: "result",
    result: r.cachedVersion === version ? unchanged(r.name, version) : valueResult(r, enc.encode(value), version, where(r)),
  }));
}
