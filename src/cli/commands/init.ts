import { loadSodium } from "../../crypto/sodium.js";
import { isSealError } from "../../errors.js";
import { createLogger } from "../../log.js";
import type { Config } from "../../config/schema.js";
import fs from "node:fs";
import { createKek, loadKek, sealedKekPath } from "../../seal/kek.js";
import { createRecovery, openRecovery } from "../../seal/recovery.js";
import { resealKek } from "../../seal/reseal.js";
import { ensurePrivateDir } from "../../seal/permissions.js";
import { createSealer } from "../../seal/registry.js";
import { loadFull, type GlobalOptions, type Io } from "../context.js";
import { EXIT, UsageError } from "../exit.js";

/**
 * `init`: create data_dir and seal a new cache key. Refuses if one exists.
 * A refusal here is a failure of the command (exit 1), not an unavailable daemon (5),
 * so seal errors are reported as such rather than by their `sealed` code.
 */
export async function init(g: GlobalOptions, flags: { reseal: boolean; recoveryKeyFile: string | undefined }, io: Io): Promise<number> {
  const { config } = loadFull(g, true);
  if (flags.recoveryKeyFile && !flags.reseal) throw new UsageError("--recovery-key-file goes with --reseal");
  try {
    return flags.reseal ? await reseal(config, g, flags.recoveryKeyFile, io) : await initialise(config, g, io);
  } catch (e) {
    if (!isSealError(e)) throw e;
    const message = `init: ${e.message}`;
    io.err(g.json ? JSON.stringify({ error: e.code, message }) + "\n" : `sealcache: ${message}\n`);
    return EXIT.failure;
  }
}

async function initialise(config: Config, g: GlobalOptions, io: Io): Promise<number> {
  const sodium = await loadSodium();
  const sealer = await createSealer({ dataDir: config.data_dir, seal: config.seal, sodium, logger: createLogger({ level: "silent" }) });
  ensurePrivateDir(config.data_dir);
  const kek = await createKek(sodium, sealer, config.data_dir);
  let recoveryKey: string | undefined;
  try {
    // A TPM-sealed key is lost with the TPM's state (new board, changed PCRs); the
    // recovery key is the way back. The host sealer's key file is its own backup.
    if (sealer.type !== "host") recoveryKey = await createRecovery(sodium, config.data_dir, kek);
  } finally {
    sodium.memzero(kek);
  }
  const info = await sealer.describe();
  await sealer.close?.();
  if (g.json) {
    io.out(JSON.stringify({ initialized: true, data_dir: config.data_dir, sealed_key: sealedKekPath(config.data_dir), seal: info.type, recovery_key: recoveryKey ?? null, warnings: info.warnings }) + "\n");
  } else {
    io.out(`sealed a new cache key in ${sealedKekPath(config.data_dir)} (seal.type ${info.type})\n`);
    if (recoveryKey) {
      io.out(
        `\nRECOVERY KEY (shown once; keep it off this device):\n\n    ${recoveryKey}\n\n` +
          `It reopens the cache when the TPM no longer unseals it (firmware update, changed PCRs):\n` +
          `    sealcache init --reseal --recovery-key-file FILE\n`,
      );
    }
    for (const w of info.warnings) io.err(`WARNING: ${w}\n`);
  }
  return 0;
}

/**
 * `init --reseal`: seals the existing KEK again to the TPM's current state, after
 * an intended change. The KEK comes from the old seal if it still opens, or from
 * the recovery key.
 */
async function reseal(config: Config, g: GlobalOptions, recoveryKeyFile: string | undefined, io: Io): Promise<number> {
  const sodium = await loadSodium();
  const sealer = await createSealer({ dataDir: config.data_dir, seal: config.seal, sodium, logger: createLogger({ level: "silent" }) });
  try {
    let kek: Uint8Array;
    if (recoveryKeyFile) {
      let text: string;
      try {
        text = fs.readFileSync(recoveryKeyFile, "utf8");
      } catch (e) {
        throw new UsageError(`cannot read --recovery-key-file ${recoveryKeyFile} (${(e as NodeJS.ErrnoException).code ?? "error"})`);
      }
      kek = await openRecovery(config.data_dir, text.trim(), sodium);
    } else {
      kek = await loadKek(sealer, config.data_dir);
    }
    try {
      await resealKek(sealer, config.data_dir, kek);
    } finally {
      sodium.memzero(kek);
    }
    const info = await sealer.describe();
    if (g.json) io.out(JSON.stringify({ resealed: true, sealed_key: sealedKekPath(config.data_dir), seal: info.type, detail: info.detail }) + "\n");
    else io.out(`resealed the cache key in ${sealedKekPath(config.data_dir)} to the current state (seal.type ${info.type}: ${info.detail})\n`);
    return 0;
  } finally {
    await sealer.close?.();
  }
}
