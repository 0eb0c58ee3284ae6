import type { Logger } from "../log.js";

/** One configured secret as a provider sees it: where it lives in the backend's own terms. */
export interface SecretRef {
  readonly name: string;
  readonly path: string;
  readonly key?: string | undefined;
  readonly version?: string | undefined;
  /**
   * The backend version of the value the cache holds for this secret, fetched under
   * this same config (the cache records it with the config's fingerprint, so it
   * survives a restart). A provider with a cheap version check (Vault KV v2
   * metadata, a still-valid Vault lease, a pinned version) may answer `unchanged`
   * when the backend still has this version, instead of reading data.
   */
  readonly cachedVersion?: string | undefined;
  /**
   * The lease the cached value is held under, as the cache recorded it (sealed) with
   * `cachedVersion`: after a restart, what lets a provider renew the credentials it
   * already handed out instead of minting new ones, and revoke them when it must
   * replace them. Only given with `cachedVersion`.
   */
  readonly cachedLease?: LeaseState | undefined;
}

/**
 * A lease on a value (a Vault dynamic secret). The cache keeps it sealed beside the
 * value so a restart renews or revokes it. `id` is a handle on the credentials'
 * life: never logged in full (log the engine path, see vault/secrets.ts leasePath).
 */
export interface LeaseState {
  readonly id: string;
  /** The duration the lease was first issued for (ms); a renewal asks for as much again. */
  readonly duration: number;
  /** When it ends unless renewed (ms since the epoch). */
  readonly expiresAt: number;
  readonly renewable: boolean;
}

/**
 * How a failure should be treated:
 * - transient: network, timeout, 5xx, throttling: back off, mark the provider offline, serve stale;
 * - auth: credentials refused: the provider is unhealthy until its auth is fixed;
 * - permanent: this secret cannot be had as configured (not found, no such key, denied);
 *   recorded against the secret, the cached value kept.
 */
export type ErrorKind = "transient" | "auth" | "permanent";

export class ProviderError extends Error {
  readonly kind: ErrorKind;
  /** Seconds the backend asked us to wait (Retry-After, throttling). */
  readonly retryAfter: number | undefined;
  constructor(kind: ErrorKind, message: string, opts: { retryAfter?: number; cause?: unknown } = {}) {
    super(message, opts.cause === undefined ? undefined : { cause: opts.cause });
    this.name = "ProviderError";
    this.kind = kind;
    this.retryAfter = opts.retryAfter;
  }
}

export function isProviderError(e: unknown): e is ProviderError {
  return e instanceof ProviderError;
}

/**
 * `expiresAt` (ms since the epoch): when the value stops being usable (a Vault
 * lease, STS credentials). The engine then fetches again at the earlier of the
 * jittered interval and about 2/3 of the remaining lifetime.
 * `unchanged: true`: the backend still holds `cachedVersion` (a cheap version check
 * passed, a lease was renewed); `value` is then empty and the cached value is kept.
 * `lease`: the lease the value is now held under (after a renewal, with its new
 * expiry); the cache records it with the value. Absent: the value has no lease.
 */
export type FetchResult =
  | {
      readonly name: string;
      readonly ok: true;
      readonly value: Uint8Array;
      readonly version: string | undefined;
      readonly expiresAt?: number | undefined;
      readonly unchanged?: boolean | undefined;
      readonly lease?: LeaseState | undefined;
      readonly members?: undefined;
    }
  | HierarchyResult
  | { readonly name: string; readonly ok: false; readonly error: ProviderError };

/** One value found under a hierarchy: its path below the hierarchy's prefix (`db/password`). */
export interface Member {
  readonly relative: string;
  readonly value: Uint8Array;
  readonly version: string | undefined;
}

/**
 * The answer for a secret whose path names a hierarchy (see Provider.expands): every
 * value under it, from one complete walk. The engine serves each as its own secret
 * (`ENTRY/relative`) and stops serving those a later complete walk no longer finds.
 */
export interface HierarchyResult {
  readonly name: string;
  readonly ok: true;
  readonly members: readonly Member[];
  readonly value?: undefined;
  readonly version?: undefined;
  readonly expiresAt?: undefined;
  readonly unchanged?: undefined;
  readonly lease?: undefined;
}

/** The answer for a secret whose backend version is still the one cached (held under `lease`, if it has one). */
export function unchanged(name: string, version: string | undefined, expiresAt?: number, lease?: LeaseState): FetchResult {
  return { name, ok: true, value: new Uint8Array(0), version, expiresAt, unchanged: true, lease };
}

/**
 * The one seam every backend implements. `fetch` takes a batch (at most `maxBatch`)
 * and answers per secret; a thrown ProviderError means the whole call failed
 * (backend unreachable) and is treated as a provider-level outage.
 * Values are bytes the caller owns and zeroes after use.
 */
export interface Provider {
  readonly maxBatch: number;
  /**
   * Which backend this instance reads (address, namespace, region, endpoint, role):
   * part of the fingerprint a cached backend version is bound to, so pointing the
   * provider elsewhere makes the next sync read in full. Nothing secret.
   */
  readonly backend?: string;
  fetch(refs: readonly SecretRef[], signal: AbortSignal): Promise<FetchResult[]>;
  /** Whether `path` names a hierarchy of values (answered with a HierarchyResult) rather than one value. */
  expands?(path: string): boolean;
  /**
   * Told after each sync transaction commits which backend version the cache now
   * holds for each secret of the batch that succeeded (Vault revokes the leases
   * those replaced). Best effort: it must not throw, and a slow one holds nothing up
   * but shutdown.
   */
  committed?(held: ReadonlyMap<string, string | undefined>, signal: AbortSignal): Promise<void>;
  close?(): Promise<void>;
}

export interface ProviderInit<O> {
  readonly name: string;
  readonly options: O;
  readonly logger: Logger;
}

/** What a provider folder's `provider.ts` exports. */
export interface ProviderModule<O = unknown> {
  create(init: ProviderInit<O>): Provider;
}
