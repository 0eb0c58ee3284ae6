import type { PolicyRule } from "../config/schema.js";
import { compileGlob } from "./glob.js";
import type { Accounts } from "./accounts.js";

/** Who is on the other end of a connection, as the kernel reports it. */
export interface Caller {
  readonly uid: number;
  readonly gid: number;
  readonly pid: number;
  readonly groups: readonly number[];
}

interface CompiledRule {
  readonly index: number;
  readonly uid: number | undefined;
  readonly gid: number | undefined;
  /** Set when the rule names something this build cannot match yet, or an unknown account. */
  readonly never: string | undefined;
  readonly allow: readonly RegExp[];
  readonly admin: boolean;
}

/**
 * First matching rule wins; no match is a denial. Root is not special unless a
 * rule says so. Without a `policy` section only the daemon's own uid may read
 * and administer, which is what a socket owned by that account already implies.
 */
export class Policy {
  readonly #rules: readonly CompiledRule[];
  readonly warnings: readonly string[];

  constructor(rules: readonly PolicyRule[] | undefined, accounts: Accounts, selfUid: number) {
    const effective: readonly PolicyRule[] = rules ?? [{ match: { uid: selfUid }, allow: ["**"], admin: true }];
    const warnings: string[] = [];
    this.#rules = effective.map((r, index) => {
      const m = r.match;
      // unit/exe matching arrives with caller tracking by process; until then such a
      // rule fails closed (reported as inactive by status and doctor).
      let never: string | undefined = m.unit !== undefined || m.exe !== undefined ? "inactive" : undefined;
      let uid = m.uid;
      if (m.user !== undefined) {
        const u = accounts.uidOf(m.user);
        if (u === undefined) never ??= `policy[${index}].match.user: no local user ${JSON.stringify(m.user)}; the rule matches nobody`;
        else if (uid !== undefined && uid !== u) never ??= `policy[${index}] names uid ${uid} and user ${m.user} (uid ${u}); the rule matches nobody`;
        else uid = u;
      }
      let gid = m.gid;
      if (m.group !== undefined) {
        const g = accounts.gidOf(m.group);
        if (g === undefined) never ??= `policy[${index}].match.group: no local group ${JSON.stringify(m.group)}; the rule matches nobody`;
        else gid = g;
      }
      if (never && never !== "inactive") warnings.push(never);
      if (r.allow.length === 0 && !r.admin) warnings.push(`policy[${index}] allows nothing`);
      if (r.allow.includes("**") && uid === undefined && gid === undefined && !never) warnings.push(`policy[${index}] allows every secret to every caller it matches`);
      return { index, uid, gid, never, allow: r.allow.map(compileGlob), admin: r.admin };
    });
    this.warnings = warnings;
  }

  /** The first rule matching the caller, or undefined. */
  #rule(c: Caller): CompiledRule | undefined {
    for (const r of this.#rules) {
      if (r.never) continue;
      if (r.uid !== undefined && r.uid !== c.uid) continue;
      if (r.gid !== undefined && r.gid !== c.gid && !c.groups.includes(r.gid)) continue;
      return r;
    }
    return undefined;
  }

  canRead(c: Caller, name: string): boolean {
    const r = this.#rule(c);
    return r !== undefined && r.allow.some((g) => g.test(name));
  }

  isAdmin(c: Caller): boolean {
    return this.#rule(c)?.admin === true;
  }
}
