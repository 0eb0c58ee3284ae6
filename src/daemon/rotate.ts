import fs from "node:fs";
import { Envelope, KEK_BYTES } from "../crypto/envelope.js";
import type { Sodium } from "../crypto/sodium.js";
import { randomBytes } from "../crypto/random.js";
import { SealError, describeError } from "../errors.js";
import { fsyncDir } from "../fsutil.js";
import type { Logger } from "../log.js";
import { loadKekFrom, pendingKekPath, sealedKekPath, writeSealedKek } from "../seal/kek.js";
import type { Sealer } from "../seal/sealer.js";
import { pendingRecoveryPath, recoveryPath, reescrow } from "../seal/recovery.js";
import { keyMatches } from "../store/database.js";
import type { SecretStore } from "../store/store.js";
import type { RollbackCounter } from "../seal/rollback.js";
import { failpoint } from "./failpoint.js";

/**
 * rotate-kek in three steps, each leaving a state that unseals:
 * 1. the new KEK is sealed and written beside the old one (kek.sealed.next);
 * 2. one transaction re-wraps every DEK under it (the commit point);
 * 3. kek.sealed.next replaces kek.sealed (and kek.recovery.next, the new key
 *    escrowed to the same recovery public key, replaces kek.recovery).
 * A crash before 2 commits leaves the old key in use (the pending file is dropped
 * at start); after it, start finishes step 3 (see resolvePendingKek).
 */
export async function rotateKek(o: {
  sodium: Sodium;
  sealer: Sealer;
  dataDir: string;
  store: SecretStore;
  logger: Logger;
  counter?: RollbackCounter | undefined;
}): Promise<Envelope> {
  const { sodium, sealer, dataDir, store, logger, counter } = o;
  // The cache records the bumped counter in the same transaction, before the TPM
  // bumps it: a crash in between leaves the cache ahead, which start repairs.
  const bumped = counter ? { index: counter.index, value: (await counter.read()) + 1 } : undefined;
  const kek = randomBytes(KEK_BYTES);
  const blob = await sealer.seal(kek);
  writeSealedKek(pendingKekPath(dataDir), sealer.type, blob);
  reescrow(sodium, dataDir, kek, pendingRecoveryPath(dataDir));
  failpoint("rotate-kek:pending-written");
  const next = new Envelope(sodium, kek);
  const rows = [...store.metas()].length;
  store.rekey(next, bumped ? { counter: bumped } : {});
  failpoint("rotate-kek:committed");
  promotePending(dataDir);
  failpoint("rotate-kek:swapped");
  if (counter && bumped) {
    const actual = await counter.bump();
    if (actual !== bumped.value) store.recordCounter({ index: counter.index, value: actual });
  }
  logger.info({ rewrapped: rows, seal: sealer.type }, "cache key rotated");
  return next;
}

/**
 * Finishes or undoes a rotation interrupted by a crash, before the store opens:
 * whichever key cache.db was last written under wins. Returns that KEK.
 */
export async function resolvePendingKek(o: {
  sodium: Sodium;
  sealer: Sealer;
  dataDir: string;
  dbFile: string;
  loadCurrent: () => Promise<Uint8Array>;
  logger: Logger;
}): Promise<Uint8Array | undefined> {
  const pending = pendingKekPath(o.dataDir);
  if (!fs.existsSync(pending)) return undefined;
  let next: Uint8Array;
  try {
    next = await loadKekFrom(o.sealer, pending);
  } catch (e) {
    o.logger.warn({ err: describeError(e) }, "an interrupted key rotation left an unusable pending key; discarding it");
    fs.rmSync(pending, { force: true });
    return undefined;
  }
  const probe = new Envelope(o.sodium, Uint8Array.from(next));
  const usesNext = keyMatches(o.dbFile, probe) === true;
  probe.destroy();
  if (usesNext) {
    promotePending(o.dataDir);
    o.logger.warn("finished a key rotation interrupted after its commit: the new cache key is now in kek.sealed");
    return next;
  }
  o.sodium.memzero(next);
  fs.rmSync(pending, { force: true });
  fs.rmSync(pendingRecoveryPath(o.dataDir), { force: true });
  fsyncDir(o.dataDir);
  o.logger.warn("discarded a key rotation interrupted before its commit: the cache stays under the old key");
  const current = await o.loadCurrent();
  if (current.length !== KEK_BYTES) throw new SealError("the cache key has the wrong length");
  return current;
}

/** Step 3: the recovery escrow first, so kek.sealed never runs ahead of it. */
function promotePending(dataDir: string): void {
  if (fs.existsSync(pendingRecoveryPath(dataDir))) fs.renameSync(pendingRecoveryPath(dataDir), recoveryPath(dataDir));
  fs.renameSync(pendingKekPath(dataDir), sealedKekPath(dataDir));
  fsyncDir(dataDir);
}
