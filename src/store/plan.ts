import type { Envelope } from "../crypto/envelope.js";
import type { RowDigest } from "./digest.js";
import { bindingMac, rowElement, rowElement2 } from "./integrity.js";
import { sealLease } from "./lease.js";
import { ciphertextOf, sealedRow, valueMacOf, wrappedDekOf, type ApplyExtras, type BatchItem, type MetaEntry, type SecretError } from "./rows.js";

/** What one sync batch changes, worked out before anything is written. */
export interface BatchPlan {
  /** New values: sealed with a fresh DEK each. */
  readonly writes: { readonly entry: MetaEntry; readonly wrappedDek: Uint8Array; readonly ciphertext: Uint8Array }[];
  /** Values confirmed unchanged whose row must move (its binding changed, or its recorded confirmation is old). */
  readonly touches: MetaEntry[];
  /** Confirmed unchanged and nothing to write: memory only. */
  readonly confirmed: MetaEntry[];
  /** Errors recorded (or cleared, `err: null`) against names. */
  readonly errors: { readonly name: string; readonly err: SecretError | null }[];
  readonly removed: MetaEntry[];
  /** The digest after the batch (a copy), and whether it moved. */
  readonly digest: RowDigest;
  digestMoved: boolean;
}

/**
 * Turns a batch into a plan: a value whose keyed MAC equals the cached one is a
 * confirmation (its row is rewritten only when what it is bound to moved, or its
 * recorded `fetched_at` is older than `confirmWriteMs`: flash wears out, and a
 * confirmation matters after a restart only to that precision); a new value gets
 * a new row version and DEK. Rows removed from a hierarchy leave the digest.
 */
export function planBatch(o: {
  env: Envelope;
  meta: ReadonlyMap<string, MetaEntry>;
  errors: ReadonlyMap<string, SecretError>;
  digest: RowDigest;
  items: readonly BatchItem[];
  extras: ApplyExtras;
  generation: number;
  confirmWriteMs: number;
}): BatchPlan {
  const { env, meta } = o;
  const plan: BatchPlan = { writes: [], touches: [], confirmed: [], errors: [], removed: [], digest: o.digest.copy(), digestMoved: false };
  for (const it of o.items) {
    if (!it.ok) {
      // Revoked stays revoked until a value is fetched again; a failed attempt is not one.
      if (o.errors.get(it.name)?.kind === "revoked" && !meta.has(it.name)) continue;
      plan.errors.push({ name: it.name, err: { kind: it.kind, message: it.message, at: it.at } });
      continue;
    }
    if (o.errors.has(it.name)) plan.errors.push({ name: it.name, err: null });
    const old = meta.get(it.name);
    const valueMac = env.mac("value", it.name, it.value);
    const bound = { sourceVersion: it.sourceVersion ?? null, held: it.held ?? null, origin: it.origin ?? null };
    if (old && env.equal(valueMacOf(old), valueMac)) confirm(plan, env, old, it, bound, o.confirmWriteMs);
    else write(plan, env, old, it, bound, valueMac, o.generation);
  }
  for (const name of o.extras.removed ?? []) {
    const old = meta.get(name);
    if (!old || plan.writes.some((w) => w.entry.name === name)) continue;
    toggleRow(plan.digest, env, old);
    plan.digestMoved = true;
    plan.removed.push(old);
  }
  for (const name of o.extras.cleared ?? []) if (o.errors.has(name)) plan.errors.push({ name, err: null });
  return plan;
}

type Ok = Extract<BatchItem, { ok: true }>;
type Bound = { sourceVersion: string | null; held: string | null; origin: string | null };

function confirm(plan: BatchPlan, env: Envelope, old: MetaEntry, it: Ok, bound: Bound, confirmWriteMs: number): void {
  // An attachment given again is sealed again: it moved (a lease renewal is what confirms a leased value).
  const same = old.sourceVersion === bound.sourceVersion && old.held === bound.held && old.origin === bound.origin && !it.lease && !old.sealedLease;
  if (same && it.at - old.fetchedAt < confirmWriteMs && it.at >= old.fetchedAt) {
    plan.confirmed.push(old);
    return;
  }
  const sealedLease = it.lease ? sealLease(env, it.name, old.version, it.lease) : null;
  const touched: MetaEntry = { ...old, ...bound, fetchedAt: it.at, sealedLease, leased: sealedLease !== null };
  if (!same) {
    toggleRow(plan.digest, env, old);
    toggleRow(plan.digest, env, touched);
    plan.digestMoved = true;
  }
  plan.touches.push(touched);
}

function write(plan: BatchPlan, env: Envelope, old: MetaEntry | undefined, it: Ok, bound: Bound, valueMac: Uint8Array, generation: number): void {
  const version = (old?.version ?? 0) + 1;
  const { wrappedDek, ciphertext } = env.sealValue(it.name, version, it.value);
  const sealedLease = it.lease ? sealLease(env, it.name, version, it.lease) : null;
  const entry: MetaEntry = {
    name: it.name,
    version,
    ...bound,
    leased: sealedLease !== null,
    sealedLease,
    changedRev: generation,
    changedAt: it.at,
    fetchedAt: it.at,
    sealed: sealedRow(valueMac, wrappedDek, ciphertext),
    dekLen: wrappedDek.length,
  };
  if (old) toggleRow(plan.digest, env, old);
  toggleRow(plan.digest, env, entry);
  plan.digestMoved = true;
  plan.writes.push({ entry, wrappedDek, ciphertext });
}

/** A row's element in the digest (format 2), toggled in or out. */
export function toggleRow(digest: RowDigest, env: Envelope, m: MetaEntry): void {
  digest.toggle(rowElement2(env, m, wrappedDekOf(m), ciphertextOf(m)));
}

/** A row's elements in a format 1 digest (its row MAC and its binding), for the one-time upgrade at open. */
export function toggleRowV1(digest: RowDigest, env: Envelope, m: MetaEntry): void {
  digest.toggle(rowElement(env, m.name, m.version, wrappedDekOf(m), ciphertextOf(m)));
  const binding = bindingMac(env, m.name, m.version, m);
  if (binding) digest.toggle(binding);
}
