import fs from "node:fs";
import type { MqttConfig } from "../config/schema.js";
import { clipPath, quote } from "../config/quote.js";
import type { FleetCore } from "./core.js";

/** A certificate, key or password file this large is the wrong file. */
const MAX_FILE_BYTES = 1024 * 1024;

/** What one connection attempt presents; wipe() zeroes the key and password once the attempt is over. */
export interface Credentials {
  readonly ca?: Buffer;
  readonly cert?: Buffer;
  readonly key?: Buffer;
  readonly password?: Buffer;
  wipe(): void;
}

/**
 * Reads the TLS files and the password for one attempt. Everything is read again
 * at each attempt, so a renewed client certificate or a rotated password (a new
 * value of `password_secret` synced into the cache) is used at the next
 * connection without a restart. The password comes from `password_file`
 * (one trailing newline dropped) or from the cache (`password_secret`): served
 * from the sealed cache itself, so a gateway rebooting offline can still log in.
 * Throws an Error naming the file or secret; never quotes contents.
 */
export function readCredentials(c: MqttConfig, core: Pick<FleetCore, "secret">): Credentials {
  const read = (file: string | undefined, key: string) => (file === undefined ? undefined : readLimited(file, key));
  let password: Buffer | undefined;
  if (c.password_file !== undefined) {
    password = readLimited(c.password_file, "password_file");
    let end = password.length;
    if (password[end - 1] === 0x0a) end--;
    if (password[end - 1] === 0x0d) end--;
    password = password.subarray(0, end);
  } else if (c.password_secret !== undefined) {
    const v = core.secret(c.password_secret);
    if (!v)
      throw new Error(
        `the MQTT password (mqtt.password_secret ${quote(c.password_secret)}) is not in the cache: not synced yet, revoked, or the cache is sealed`,
      );
    password = Buffer.from(v.buffer, v.byteOffset, v.byteLength);
  }
  const key = read(c.key_file, "key_file");
  return {
    ca: read(c.ca_file, "ca_file"),
    cert: read(c.cert_file, "cert_file"),
    key,
    password,
    wipe() {
      key?.fill(0);
      password?.fill(0);
    },
  };
}

function readLimited(file: string, key: string): Buffer {
  try {
    const st = fs.statSync(file);
    if (!st.isFile()) throw new Error(`mqtt.${key}: ${clipPath(file)} is not a regular file`);
    if (st.size > MAX_FILE_BYTES) throw new Error(`mqtt.${key}: ${clipPath(file)} is ${st.size} bytes, over the 1 MiB limit`);
    return fs.readFileSync(file);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (!code) throw e;
    throw new Error(`mqtt.${key}: cannot read ${clipPath(file)} (${code})`);
  }
}
