import crypto, { type KeyObject } from "node:crypto";
import { SignJWT } from "jose";
import type { FleetCmd, FleetTarget } from "./command.js";

/** A new Ed25519 key pair as PEM: PKCS#8 private (for `fleet sign`), SPKI public (for `commands.trust`). */
export function generateSigningKey(): { privatePem: string; publicPem: string } {
  const { privateKey, publicKey } = crypto.generateKeyPairSync("ed25519");
  return {
    privatePem: privateKey.export({ type: "pkcs8", format: "pem" }).toString(),
    publicPem: publicKey.export({ type: "spki", format: "pem" }).toString(),
  };
}

/** The private key of a PEM file, which must be Ed25519; throws an Error saying what it is instead. */
export function parseSigningKey(pem: string, where: string): KeyObject {
  let key: KeyObject;
  try {
    key = crypto.createPrivateKey({ key: pem, format: "pem" });
  } catch {
    throw new Error(`${where} is not a PEM private key (sealcache fleet keygen --out F writes one to F)`);
  }
  if (key.asymmetricKeyType !== "ed25519")
    throw new Error(`${where} is a ${key.asymmetricKeyType ?? "unknown"} key; fleet commands are signed with Ed25519: sealcache fleet keygen`);
  return key;
}

export interface SignRequest {
  readonly key: KeyObject;
  /** The key's name in the gateways' `commands.trust`. */
  readonly kid: string;
  /** A device id, or `fleet`. */
  readonly aud: string;
  readonly cmd: FleetCmd;
  readonly target: FleetTarget;
  readonly ttlMs: number;
  readonly nowMs: number;
  /** Default: a random UUID. */
  readonly jti?: string;
}

/** A signed command (JWS compact, EdDSA) that any MQTT publisher can send. */
export async function signCommand(r: SignRequest): Promise<{ token: string; jti: string; iat: number; exp: number }> {
  const jti = r.jti ?? crypto.randomUUID();
  const iat = Math.floor(r.nowMs / 1000);
  const exp = iat + Math.max(1, Math.round(r.ttlMs / 1000));
  const claims = "all" in r.target ? { cmd: r.cmd, all: true } : { cmd: r.cmd, names: [...r.target.names] };
  const token = await new SignJWT(claims)
    .setProtectedHeader({ alg: "EdDSA", kid: r.kid, typ: "JWT" })
    .setAudience(r.aud)
    .setJti(jti)
    .setIssuedAt(iat)
    .setExpirationTime(exp)
    .sign(r.key);
  return { token, jti, iat, exp };
}
