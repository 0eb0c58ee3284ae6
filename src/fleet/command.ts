/** What a fleet command asks for. */
export type FleetCmd = "refresh" | "revoke";
export const FLEET_CMDS: readonly FleetCmd[] = ["refresh", "revoke"];

/** The secrets a command is about: a list of names, or every one. */
export type FleetTarget = { readonly names: readonly string[] } | { readonly all: true };

/** A command whose signature and claims have been checked (src/fleet/verify.ts). */
export interface FleetCommand {
  readonly jti: string;
  /** The `kid` header: the name of the `commands.trust` key that signed it. */
  readonly kid: string;
  readonly cmd: FleetCmd;
  readonly target: FleetTarget;
  /** Seconds since the epoch, as signed. */
  readonly iat: number;
  readonly exp: number;
}

/** "3 names" or "all secrets", for result messages (which never list names unless metrics.secret_names). */
export function describeTarget(t: FleetTarget): string {
  return "all" in t ? "all secrets" : t.names.length === 1 ? `1 name` : `${t.names.length} names`;
}
