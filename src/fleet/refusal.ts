/**
 * Why a fleet command was refused, as a stable code (published on the result
 * topic, recorded in the audit trail, documented in README "Fleet channel
 * (MQTT)"). A refused command changes nothing.
 */
export const REFUSAL_CODES = [
  /** More messages than the intake's token bucket admits: resend later. */
  "rate_limited",
  /** Larger than MAX_COMMAND_BYTES (refused before it is parsed). */
  "too_large",
  /** Not a JWS compact token (three base64url parts, a JSON header and payload). */
  "not_jwt",
  /** A header `alg` other than EdDSA (`none`, HS256, RS256, ...). */
  "bad_alg",
  /** A `kid` that names no key in `commands.trust` (or none at all). */
  "unknown_kid",
  /** The signature does not verify with the named key. */
  "bad_signature",
  /** A claim that is missing or of the wrong type (jti, iat, aud). */
  "bad_claims",
  /** `aud` names neither this device nor `fleet`. */
  "wrong_audience",
  /** No `exp`: every command must expire. */
  "no_expiry",
  /** `exp` has passed by this gateway's clock. */
  "expired",
  /** `iat` (or `nbf`) more than MAX_FUTURE_SKEW_MS ahead of this gateway's clock. */
  "not_yet_valid",
  /** `exp - iat` is longer than `commands.max_lifetime`. */
  "lifetime_too_long",
  /** A `cmd` other than refresh or revoke. */
  "unknown_cmd",
  /** `names` and `all` both or neither, or a name that breaks the name rules. */
  "bad_names",
  /** This `jti` was already carried out (remembered until its exp). */
  "replayed",
  /** MAX_LIVE_JTIS commands are still live: none can be remembered, so none is accepted. */
  "replay_store_full",
] as const;

export type RefusalCode = (typeof REFUSAL_CODES)[number];

export class FleetRefusal extends Error {
  readonly code: RefusalCode;
  constructor(code: RefusalCode, message: string) {
    super(message);
    this.name = "FleetRefusal";
    this.code = code;
  }
}

export function isFleetRefusal(e: unknown): e is FleetRefusal {
  return e instanceof FleetRefusal;
}
