import fs from "node:fs";
import path from "node:path";
import { SealError } from "../errors.js";
import { exists, fsyncDir } from "../fsutil.js";
import { randomBytes } from "../crypto/random.js";
import { assertPrivate } from "./permissions.js";
import type { Sealer, SealerInfo, SealerInit } from "./sealer.js";

const FORMAT = 1;
const AD = new TextEncoder().encode("sealcache:kek:host:v1");
export const HOST_KEY_FILE = "host.key";

/**
 * For hardware without a TPM: the KEK is encrypted under a root-only key file in
 * data_dir. It keeps the cache unreadable to other local accounts, not to whoever
 * holds the disk; status and doctor say so every time.
 */
export function create(init: SealerInit): Sealer {
  const keyPath = path.join(init.dataDir, HOST_KEY_FILE);
  const s = init.sodium;

  function readKey(): Uint8Array {
    assertPrivate(init.dataDir, "data_dir");
    if (!exists(keyPath))
      throw new SealError(`host key ${keyPath} is missing; the cache key cannot be unsealed without it (run sealcache init on a fresh data_dir)`);
    assertPrivate(keyPath, "host key");
    const key = new Uint8Array(fs.readFileSync(keyPath));
    if (key.length !== 32) throw new SealError(`host key ${keyPath} has ${key.length} bytes, expected 32; it is not a sealcache host key`);
    return key;
  }

  function createKey(): Uint8Array {
    const key = randomBytes(32);
    const fd = fs.openSync(keyPath, "wx", 0o600);
    try {
      fs.writeSync(fd, key);
      fs.fsyncSync(fd);
    } finally {
      fs.closeSync(fd);
    }
    fsyncDir(init.dataDir);
    return key;
  }

  return {
    type: "host",
    async seal(kek) {
      const key = exists(keyPath) ? readKey() : createKey();
      try {
        const nonce = randomBytes(24);
        const ct = s.crypto_aead_xchacha20poly1305_ietf_encrypt(kek, AD, null, nonce, key);
        const out = new Uint8Array(1 + 24 + ct.length);
        out[0] = FORMAT;
        out.set(nonce, 1);
        out.set(ct, 25);
        return out;
      } finally {
        s.memzero(key);
      }
    },
    async unseal(blob) {
      if (blob.length !== 1 + 24 + 32 + 16 || blob[0] !== FORMAT) throw new SealError(`the sealed cache key is not a host-sealed key (wrong length or format)`);
      const key = readKey();
      try {
        return s.crypto_aead_xchacha20poly1305_ietf_decrypt(null, blob.subarray(25), AD, blob.subarray(1, 25), key);
      } catch {
        throw new SealError(`the sealed cache key does not open with host key ${keyPath}: the key file was replaced or the sealed key was tampered with`);
      } finally {
        s.memzero(key);
      }
    },
    async describe(): Promise<SealerInfo> {
      const warning =
        "seal.type host: the cache key is protected by a key file on the same disk; a stolen disk or SD card yields the cache. Use seal.type tpm2 " +
        "where the device has a TPM.";
      try {
        if (exists(keyPath)) assertPrivate(keyPath, "host key");
        return { type: "host", ok: true, detail: `host key ${keyPath}${exists(keyPath) ? "" : " (not created yet)"}`, warnings: [warning] };
      } catch (e) {
        return { type: "host", ok: false, detail: (e as Error).message, warnings: [warning] };
      }
    },
  };
}
