import { createHash } from "node:crypto";
import { valueResult } from "../extract.js";
import { ProviderError, unchanged, type FetchResult, type LeaseState, type SecretRef } from "../provider.js";
import type { VaultClient } from "./client.js";
import { AnswerRejected, isAnswerRejected } from "./transport.js";
import { classify, statusOf } from "./errors.js";

const enc = new TextEncoder();
/** A renewal granting less than this share of the lease's first duration means max_ttl is near: replace it. */
const SHORT_GRANT = 1 / 3;

/** A Vault path, split the way its API is addressed. */
export type VaultPath = { kind: "kv2"; mount: string; rest: string } | { kind: "read"; path: string };

/**
 * `MOUNT/data/REST` is KV v2 (the API path, as in Vault Agent templates); anything
 * else (KV v1, `database/creds/ROLE`, `aws/creds/ROLE`...) is a plain read whose
 * answer may carry a lease. The first `/data/` segment splits mount and key, so a
 * KV v1 secret whose own name has a `data` segment is read as KV v2 (documented).
 */
export function parsePath(p: string): VaultPath {
  const clean = p.replace(/^\/+/, "").replace(/^v1\//, "");
  const i = clean.indexOf("/data/");
  if (i > 0) return { kind: "kv2", mount: clean.slice(0, i), rest: clean.slice(i + "/data/".length) };
  return { kind: "read", path: clean };
}

export interface Lease {
  id: string;
  version: string;
  duration: number;
  expiresAt: number;
  renewable: boolean;
}

export interface ReadContext {
  readonly client: VaultClient;
  readonly signal: AbortSignal;
  /** The lease of the credentials last read (or, after a restart, restored from the cache) for each secret. */
  readonly leases: Map<string, Lease>;
  /** Leases replaced by newer credentials, revoked once the cache holds the new ones (see revokeReplaced). */
  readonly replaced: Map<string, Lease[]>;
}

/**
 * One secret: a KV v2 version check (metadata `current_version`) before any data
 * read, a lease renewal before a re-read, and the value picked out with `key`.
 * Throws ProviderError only for outages (network, 5xx, 429); everything that is
 * about this one secret becomes its FetchResult.
 */
export async function readSecret(ctx: ReadContext, ref: SecretRef): Promise<FetchResult> {
  const where = `vault ${ref.path}`;
  try {
    const p = parsePath(ref.path);
    return p.kind === "kv2" ? await readKv2(ctx, ref, p, where) : await readPlain(ctx, ref, p.path, where);
  } catch (e) {
    if (isAnswerRejected(e)) return { name: ref.name, ok: false, error: e };
    const err = classify(e, where);
    if (err.kind === "transient") throw err;
    return { name: ref.name, ok: false, error: err };
  }
}

async function readKv2(ctx: ReadContext, ref: SecretRef, p: { mount: string; rest: string }, where: string): Promise<FetchResult> {
  const ro = { signal: ctx.signal };
  if (ref.version !== undefined) {
    if (!/^[1-9][0-9]*$/.test(ref.version)) return fail(ref, `${where}: version ${JSON.stringify(ref.version)} is not a KV v2 version number`);
    // A pinned KV v2 version never changes: once held, no call at all.
    if (ref.cachedVersion === ref.version) return unchanged(ref.name, ref.version);
  } else if (ref.cachedVersion !== undefined) {
    const meta = await ctx.client.read(`${p.mount}/metadata/${p.rest}`, ro);
    const current = meta?.data?.current_version;
    if (typeof current !== "number") throw new AnswerRejected(`${where}: metadata answer has no data.current_version; rejected`);
    if (String(current) === ref.cachedVersion) return unchanged(ref.name, ref.cachedVersion);
  }
  const q = ref.version !== undefined ? `?version=${ref.version}` : "";
  const body = await ctx.client.read(`${p.mount}/data/${p.rest}${q}`, ro);
  const data = body?.data?.data;
  const version = body?.data?.metadata?.version;
  if (data === null && body?.data?.metadata?.deletion_time) return fail(ref, `${where}: version ${String(version)} is deleted`);
  if (!isObject(data) || typeof version !== "number")
    throw new AnswerRejected(`${where}: not a KV v2 answer (data.data / data.metadata.version missing); rejected`);
  return value(ref, data, String(version), where);
}

async function readPlain(ctx: ReadContext, ref: SecretRef, path: string, where: string): Promise<FetchResult> {
  const ro = { signal: ctx.signal };
  if (ref.version !== undefined) return fail(ref, `${where}: version can only be pinned for KV v2 paths (MOUNT/data/...)`);
  const held = heldLease(ctx, ref);
  if (held?.renewable && ref.cachedVersion === held.version && Date.now() < held.expiresAt) {
    try {
      const r = await ctx.client.renew({ lease_id: held.id, increment: Math.round(held.duration / 1000), requestOptions: ro });
      const granted = r?.lease_duration;
      if (typeof granted === "number" && granted * 1000 >= held.duration * SHORT_GRANT) {
        held.expiresAt = Date.now() + granted * 1000;
        return unchanged(ref.name, held.version, held.expiresAt, stateOf(held));
      }
      // Near its max_ttl: replace with fresh credentials now, while the old ones still work.
    } catch (e) {
      const st = statusOf(e);
      if (st === undefined) throw e;
      // 400 "lease not found or lease is not renewable", 403: replaced below.
    }
  }
  const body = await ctx.client.read(path, ro);
  const data = body?.data;
  if (!isObject(data)) throw new AnswerRejected(`${where}: answer has no data object; rejected`);
  const leaseId = body?.lease_id;
  const duration = body?.lease_duration;
  // The credentials just read replace the previous ones: their lease is revoked
  // once the cache holds the new value (a lease not renewable is read again before
  // it expires, and replaced the same way).
  if (held && held.id !== leaseId) retire(ctx, ref.name, held);
  ctx.leases.delete(ref.name);
  if (typeof leaseId === "string" && leaseId !== "" && typeof duration === "number" && duration > 0) {
    const version = leaseVersion(leaseId);
    const lease: Lease = { id: leaseId, version, duration: duration * 1000, expiresAt: Date.now() + duration * 1000, renewable: body?.renewable === true };
    ctx.leases.set(ref.name, lease);
    const r = value(ref, data, version, where, lease.expiresAt);
    return r.ok && r.members === undefined ? { ...r, lease: stateOf(lease) } : r;
  }
  return value(ref, data, undefined, where);
}

/** The backend version of credentials read under a lease: a short hash of its id (the id itself is not logged). */
function leaseVersion(leaseId: string): string {
  return `lease:${createHash("sha256").update(leaseId).digest("hex").slice(0, 16)}`;
}

/**
 * The lease of the credentials the cache holds: the one this process read, or,
 * on the first sync after a restart, the one the cache recorded with the value
 * (taken only when it is the lease that version was read under). From then on it
 * is renewed, or replaced and revoked, exactly like one read by this process.
 */
function heldLease(ctx: ReadContext, ref: SecretRef): Lease | undefined {
  const mem = ctx.leases.get(ref.name);
  if (mem) return mem;
  const c = ref.cachedLease;
  if (!c || ref.cachedVersion === undefined || leaseVersion(c.id) !== ref.cachedVersion) return undefined;
  const restored: Lease = { id: c.id, version: ref.cachedVersion, duration: c.duration, expiresAt: c.expiresAt, renewable: c.renewable };
  ctx.leases.set(ref.name, restored);
  return restored;
}

/** What the cache records of a lease (a copy: the provider keeps mutating its own). */
function stateOf(l: Lease): LeaseState {
  return { id: l.id, duration: l.duration, expiresAt: l.expiresAt, renewable: l.renewable };
}

function retire(ctx: ReadContext, name: string, lease: Lease): void {
  ctx.replaced.set(name, [...(ctx.replaced.get(name) ?? []), lease]);
}

/** A lease id without its random part, for logs: the secret engine path (`database/creds/edge/…`). */
export function leasePath(id: string): string {
  const i = id.lastIndexOf("/");
  return i > 0 ? `${id.slice(0, i)}/…` : "…";
}

function value(ref: SecretRef, data: Record<string, unknown>, version: string | undefined, where: string, expiresAt?: number): FetchResult {
  return valueResult(ref, enc.encode(JSON.stringify(data)), version, where, expiresAt);
}

function fail(ref: SecretRef, message: string): FetchResult {
  return { name: ref.name, ok: false, error: new ProviderError("permanent", message) };
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}
