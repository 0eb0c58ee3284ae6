import { SealError } from "../errors.js";
import type { Logger } from "../log.js";
import type { SealConfig } from "../config/schema.js";
import type { RollbackCounter } from "../seal/rollback.js";
import type { SecretStore } from "../store/store.js";

/**
 * At start, before serving: the cache must be at least as new as the TPM's
 * anti-rollback counter, or it is an old copy restored to bring back a revoked
 * secret or a rotated-out key. Returns the counter (for rotate-kek) or undefined
 * for seal types without a TPM. Throws SealError to refuse; touches nothing then.
 */
export async function checkAntiRollback(o: { seal: SealConfig; store: SecretStore; dataDir: string; logger: Logger }): Promise<RollbackCounter | undefined> {
  if (o.seal.type === "host") return undefined;
  // Loaded only on TPM gateways, like the TPM sealer itself.
  const { checkRollback, openRollbackCounter, rolledBackError } = await import("../seal/rollback.js");
  const counter = openRollbackCounter({ tcti: o.seal.tcti, index: o.seal.counter_index, logger: o.logger });
  const { value: tpm, created } = await counter.ensure();
  const recorded = o.store.recordedCounter();
  const index = o.seal.counter_index;
  if (recorded !== undefined && recorded.index !== index) {
    throw new SealError(
      `the cache records anti-rollback counter NV index 0x${recorded.index.toString(16)}, but seal.counter_index is 0x${index.toString(16)}; set ` +
        `seal.counter_index back, or move cache.db aside to start an empty cache`,
    );
  }
  if (recorded !== undefined && created) throw rolledBackError({ index, recorded: recorded.value, tpm, dataDir: o.dataDir, created: true });
  if (recorded === undefined) {
    // Nothing recorded is a first run only for an empty cache (or a counter just made).
    if ([...o.store.metas()].length > 0 && !created) throw rolledBackError({ index, recorded: 0, tpm, dataDir: o.dataDir });
    o.store.recordCounter({ index, value: tpm });
    o.logger.info({ index: `0x${index.toString(16)}`, value: tpm, created }, "anti-rollback counter recorded");
    return counter;
  }
  const verdict = checkRollback(recorded.value, tpm);
  if (verdict === "rolled_back") throw rolledBackError({ index, recorded: recorded.value, tpm, dataDir: o.dataDir });
  if (verdict === "advance") {
    // A crash after the cache recorded a bump but before the TPM made it: finish it.
    const now = await counter.advanceTo(recorded.value);
    if (now !== recorded.value) o.store.recordCounter({ index, value: now });
    o.logger.warn({ recorded: recorded.value, tpm: now }, "advanced the anti-rollback counter to what the cache records (an interrupted rotation)");
  }
  return counter;
}
