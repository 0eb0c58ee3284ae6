import type { KeyObject } from "node:crypto";
import { compactVerify, errors } from "jose";
import { clip, quote } from "../config/quote.js";
import { nameProblem } from "../config/names.js";
import { FLEET_CMDS, type FleetCmd, type FleetCommand, type FleetTarget } from "./command.js";
import { FleetRefusal } from "./refusal.js";

/**
 * The largest message read as a command. A token naming a few hundred secrets
 * is well under it; a bigger message is refused before it is decoded, so a
 * flood of large messages costs a length check each.
 */
export const MAX_COMMAND_BYTES = 64 * 1024;
/** How many names one command may list (a revoke of more is `all: true`, or several commands). */
export const MAX_NAMES = 1_000;
/** How far ahead of this gateway's clock `iat` (or `nbf`) may be: signer and gateway clocks differ. */
export const MAX_FUTURE_SKEW_MS = 5 * 60_000;
/** Longest `jti` accepted: it is remembered, sealed, until the command expires. */
export const MAX_JTI_CHARS = 128;
/** The fleet-wide audience (and topic level). */
export const FLEET_AUDIENCE = "fleet";

export interface VerifyOptions {
  readonly deviceId: string;
  /** `commands.trust`, loaded: key name → Ed25519 public key. */
  readonly keys: ReadonlyMap<string, KeyObject>;
  /** Trust keys that could not be loaded, and why: a command naming one is told. */
  readonly keyProblems?: ReadonlyMap<string, string>;
  readonly maxLifetimeMs: number;
}

/**
 * Checks one message as a fleet command (README "Fleet channel (MQTT)"), in
 * the order that costs least for what is refused most: size, shape, header,
 * signature, then the claims, which are read only once the signature holds.
 * Throws a FleetRefusal with a stable code; its message quotes at most a short
 * prefix of anything the message carried.
 *
 * `nowWallMs` is the wall clock: `exp`, `iat` and `nbf` are wall-clock claims
 * made by another machine, so they can only be judged against this gateway's
 * wall clock (README "Fleet channel (MQTT)", the clock caveat).
 */
export async function verifyCommand(payload: Uint8Array, opts: VerifyOptions, nowWallMs: number): Promise<FleetCommand> {
  if (payload.length > MAX_COMMAND_BYTES) {
    throw new FleetRefusal("too_large", `the message is ${payload.length} bytes; a command is at most ${MAX_COMMAND_BYTES / 1024} KiB`);
  }
  const token = compactToken(payload);
  const header = decodeJson(token.split(".")[0]!, "header");
  const alg = header.alg;
  if (alg !== "EdDSA") {
    throw new FleetRefusal(
      "bad_alg",
      `alg ${quote(alg)} is not accepted; commands are signed with EdDSA ` +
        `(Ed25519, RFC 8037)${alg === "none" ? ": an unsigned command is never carried out" : ""}`,
    );
  }
  const kid = header.kid;
  if (typeof kid !== "string" || kid.length === 0)
    throw new FleetRefusal("unknown_kid", "the header has no kid; it must name the commands.trust key that signed the command (sealcache fleet sign --kid)");
  const key = opts.keys.get(kid);
  if (!key) {
    const problem = opts.keyProblems?.get(kid);
    throw new FleetRefusal(
      "unknown_kid",
      problem
        ? `trust key ${quote(kid)} could not be loaded: ${problem}`
        : `kid ${quote(kid)} names no key in mqtt.commands.trust` +
            `${opts.keys.size === 0 ? " (none is configured)" : ` (known: ${[...opts.keys.keys()].slice(0, 5).map(clip).join(", ")})`}`,
    );
  }
  let signed: Uint8Array;
  try {
    signed = (await compactVerify(token, key, { algorithms: ["EdDSA"] })).payload;
  } catch (e) {
    if (e instanceof errors.JWSSignatureVerificationFailed)
      throw new FleetRefusal("bad_signature", `the signature does not verify with trust key ${quote(kid)}`);
    // Everything else jose refuses here is the token's form: an unsupported `crit`, a `b64` header, bad base64.
    if (e instanceof errors.JOSENotSupported)
      throw new FleetRefusal("not_jwt", "the token uses a JWS feature this gateway does not support (a crit or b64 header)");
    throw new FleetRefusal("not_jwt", `not a valid JWS (${clip(e instanceof errors.JOSEError ? e.code : "unreadable")})`);
  }
  const claims = parseObject(signed, "payload");
  return checkClaims(claims, kid, opts, nowWallMs);
}

function checkClaims(c: Record<string, unknown>, kid: string, opts: VerifyOptions, nowMs: number): FleetCommand {
  const aud = c.aud;
  const auds =
    typeof aud === "string" ? [aud] : Array.isArray(aud) && aud.length > 0 && aud.every((a) => typeof a === "string") ? (aud as string[]) : undefined;
  if (!auds) throw new FleetRefusal("bad_claims", "aud is missing or not a string (or list of strings): name the device or fleet");
  if (!auds.includes(opts.deviceId) && !auds.includes(FLEET_AUDIENCE)) {
    throw new FleetRefusal(
      "wrong_audience",
      `the command is for ${auds.slice(0, 3).map(quote).join(", ")}${auds.length > 3 ? ` and ${auds.length - 3} more` : ""}, not this device ` +
        `(${quote(opts.deviceId)}) or ${FLEET_AUDIENCE}`,
    );
  }
  const jti = c.jti;
  if (typeof jti !== "string" || jti.length === 0 || jti.length > MAX_JTI_CHARS)
    throw new FleetRefusal("bad_claims", `jti must be a string of 1-${MAX_JTI_CHARS} characters (it makes each command unique)`);
  const exp = c.exp;
  if (exp === undefined) throw new FleetRefusal("no_expiry", "exp is missing: every command must expire (sealcache fleet sign --ttl)");
  const iat = c.iat;
  if (!isTime(exp)) throw new FleetRefusal("bad_claims", "exp must be a number of seconds since the epoch");
  if (!isTime(iat)) throw new FleetRefusal("bad_claims", "iat is missing or not a number of seconds since the epoch (it bounds the command's lifetime)");
  const now = nowMs / 1000;
  if (exp <= now) throw new FleetRefusal("expired", `expired at ${iso(exp)}, ${ago(now - exp)} ago by this gateway's clock (${iso(now)})`);
  for (const [claim, at] of [
    ["iat", iat],
    ["nbf", c.nbf],
  ] as const) {
    if (at === undefined) continue;
    if (!isTime(at)) throw new FleetRefusal("bad_claims", `${claim} must be a number of seconds since the epoch`);
    if (at * 1000 > nowMs + MAX_FUTURE_SKEW_MS) {
      throw new FleetRefusal(
        "not_yet_valid",
        `${claim} is ${iso(at)}, ${ago(at - now)} ahead of this gateway's clock (${iso(now)}); at most ${MAX_FUTURE_SKEW_MS / 60_000} minutes of ` +
          `skew is allowed. Is the gateway's clock set (NTP)?`,
      );
    }
  }
  if (exp < iat) throw new FleetRefusal("bad_claims", "exp is before iat");
  if ((exp - iat) * 1000 > opts.maxLifetimeMs) {
    throw new FleetRefusal(
      "lifetime_too_long",
      `the command is valid for ${ago(exp - iat)}, longer than mqtt.commands.max_lifetime (${ago(opts.maxLifetimeMs / 1000)}); sign it with a shorter --ttl`,
    );
  }
  const cmd = c.cmd;
  if (typeof cmd !== "string" || !FLEET_CMDS.includes(cmd as FleetCmd))
    throw new FleetRefusal("unknown_cmd", `cmd ${quote(cmd)} is not one of ${FLEET_CMDS.join(", ")}`);
  return { jti, kid, cmd: cmd as FleetCmd, target: target(c), iat, exp };
}

function target(c: Record<string, unknown>): FleetTarget {
  const { names, all } = c;
  if (all !== undefined && all !== true) throw new FleetRefusal("bad_names", "all must be true when present");
  if (all === true) {
    if (names !== undefined) throw new FleetRefusal("bad_names", "names and all: true exclude each other");
    return { all: true };
  }
  if (names === undefined) throw new FleetRefusal("bad_names", "the command names no secrets: give names (a list) or all: true");
  if (!Array.isArray(names) || names.length === 0) throw new FleetRefusal("bad_names", "names must be a non-empty list of secret names");
  if (names.length > MAX_NAMES) throw new FleetRefusal("bad_names", `names lists ${names.length} secrets; at most ${MAX_NAMES} per command (or all: true)`);
  for (const [i, n] of names.entries()) {
    if (typeof n !== "string") throw new FleetRefusal("bad_names", `names[${i}] is not a string`);
    const problem = nameProblem(n);
    if (problem) throw new FleetRefusal("bad_names", `names[${i}] ${quote(n)} ${problem}`);
  }
  return { names: [...new Set(names as string[])] };
}

/** The message as a JWS compact token: three base64url parts (the middle one may not be empty). */
function compactToken(payload: Uint8Array): string {
  const text = Buffer.from(payload.buffer, payload.byteOffset, payload.length).toString("latin1").trim();
  if (!/^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*$/.test(text)) {
    const looks = text.startsWith("{")
      ? "JSON, not a signed token: an unsigned command is never carried out"
      : "not a JWS compact token (three base64url parts separated by dots)";
    throw new FleetRefusal("not_jwt", `the message is ${looks}; make one with sealcache fleet sign`);
  }
  return text;
}

function decodeJson(part: string, what: string): Record<string, unknown> {
  return parseObject(Buffer.from(part, "base64url"), what);
}

function parseObject(bytes: Uint8Array, what: string): Record<string, unknown> {
  let v: unknown;
  try {
    v = JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(bytes));
  } catch {
    throw new FleetRefusal("not_jwt", `the token's ${what} is not JSON`);
  }
  if (typeof v !== "object" || v === null || Array.isArray(v)) throw new FleetRefusal("not_jwt", `the token's ${what} is not a JSON object`);
  return v as Record<string, unknown>;
}

function isTime(v: unknown): v is number {
  return typeof v === "number" && Number.isFinite(v) && v >= 0;
}

function iso(s: number): string {
  const d = new Date(s * 1000);
  return Number.isNaN(d.getTime()) ? String(s) : d.toISOString().replace(/\.\d{3}Z$/, "Z");
}

/** A span of seconds, in the largest unit that keeps it readable. */
function ago(s: number): string {
  if (s < 120) return `${Math.round(s)} s`;
  if (s < 7_200) return `${Math.round(s / 60)} min`;
  if (s < 172_800) return `${Math.round(s / 3_600)} h`;
  return `${Math.round(s / 86_400)} d`;
}

/**
 * The kid and jti a message claims, read without checking anything, for the
 * result and the audit of a command refused before (or by) its signature check:
 * so the operator can tell which of their commands it was. Clipped; empty when
 * the message is not a token or is large.
 */
export function peekClaims(payload: Uint8Array): { kid?: string; jti?: string } {
  if (payload.length > 8 * 1024) return {};
  const parts = Buffer.from(payload.buffer, payload.byteOffset, payload.length).toString("latin1").trim().split(".");
  if (parts.length !== 3) return {};
  const field = (part: string, key: string): string | undefined => {
    try {
      const v = (JSON.parse(Buffer.from(part, "base64url").toString("utf8")) as Record<string, unknown>)[key];
      return typeof v === "string" ? clip(v) : undefined;
    } catch {
      return undefined;
    }
  };
  const kid = field(parts[0]!, "kid");
  const jti = field(parts[1]!, "jti");
  return { ...(kid !== undefined && { kid }), ...(jti !== undefined && { jti }) };
}
