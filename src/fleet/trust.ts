import crypto, { type KeyObject } from "node:crypto";
import fs from "node:fs";
import { clipPath } from "../config/quote.js";

/** A PEM public key is ~110 bytes; anything much bigger is the wrong file. */
const MAX_KEY_FILE_BYTES = 64 * 1024;

/** The keys of `commands.trust` that could be used, and why each other one could not. */
export interface TrustKeys {
  readonly keys: ReadonlyMap<string, KeyObject>;
  /** Key name → why it is not usable (unreadable, not a PEM public key, not Ed25519). */
  readonly problems: ReadonlyMap<string, string>;
}

/**
 * Reads every `commands.trust` key. A bad key is reported, not fatal: the other
 * keys keep working, and a command naming the bad one is refused with the reason
 * (`unknown_kid`), so one stray file does not cut a gateway off from its fleet.
 */
export function loadTrust(trust: Readonly<Record<string, string>>): TrustKeys {
  const keys = new Map<string, KeyObject>();
  const problems = new Map<string, string>();
  for (const [name, file] of Object.entries(trust)) {
    try {
      keys.set(name, readTrustKey(file));
    } catch (e) {
      problems.set(name, (e as Error).message);
    }
  }
  return { keys, problems };
}

/**
 * One trust key: a PEM SPKI Ed25519 public key (what `sealcache fleet keygen`
 * writes to F.pub). A private key is refused rather than used for its public
 * half: it has no business on a gateway, and the message says so.
 */
export function readTrustKey(file: string): KeyObject {
  let text: string;
  try {
    const st = fs.statSync(file);
    if (!st.isFile()) throw Object.assign(new Error("not a regular file"), { code: "EISDIR" });
    if (st.size > MAX_KEY_FILE_BYTES) throw new Error(`${clipPath(file)} is ${st.size} bytes: not a PEM public key (one is ~110 bytes)`);
    text = fs.readFileSync(file, "latin1");
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (!code) throw e;
    throw new Error(`cannot read ${clipPath(file)} (${code})`);
  }
  if (/-----BEGIN [A-Z ]*PRIVATE KEY-----/.test(text)) {
    throw new Error(
      `${clipPath(file)} holds a private key; commands.trust takes the public key (the .pub file sealcache fleet keygen wrote). Move the private ` +
        `key off this gateway`,
    );
  }
  let key: KeyObject;
  try {
    key = crypto.createPublicKey({ key: text, format: "pem" });
  } catch {
    throw new Error(`${clipPath(file)} is not a PEM public key (-----BEGIN PUBLIC KEY-----, as sealcache fleet keygen writes)`);
  }
  if (key.asymmetricKeyType !== "ed25519") {
    throw new Error(
      `${clipPath(file)} is a ${key.asymmetricKeyType ?? "unknown"} key; fleet commands are signed with Ed25519 (EdDSA) keys: sealcache fleet keygen`,
    );
  }
  return key;
}
