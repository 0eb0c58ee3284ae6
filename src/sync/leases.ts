import { describeError } from "../errors.js";
import type { Logger } from "../log.js";
import type { LeaseState } from "../providers/provider.js";
import type { SecretStore, StoredLease } from "../store/store.js";
import type { Catalog } from "./catalog.js";

/**
 * What a provider may build on from a previous fetch: the backend version the cache
 * holds (for a cheap version check) and the lease it is held under (Vault dynamic
 * secrets: renewed, not re-minted, after a restart). The generic layers carry these
 * as an opaque version and attachment; this is where they are read and checked.
 */

/**
 * The backend version the cache holds for `name`, if it may be trusted: only as
 * recorded under this same config (the fingerprint is bound into the row's MAC,
 * so the file cannot forge it).
 */
export function trustedVersion(store: SecretStore, catalog: Catalog, name: string): string | undefined {
  const meta = store.meta(name);
  return meta && meta.held === catalog.fingerprint(name) ? (meta.sourceVersion ?? undefined) : undefined;
}

/**
 * The lease recorded with the cached value of `name`, given only with a trusted
 * version. One that does not open has quarantined the cache (the store logs why):
 * the secret is read anew.
 */
export function cachedLease(store: SecretStore, catalog: Catalog, name: string, log: Logger): StoredLease | undefined {
  if (!store.meta(name)?.leased || trustedVersion(store, catalog, name) === undefined) return undefined;
  try {
    return store.lease(name);
  } catch (e) {
    log.warn({ secret: name, err: describeError(e) }, "cached lease unreadable; the secret will be read again");
    return undefined;
  }
}

/** A provider's lease as the store records it; anything malformed is not recorded (the value then simply has no lease). */
export function leaseOf(l: LeaseState | undefined): StoredLease | undefined {
  if (!l || typeof l !== "object") return undefined;
  const time = (v: unknown) => typeof v === "number" && Number.isFinite(v) && v >= 0;
  if (typeof l.id !== "string" || l.id === "" || !time(l.duration) || !time(l.expiresAt) || typeof l.renewable !== "boolean") return undefined;
  return { id: l.id, duration: l.duration, expiresAt: l.expiresAt, renewable: l.renewable };
}
