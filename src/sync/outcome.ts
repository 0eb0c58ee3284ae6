import { describeError } from "../errors.js";
import type { Logger } from "../log.js";
import { isProviderError, type FetchResult, type HierarchyResult } from "../providers/provider.js";
import type { BatchItem, SecretStore, StoredLease } from "../store/store.js";
import type { Catalog } from "./catalog.js";
import { expandWalk, type Outcome } from "./hierarchy.js";
import { leaseOf } from "./leases.js";

/**
 * A provider's answers for one batch, turned into what the store applies: each
 * name gets exactly one item; anything missing, duplicated or malformed is an
 * error for that name, not a value. `at` (wall clock) is what the cache records.
 */
export function buildOutcome(o: {
  catalog: Catalog;
  store: SecretStore;
  provider: string;
  names: readonly string[];
  results: unknown;
  at: number;
  log: Logger;
}): Outcome {
  const { catalog, provider, at, log } = o;
  const out: Outcome = { items: [], removed: [], cleared: [], walks: new Map(), expiry: new Map() };
  const wanted = new Set(o.names);
  const byName = new Map<string, FetchResult>();
  for (const r of Array.isArray(o.results) ? (o.results as FetchResult[]) : []) {
    if (r && typeof r.name === "string" && wanted.has(r.name) && !byName.has(r.name)) byName.set(r.name, r);
  }
  for (const name of o.names) {
    const r = byName.get(name);
    const tree = catalog.isHierarchy(name);
    if (!r) {
      out.items.push({ name, ok: false, kind: "permanent", message: `provider ${provider} returned no result for this secret`, at });
      continue;
    }
    if (tree && r.ok && Array.isArray(r.members)) {
      const skipped = expandWalk(catalog, provider, name, r as HierarchyResult, at, out);
      if (skipped > 0) log.warn({ provider, secret: name, skipped }, "parameters under a hierarchy not served (see its error)");
      continue;
    }
    if (!tree && r.ok && r.members === undefined) {
      if (typeof r.expiresAt === "number" && Number.isFinite(r.expiresAt)) out.expiry.set(name, r.expiresAt);
      const lease = leaseOf(r.lease);
      if (r.unchanged === true) {
        out.items.push(unchanged(o.store, catalog, provider, name, r.version, at, lease, log));
        continue;
      }
      if (r.value instanceof Uint8Array && r.value.length === 0 && catalog.entry(name)!.allow_empty !== true) {
        // One rule for every provider: an empty value is far more often a file caught
        // between truncate and write, or a half-provisioned backend, than a real secret.
        log.warn({ provider, secret: name }, "secret not refreshed: empty value; cached value kept");
        out.items.push({
          name,
          ok: false,
          kind: "transient",
          message: `provider ${provider} returned an empty value; the cached value is kept (set allow_empty: true on the secret if empty is valid)`,
          at,
        });
        continue;
      }
      if (r.value instanceof Uint8Array) {
        out.items.push({ name, ok: true, value: r.value, sourceVersion: r.version, at, held: catalog.fingerprint(name), lease });
        continue;
      }
    }
    const err = !r.ok ? r.error : undefined;
    const kind = isProviderError(err) ? err.kind : "permanent";
    const message = isProviderError(err) ? err.message : `provider ${provider} returned a malformed result`;
    // The cause: provider messages name paths, keys and backend codes, never a value (as every error message here).
    log.warn({ provider, secret: name, kind, err: message }, "secret not refreshed; cached value kept");
    out.items.push({ name, ok: false, kind, message, at });
  }
  return out;
}

/**
 * The backend confirmed the version held: the cached value is confirmed again
 * (read back and re-applied, so the store only records the confirmation).
 */
function unchanged(
  store: SecretStore,
  catalog: Catalog,
  provider: string,
  name: string,
  version: string | undefined,
  at: number,
  lease: StoredLease | undefined,
  log: Logger,
): BatchItem {
  let held: ReturnType<SecretStore["read"]>;
  try {
    held = store.read(name);
  } catch (e) {
    held = undefined;
    log.warn({ provider, secret: name, err: describeError(e) }, "cached value unreadable after a version check");
  }
  const fp = catalog.fingerprint(name);
  if (!held || held.meta.sourceVersion !== version || held.meta.held !== fp) {
    if (held) held.value.fill(0);
    return {
      name,
      ok: false,
      kind: "transient",
      message: `provider ${provider} reported version ${String(version)} unchanged, but the cache holds another; fetching in full next time`,
      at,
    };
  }
  return { name, ok: true, value: held.value, sourceVersion: version, at, held: fp, lease };
}
