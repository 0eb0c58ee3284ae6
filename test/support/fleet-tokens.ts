import crypto, { type KeyObject } from "node:crypto";
import { SignJWT } from "jose";

/** A signing key, its public half, and a name: one `commands.trust` entry. */
export interface TestKey {
  readonly kid: string;
  readonly privateKey: KeyObject;
  readonly publicKey: KeyObject;
  readonly publicPem: string;
  readonly privatePem: string;
}

export function testKey(kid = "fleet-ops"): TestKey {
  const { privateKey, publicKey } = crypto.generateKeyPairSync("ed25519");
  return {
    kid,
    privateKey,
    publicKey,
    publicPem: publicKey.export({ type: "spki", format: "pem" }).toString(),
    privatePem: privateKey.export({ type: "pkcs8", format: "pem" }).toString(),
  };
}

/** Claims of a valid command for `aud`, issued at `nowS`, valid for an hour; `patch` overrides (undefined deletes). */
export function claims(aud: string, nowS: number, patch: Record<string, unknown> = {}): Record<string, unknown> {
  const c: Record<string, unknown> = { aud, jti: crypto.randomUUID(), iat: nowS, exp: nowS + 3600, cmd: "refresh", names: ["demo/api-token"], ...patch };
  for (const [k, v] of Object.entries(patch)) if (v === undefined) delete c[k];
  return c;
}

/** A token signed by jose, as an operator's tooling would make it. */
export async function joseToken(key: TestKey, body: Record<string, unknown>, header: Record<string, unknown> = {}): Promise<string> {
  return new SignJWT(body).setProtectedHeader({ alg: "EdDSA", kid: key.kid, ...header } as { alg: string }).sign(key.privateKey);
}

/**
 * A compact JWS put together by hand, for what jose will not sign: `alg: none`,
 * an HMAC header over an Ed25519 signature, a payload that is not JSON. Signed
 * with `key` (Ed25519) over the encoded header and payload unless `signature` is given.
 */
export function rawToken(header: Record<string, unknown>, payload: string | Record<string, unknown>, key?: KeyObject, signature?: string): string {
  const enc = (s: string) => Buffer.from(s).toString("base64url");
  const input = `${enc(JSON.stringify(header))}.${enc(typeof payload === "string" ? payload : JSON.stringify(payload))}`;
  const sig = signature ?? (key ? crypto.sign(null, Buffer.from(input), key).toString("base64url") : "");
  return `${input}.${sig}`;
}
