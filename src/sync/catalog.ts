import { createHash } from "node:crypto";
import type { SecretConfig } from "../config/schema.js";
import { nameProblem } from "../config/names.js";
import type { SecretMeta } from "../store/store.js";

/**
 * What a secret name stands for:
 * - `secret`: a configured secret;
 * - `hierarchy`: a configured entry whose path names a hierarchy (SSM `/app/prod/**`):
 *   not a secret itself, its parameters are served under `ENTRY/…`;
 * - `member`: a parameter the hierarchy `entry` held at its last walk;
 * - `pending`: a name under a hierarchy that this process has not walked yet;
 * - `imported`: a value put in by `sealcache import` (a bootstrap token): served,
 *   never refreshed, kept until revoked.
 */
export type NameKind = { readonly kind: "secret" | "hierarchy" | "member" | "pending" | "imported"; readonly entry: string };

/** The `origin` an imported value's row records (a colon: no configured entry can have that name). */
export const IMPORTED_ORIGIN = ":imported";

/** A parameter under a hierarchy that cannot be served, and why (never a value). */
export interface Skipped {
  readonly relative: string;
  readonly reason: string;
}

/**
 * The names the daemon serves: the configured secrets, and for each hierarchy
 * entry the parameters its last walk found. Shared by the sync engine (which
 * changes membership after each walk) and the reader (which answers from it).
 */
export class Catalog {
  readonly #secrets: Readonly<Record<string, SecretConfig>>;
  readonly #backend: (provider: string) => string;
  /** Hierarchy entries, longest name first: the most specific claims a nested name. */
  readonly #hierarchies: readonly string[];
  readonly #members = new Map<string, string>();
  readonly #children = new Map<string, Set<string>>();
  readonly #walked = new Set<string>();
  readonly #imported = new Set<string>();
  readonly #fingerprints = new Map<string, string>();

  constructor(opts: { secrets: Readonly<Record<string, SecretConfig>>; isHierarchy: (sc: SecretConfig) => boolean; backend: (provider: string) => string }) {
    this.#secrets = opts.secrets;
    this.#backend = opts.backend;
    this.#hierarchies = Object.entries(opts.secrets)
      .filter(([, sc]) => opts.isHierarchy(sc))
      .map(([n]) => n)
      .sort((a, b) => b.length - a.length);
    for (const h of this.#hierarchies) this.#children.set(h, new Set());
  }

  /** The configured entry (secret or hierarchy) of that name. */
  entry(name: string): SecretConfig | undefined {
    return Object.hasOwn(this.#secrets, name) ? this.#secrets[name] : undefined;
  }

  /** Configured entry names: what the engine schedules. */
  entries(): string[] {
    return Object.keys(this.#secrets);
  }

  isHierarchy(name: string): boolean {
    return this.#children.has(name);
  }

  get hasHierarchies(): boolean {
    return this.#hierarchies.length > 0;
  }

  kind(name: string): NameKind | undefined {
    if (this.entry(name)) return { kind: this.isHierarchy(name) ? "hierarchy" : "secret", entry: name };
    const parent = this.#members.get(name);
    if (parent !== undefined) return { kind: "member", entry: parent };
    const owner = this.#claimant(name);
    if (owner !== undefined && !this.#walked.has(owner)) return { kind: "pending", entry: owner };
    if (this.#imported.has(name)) return { kind: "imported", entry: name };
    return undefined;
  }

  /** Names that hold a value: configured secrets and hierarchy members. */
  isServable(name: string): boolean {
    const k = this.kind(name);
    return k?.kind === "secret" || k?.kind === "member" || k?.kind === "pending" || k?.kind === "imported";
  }

  /** Every name `list` shows: configured secrets, hierarchy entries and their members, sorted. */
  listed(): string[] {
    return [...Object.keys(this.#secrets), ...this.#members.keys(), ...[...this.#imported].filter((n) => this.kind(n)?.kind === "imported")].sort();
  }

  members(entry: string): ReadonlySet<string> {
    return this.#children.get(entry) ?? new Set();
  }

  walked(entry: string): boolean {
    return this.#walked.has(entry);
  }

  /**
   * Identifies the config a value was fetched under (provider instance and the
   * backend it reads, path, key, pinned version). A backend version recorded under
   * another fingerprint says nothing about the value cached, so after a config edit
   * the first sync reads in full. Not secret; 128 bits of SHA-256.
   */
  fingerprint(entry: string): string {
    let fp = this.#fingerprints.get(entry);
    if (fp === undefined) {
      const sc = this.#secrets[entry]!;
      fp = createHash("sha256")
        .update(JSON.stringify([sc.provider, this.#backend(sc.provider), sc.path, sc.key ?? null, sc.version ?? null]))
        .digest("hex")
        .slice(0, 32);
      this.#fingerprints.set(entry, fp);
    }
    return fp;
  }

  /**
   * What the cache holds at start: members (rows recorded under a hierarchy that is
   * still configured the same way) and imported values.
   */
  adopt(metas: Iterable<SecretMeta>): void {
    for (const m of metas) {
      if (m.origin === IMPORTED_ORIGIN) {
        this.#imported.add(m.name);
        continue;
      }
      if (m.origin === null || !this.isHierarchy(m.origin) || m.held !== this.fingerprint(m.origin)) continue;
      if (this.#claimant(m.name) !== m.origin) continue;
      this.#members.set(m.name, m.origin);
      this.#children.get(m.origin)!.add(m.name);
    }
  }

  /**
   * The served name of a parameter found under `entry` at `relative` (its path
   * below the hierarchy's prefix), lower-cased; or why it cannot be served.
   */
  childName(entry: string, relative: string): { name: string } | { skipped: string } {
    const name = `${entry}/${relative.toLowerCase()}`;
    const problem = nameProblem(name);
    if (problem) return { skipped: `its name ${JSON.stringify(name.slice(0, 300))} ${problem}` };
    const owner = this.#claimant(name);
    if (owner !== entry) {
      return {
        skipped: this.entry(name) ? `its name ${name} is a configured secret, which wins` : `its name ${name} belongs to the more specific hierarchy ${owner}`,
      };
    }
    return { name };
  }

  /** After a complete walk: the members are exactly `names`. */
  setMembers(entry: string, names: ReadonlySet<string>): void {
    const kids = this.#children.get(entry)!;
    for (const n of kids) if (!names.has(n)) this.#members.delete(n);
    kids.clear();
    for (const n of names) {
      kids.add(n);
      this.#members.set(n, entry);
    }
    this.#walked.add(entry);
  }

  /**
   * Why `name` cannot be imported (a provider serves it: it is configured, or under
   * a hierarchy), or undefined when it can.
   */
  importProblem(name: string): string | undefined {
    const owner = this.#claimant(name);
    if (owner === undefined) return undefined;
    const sc = this.entry(owner)!;
    return owner === name ? `is served by provider ${sc.provider}` : `is under the hierarchy ${owner} (provider ${sc.provider})`;
  }

  /** An imported value was stored (true) or revoked (false). */
  setImported(name: string, held: boolean): void {
    if (held) this.#imported.add(name);
    else this.#imported.delete(name);
  }

  /** Which entry a name belongs to: a configured name is its own; otherwise the most specific hierarchy above it. */
  owner(name: string): string | undefined {
    return this.#claimant(name);
  }

  #claimant(name: string): string | undefined {
    if (this.entry(name)) return name;
    for (const h of this.#hierarchies) if (name.startsWith(h + "/")) return h;
    return undefined;
  }
}
