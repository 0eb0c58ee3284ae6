import type { SecretClient } from "@azure/keyvault-secrets";
import { valueResult } from "../extract.js";
import { ProviderError, unchanged, type FetchResult, type SecretRef } from "../provider.js";
import { classifyVault } from "./errors.js";

/** Key Vault secret names: 1-127 letters, digits and dashes. */
const NAME = /^[0-9a-zA-Z-]{1,127}$/;
/** A secret version id: 32 hex digits. */
const VERSION = /^[0-9a-fA-F]{32}$/;

export const UNAUTHORIZED = "unauthorized";

/** One secret read: its result, or a 401 the provider answers with a fresh token. */
export type Read = { kind: "result"; result: FetchResult } | { kind: typeof UNAUTHORIZED; name: string; error: ProviderError };

export interface ReadContext {
  readonly client: SecretClient;
  readonly signal: AbortSignal;
}

const enc = new TextEncoder();

/**
 * One secret: `path` is its name, `version` pins a version id (otherwise the
 * current one). A pinned version already cached is not read again (a version's
 * value never changes). A secret that Key Vault serves although it is disabled,
 * expired (`exp`) or not yet valid (`nbf`) is an error for that secret: Key Vault
 * treats those attributes as advisory for secrets, the cache does not. Throws
 * ProviderError only for what stops the whole provider (unreachable, throttled,
 * 5xx, token refused).
 */
export async function readSecret(ctx: ReadContext, ref: SecretRef): Promise<Read> {
  const where = `azure-key-vault ${ref.path}${ref.version ? `/${ref.version}` : ""}`;
  const done = (result: FetchResult): Read => ({ kind: "result", result });
  const fail = (kind: "permanent" | "transient", message: string) => done({ name: ref.name, ok: false, error: new ProviderError(kind, `${where}: ${message}`) });
  if (!NAME.test(ref.path)) return fail("permanent", "not a Key Vault secret name (1-127 letters, digits and dashes)");
  if (ref.version !== undefined && !VERSION.test(ref.version)) return fail("permanent", "version must be a secret version id (32 hex digits)");
  const pinned = ref.version?.toLowerCase();
  if (pinned !== undefined && ref.cachedVersion === pinned) return done(unchanged(ref.name, pinned));
  let s: Awaited<ReturnType<SecretClient["getSecret"]>>;
  try {
    s = await ctx.client.getSecret(ref.path, { version: pinned, abortSignal: ctx.signal });
  } catch (e) {
    const c = classifyVault(e, where, ctx.signal);
    if (c.scope === "provider") throw c.error;
    if (c.scope === "unauthorized") return { kind: UNAUTHORIZED, name: ref.name, error: c.error };
    return done({ name: ref.name, ok: false, error: c.error });
  }
  const p = s.properties;
  const version = typeof p.version === "string" ? p.version.toLowerCase() : undefined;
  if (version === undefined || !VERSION.test(version)) return fail("transient", "the answer has no secret version id; rejected");
  if (p.name?.toLowerCase() !== ref.path.toLowerCase() || (pinned !== undefined && version !== pinned)) return fail("transient", `the answer is for ${String(p.name).slice(0, 60)}/${version}, not what was asked; rejected`);
  if (typeof s.value !== "string") return fail("transient", "the answer has no value; rejected");
  const now = Date.now();
  if (p.enabled === false) return fail("permanent", `version ${version} is disabled; enable it or pin another version`);
  if (p.expiresOn instanceof Date && p.expiresOn.getTime() <= now) return fail("permanent", `version ${version} expired at ${p.expiresOn.toISOString()} (exp); set a new version or a later expiry`);
  if (p.notBefore instanceof Date && p.notBefore.getTime() > now) return fail("permanent", `version ${version} is not valid before ${p.notBefore.toISOString()} (nbf)`);
  // The version held is still the current one: the cache keeps (and does not rewrite) its value.
  if (ref.cachedVersion === version) return done(unchanged(ref.name, version));
  return done(valueResult(ref, enc.encode(s.value), version, where));
}
