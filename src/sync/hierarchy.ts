import type { HierarchyResult } from "../providers/provider.js";
import type { BatchItem } from "../store/store.js";
import type { Catalog, Skipped } from "./catalog.js";

/** What one batch's answers turn into: the store transaction, and what follows once it commits. */
export interface Outcome {
  readonly items: BatchItem[];
  readonly removed: string[];
  readonly cleared: string[];
  /** Hierarchies walked completely: their members from now on. */
  readonly walks: Map<string, Set<string>>;
  /** When a leased value (Vault lease, STS credentials) stops being usable. */
  readonly expiry: Map<string, number>;
}

/** How many skipped parameters an error message names before summing up the rest. */
const SKIPPED_NAMED = 5;

/**
 * One complete walk of a hierarchy, added to `out`: each value becomes a secret of
 * its own (ENTRY/relative, lower-cased); one whose name cannot be served is
 * skipped and named in the hierarchy's error, never dropped silently; members the
 * walk no longer finds are removed (the backend answered, completely, that they
 * are gone: see README "SSM hierarchies"). An empty walk removes nothing: a
 * hierarchy that suddenly holds nothing is far more often a wrong path, a moved
 * tree or a permission change than a fleet-wide revocation, so its cached
 * parameters are kept (stale) and the emptiness is the hierarchy's error.
 * Returns how many values were skipped. Values not handed on are zeroed here.
 */
export function expandWalk(catalog: Catalog, provider: string, entry: string, r: HierarchyResult, at: number, out: Outcome): number {
  const sc = catalog.entry(entry)!;
  const fp = catalog.fingerprint(entry);
  const where = `${provider} ${sc.path}`;
  const skipped: Skipped[] = [];
  const found = new Map<string, { relative: string; value: Uint8Array; version: string | undefined }[]>();
  for (const m of r.members) {
    if (!m || typeof m.relative !== "string" || !(m.value instanceof Uint8Array)) {
      for (const x of r.members) if (x?.value instanceof Uint8Array) x.value.fill(0);
      out.items.push({
        name: entry,
        ok: false,
        kind: "transient",
        message: `provider ${provider} returned a malformed hierarchy for ${sc.path}; rejected`,
        at,
      });
      return 0;
    }
    const c = catalog.childName(entry, m.relative);
    if ("skipped" in c) {
      skipped.push({ relative: m.relative, reason: c.skipped });
      m.value.fill(0);
      continue;
    }
    found.set(c.name, [...(found.get(c.name) ?? []), { relative: m.relative, value: m.value, version: typeof m.version === "string" ? m.version : undefined }]);
  }
  const members = new Set<string>();
  for (const [name, list] of found) {
    if (list.length > 1) {
      // Names differing only in case: neither is served rather than one at random.
      for (const x of list) {
        skipped.push({
          relative: x.relative,
          reason: `its name ${name} is also the lower-cased name of ${list
            .filter((y) => y !== x)
            .map((y) => y.relative)
            .join(", ")}`,
        });
        x.value.fill(0);
      }
      continue;
    }
    const x = list[0]!;
    members.add(name);
    out.items.push({ name, ok: true, value: x.value, sourceVersion: x.version, at, held: fp, origin: entry });
  }
  const before = catalog.members(entry);
  if (r.members.length === 0 && before.size > 0) {
    out.items.push({
      name: entry,
      ok: false,
      kind: "permanent",
      message:
        `${where}: the backend answered that the hierarchy holds no parameters now; the ${before.size} cached are kept (stale) in case the ` +
        `path or a permission changed; remove the entry from the config to stop serving them`,
      at,
    });
    return 0;
  }
  out.removed.push(...[...before].filter((n) => !members.has(n)));
  out.walks.set(entry, members);
  if (r.members.length === 0) {
    out.items.push({
      name: entry,
      ok: false,
      kind: "permanent",
      message: `${where}: no parameters under this path (check it, and the provider's permission to list it)`,
      at,
    });
  } else if (skipped.length > 0) {
    const named = skipped.slice(0, SKIPPED_NAMED).map((s) => `${s.relative} (${s.reason})`);
    const more = skipped.length > SKIPPED_NAMED ? `, and ${skipped.length - SKIPPED_NAMED} more` : "";
    out.items.push({
      name: entry,
      ok: false,
      kind: "permanent",
      message: `${where}: ${skipped.length} ${skipped.length === 1 ? "parameter" : "parameters"} not served: ${named.join("; ")}${more}`,
      at,
    });
  } else {
    out.cleared.push(entry);
  }
  return skipped.length;
}
