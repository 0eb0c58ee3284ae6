import type { FleetCmd, FleetTarget } from "../fleet/command.js";

export type { FleetTarget };

/**
 * Who a fleet command comes from, for the audit trail and the core's rules: the
 * `commands.trust` key that signed it (its kid) and the command's jti.
 */
export interface FleetPrincipal {
  readonly kind: "fleet";
  /** The kid: the name of the trust key that signed the command. */
  readonly issuer: string;
  readonly jti: string;
}

/**
 * What the gateway publishes, retained, on `{prefix}/{device}/status` (plus
 * `online: true` and `at`, which the part adds). Counts and states, never a
 * value; `names` only where `metrics.secret_names` allows (the part drops it
 * otherwise, whatever the core returns).
 *
 * There is no `online` here on purpose: on the bus `online` says whether the
 * gateway is connected (the will sets it false), so backend reachability is
 * told per provider instead, and the two cannot be mistaken for each other.
 */
export interface FleetStatus {
  readonly sealed: boolean;
  /** Configured secrets. */
  readonly secrets: number;
  readonly stale: number;
  readonly providers: Readonly<Record<string, "online" | "offline">>;
  /** The store's revision: grows with every value change. */
  readonly revision: number;
  readonly version: string;
  readonly names?: readonly string[];
}

/** One fleet command, done or refused, for the audit trail. */
export interface FleetAuditEntry {
  /** Null when the command was refused before its signature was checked (nothing it claims is known to be true). */
  readonly principal: FleetPrincipal | null;
  /** What a refused message claimed to be (unverified, clipped), so the operator can tell which command it was. */
  readonly claimed?: { readonly kid?: string; readonly jti?: string };
  readonly cmd: FleetCmd | null;
  readonly target: FleetTarget | null;
  /** The topic it arrived on. */
  readonly topic: string;
  readonly ok: boolean;
  /** `ok`, a refusal code (src/fleet/refusal.ts) or the core's error code. */
  readonly code: string;
  readonly message: string;
}

/**
 * What the MQTT part needs from the daemon: the command core (the same refresh
 * and revoke the socket and the CLI use, over a fleet principal), a status
 * summary, and the MQTT password when it is a cached secret. The daemon's
 * composition root implements it; test/support/fleet-core.ts is a small
 * in-process one for the part's own tests.
 */
export interface FleetCore {
  status(): FleetStatus;
  /** Calls `fn` whenever status() may have changed; returns the unsubscribe. */
  onStatusChange(fn: () => void): () => void;
  /** Queues a sync of the names (or of all); throws a SealcacheError with a code when it cannot. */
  refresh(principal: FleetPrincipal, target: FleetTarget): Promise<{ queued: readonly string[] }>;
  /** Crypto-shreds the names (or all); throws a SealcacheError with a code when it cannot. */
  revoke(principal: FleetPrincipal, target: FleetTarget): Promise<{ revoked: readonly string[] }>;
  /**
   * Resolves once the core can tell whether a command may be carried out (the
   * daemon: its cache is open, or its first unseal attempt has ended). A command
   * waits here after its signature is checked and before its jti is looked up, so
   * one delivered at connect (a persistent session's queue: a revoke sent while the
   * gateway was away) is not refused `sealed`, and lost, merely for arriving while
   * the key is still being unsealed. Absent: always ready. Never rejects.
   */
  ready?(): Promise<void>;
  /** A cached secret's value (for `mqtt.password_secret`), a copy the caller zeroes; undefined when not available. */
  secret(name: string): Uint8Array | undefined;
  audit(entry: FleetAuditEntry): void;
}
