import { SealcacheError } from "../errors.js";
import type { Policy } from "../policy/policy.js";
import { describePrincipal, type Principal } from "./principal.js";

/** What an admin may do; a fleet command is admitted for exactly the commands the fleet channel carries. */
export type AdminAction = "refresh" | "revoke" | "import" | "rotate-kek" | "audit";

const FLEET_ACTIONS: ReadonlySet<AdminAction> = new Set(["refresh", "revoke"]);

const ACTION_WORDS: Record<AdminAction, string> = {
  refresh: "trigger a refresh",
  revoke: "revoke secrets",
  import: "import secrets",
  "rotate-kek": "rotate the cache key",
  audit: "read the audit trail",
};

/**
 * The policy's decisions for a principal, as the operations ask them. A peer is
 * what the `policy` section says; a verified fleet command may refresh and revoke
 * (its signature and `commands.trust` are its admission) and read nothing; the
 * local operator (on the cache directly) may do everything.
 */
export class Access {
  readonly #policy: Policy;

  constructor(policy: Policy) {
    this.#policy = policy;
  }

  get warnings(): readonly string[] {
    return this.#policy.warnings;
  }

  /** Some rule names an exe: peers' programs are then checked again per request (src/server/reverify.ts). */
  get namesExe(): boolean {
    return this.#policy.namesExe;
  }

  canRead(p: Principal, name: string): boolean {
    switch (p.kind) {
      case "peer":
        return p.caller !== undefined && this.#policy.canRead(p.caller, name);
      case "fleet":
        return false;
      case "operator":
        return true;
    }
  }

  /** Throws `forbidden` unless the principal may read `name`. */
  mayRead(p: Principal, name: string): void {
    if (!this.canRead(p, name)) {
      throw new SealcacheError(
        "forbidden",
        `${describePrincipal(p)} may not read ${JSON.stringify(name.slice(0, 256))}; see the policy section of the config`,
        { subject: name },
      );
    }
  }

  /** Throws `forbidden` unless the principal may do `action`. */
  mayAdmin(p: Principal, action: AdminAction): void {
    const ok = p.kind === "operator" || (p.kind === "fleet" ? FLEET_ACTIONS.has(action) : p.caller !== undefined && this.#policy.isAdmin(p.caller));
    if (!ok) {
      const why = p.kind === "fleet" ? "the fleet channel carries refresh and revoke only" : "it needs a policy rule with admin: true";
      throw new SealcacheError("forbidden", `${describePrincipal(p)} may not ${ACTION_WORDS[action]}; ${why}`);
    }
  }
}
