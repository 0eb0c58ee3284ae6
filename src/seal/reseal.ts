import { SealError } from "../errors.js";
import { KEK_BYTES } from "../crypto/envelope.js";
import { readSealedKek, sealedKekPath, writeSealedKek } from "./kek.js";
import type { Sealer } from "./sealer.js";

/**
 * Seals `kek` again with `sealer` (for tpm2: to the current PCR values) and
 * replaces kek.sealed atomically, after checking that the new blob opens to the
 * same key. The KEK comes from the old seal, or from the recovery key
 * (openRecovery in recovery.ts) when the old seal no longer opens.
 */
export async function resealKek(sealer: Sealer, dataDir: string, kek: Uint8Array): Promise<void> {
  if (kek.length !== KEK_BYTES) throw new SealError(`a cache key has ${KEK_BYTES} bytes, not ${kek.length}`);
  const blob = await sealer.seal(kek);
  const check = await sealer.unseal(blob);
  const same = check.length === kek.length && check.every((b, i) => b === kek[i]);
  check.fill(0);
  if (!same) throw new SealError("the resealed cache key did not open to the same key; kek.sealed was left unchanged");
  writeSealedKek(sealedKekPath(dataDir), sealer.type, blob);
}

/** kek.sealed's seal type and blob without unsealing (for status and doctor); undefined when absent or unreadable. */
export function peekSealedKek(dataDir: string): { type: string; blob: Uint8Array } | undefined {
  try {
    return readSealedKek(sealedKekPath(dataDir));
  } catch {
    return undefined;
  }
}
