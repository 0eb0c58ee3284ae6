import fs from "node:fs";
import type { PolicyRule } from "../config/schema.js";
import { compileGlob } from "./glob.js";
import type { Accounts } from "./accounts.js";
import { normaliseUnit, unitProblem } from "./unit.js";

/** Who is on the other end of a connection, as the kernel reports it (read at accept). */
export interface Caller {
  readonly uid: number;
  readonly gid: number;
  readonly pid: number;
  readonly groups: readonly number[];
  /** /proc/PID/exe: the program the kernel runs (the interpreter, for a script), as identified at accept. */
  readonly exe?: string | undefined;
  /** The systemd unit whose cgroup holds the process (`edge-agent.service`). */
  readonly unit?: string | undefined;
  /**
   * For rules that name an exe: the process as it is now (src/server/reverify.ts).
   * Absent where nothing can change after identification; `exe` then stands.
   */
  readonly current?: CurrentExe | undefined;
}

/** The executable of a caller checked again when a rule needs it. */
export interface CurrentExe {
  /** `exe` while the process still runs it; undefined once it runs another (it exec'd), for the rest of the connection. */
  exe(): string | undefined;
  /** Why exe() is undefined, once it is: for the denial message. */
  readonly changed: string | undefined;
}

interface CompiledRule {
  readonly index: number;
  readonly uid: number | undefined;
  readonly gid: number | undefined;
  readonly unit: string | undefined;
  /** The configured path and, when it is a symlink, what it resolves to (what /proc/PID/exe shows). */
  readonly exe: readonly string[] | undefined;
  /** Set when the rule can never match (an unknown account, a contradiction). */
  readonly never: string | undefined;
  readonly allow: readonly RegExp[];
  readonly admin: boolean;
}

/** How the policy learns about the host; replaced in tests. */
export interface PolicyHost {
  /** The canonical path of an existing executable file, or undefined if there is none. */
  resolveExe(path: string): string | undefined;
}

export const realHost: PolicyHost = {
  resolveExe(p) {
    try {
      const real = fs.realpathSync(p);
      const st = fs.statSync(real);
      return st.isFile() && (st.mode & 0o111) !== 0 ? real : undefined;
    } catch {
      return undefined;
    }
  },
};

/**
 * First matching rule wins; no match is a denial. A rule matches when every key it
 * names matches (uid/user, gid/group, unit, exe). Root is not special unless a rule
 * says so. Without a `policy` section only the daemon's own uid may read and
 * administer, which is what a socket owned by that account already implies.
 */
export class Policy {
  readonly #rules: readonly CompiledRule[];
  readonly warnings: readonly string[];
  /** Some rule names an exe: callers are then handed over with `current` (checked again per request). */
  readonly namesExe: boolean;

  constructor(rules: readonly PolicyRule[] | undefined, accounts: Accounts, selfUid: number, host: PolicyHost = realHost) {
    const effective: readonly PolicyRule[] = rules ?? [{ match: { uid: selfUid }, allow: ["**"], admin: true }];
    const warnings: string[] = [];
    this.#rules = effective.map((r, index) => compile(r, index, accounts, host, warnings));
    this.warnings = warnings;
    this.namesExe = this.#rules.some((r) => !r.never && r.exe !== undefined);
  }

  /**
   * The first rule matching the caller, or undefined. The exe is compared last, and
   * as the process runs now: it is asked for only when every other key of an exe
   * rule has matched, which is the only time it costs a read of /proc.
   */
  #rule(c: Caller): CompiledRule | undefined {
    for (const r of this.#rules) {
      if (r.never) continue;
      if (r.uid !== undefined && r.uid !== c.uid) continue;
      if (r.gid !== undefined && r.gid !== c.gid && !c.groups.includes(r.gid)) continue;
      if (r.unit !== undefined && r.unit !== c.unit) continue;
      if (r.exe !== undefined) {
        const exe = c.current ? c.current.exe() : c.exe;
        if (exe === undefined || !r.exe.includes(exe)) continue;
      }
      return r;
    }
    return undefined;
  }

  canRead(c: Caller, name: string): boolean {
    const r = this.#rule(c);
    return r?.allow.some((g) => g.test(name)) ?? false;
  }

  isAdmin(c: Caller): boolean {
    return this.#rule(c)?.admin === true;
  }
}

function compile(r: PolicyRule, index: number, accounts: Accounts, host: PolicyHost, warnings: string[]): CompiledRule {
  const m = r.match;
  const at = `policy[${index}]`;
  let never: string | undefined;
  let uid = m.uid;
  if (m.user !== undefined) {
    const u = accounts.uidOf(m.user);
    if (u === undefined) never ??= `${at}.match.user: no local user ${JSON.stringify(m.user)}; the rule matches nobody`;
    else if (uid !== undefined && uid !== u) never ??= `${at} names uid ${uid} and user ${m.user} (uid ${u}); the rule matches nobody`;
    else uid = u;
  }
  let gid = m.gid;
  if (m.group !== undefined) {
    const g = accounts.gidOf(m.group);
    if (g === undefined) never ??= `${at}.match.group: no local group ${JSON.stringify(m.group)}; the rule matches nobody`;
    else if (gid !== undefined && gid !== g) never ??= `${at} names gid ${gid} and group ${m.group} (gid ${g}); the rule matches nobody`;
    else gid = g;
  }
  let unit: string | undefined;
  if (m.unit !== undefined) {
    unit = normaliseUnit(m.unit);
    const problem = unitProblem(unit);
    if (problem) never ??= `${at}.match.unit: ${JSON.stringify(m.unit)} ${problem}; the rule matches nobody`;
  }
  let exe: string[] | undefined;
  if (m.exe !== undefined) {
    const real = host.resolveExe(m.exe);
    // Kept as written too: a program installed after start still matches its path.
    exe = real && real !== m.exe ? [m.exe, real] : [m.exe];
    if (!real) warnings.push(`${at}.match.exe: ${m.exe} is not an executable file (yet); the rule matches nothing until it exists`);
  }
  if (never) warnings.push(never);
  if (r.allow.length === 0 && !r.admin) warnings.push(`${at} allows nothing`);
  if (!never && r.allow.includes("**") && uid === undefined && gid === undefined) {
    const by = [unit && `unit ${unit}`, exe && `exe ${m.exe}`].filter(Boolean).join(" and ");
    warnings.push(`${at} allows every secret to every account running ${by}; add a user or group to the match`);
  }
  return { index, uid, gid, unit, exe, never, allow: r.allow.map(compileGlob), admin: r.admin };
}

/**
 * Rules that match every caller able to open the socket: they name only the
 * socket's own group (every account that can connect is in it, or owns it).
 * The schema already refuses a rule that names nothing at all.
 */
export function everyoneWarnings(rules: readonly PolicyRule[] | undefined, accounts: Accounts, socketGid: number | undefined): string[] {
  if (socketGid === undefined) return [];
  const out: string[] = [];
  for (const [i, r] of (rules ?? []).entries()) {
    const m = r.match;
    if (m.uid !== undefined || m.user !== undefined || m.unit !== undefined || m.exe !== undefined) continue;
    const gid = m.gid ?? (m.group !== undefined ? accounts.gidOf(m.group) : undefined);
    if (gid !== socketGid) continue;
    const what = r.allow.includes("**") ? "every secret" : r.allow.length > 0 ? r.allow.join(", ") : "nothing";
    out.push(
      `policy[${i}] matches every account that can open the socket (gid ${gid} is the socket's group) and allows ` +
        `${what}${r.admin ? ", with admin" : ""}; match on a user, unit or exe as well`,
    );
  }
  return out;
}
