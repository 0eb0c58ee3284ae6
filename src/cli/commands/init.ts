import { loadSodium } from "../../crypto/sodium.js";
import { isSealError } from "../../errors.js";
import { createLogger } from "../../log.js";
import type { Config } from "../../config/schema.js";
import { createKek, sealedKekPath } from "../../seal/kek.js";
import { ensurePrivateDir } from "../../seal/permissions.js";
import { createSealer } from "../../seal/registry.js";
import { loadFull, type GlobalOptions, type Io } from "../context.js";
import { EXIT } from "../exit.js";

/**
 * `init`: create data_dir and seal a new cache key. Refuses if one exists.
 * A refusal here is a failure of the command (exit 1), not an unavailable daemon (5),
 * so seal errors are reported as such rather than by their `sealed` code.
 */
export async function init(g: GlobalOptions, io: Io): Promise<number> {
  const { config } = loadFull(g, true);
  try {
    return await initialise(config, g, io);
  } catch (e) {
    if (!isSealError(e)) throw e;
    io.err(`sealcache: init: ${e.message}\n`);
    return EXIT.failure;
  }
}

async function initialise(config: Config, g: GlobalOptions, io: Io): Promise<number> {
  const sodium = await loadSodium();
  const sealer = await createSealer({ dataDir: config.data_dir, seal: config.seal, sodium, logger: createLogger({ level: "silent" }) });
  ensurePrivateDir(config.data_dir);
  const kek = await createKek(sodium, sealer, config.data_dir);
  sodium.memzero(kek);
  const info = await sealer.describe();
  await sealer.close?.();
  if (g.json) {
    io.out(JSON.stringify({ initialized: true, data_dir: config.data_dir, sealed_key: sealedKekPath(config.data_dir), seal: info.type, warnings: info.warnings }) + "\n");
  } else {
    io.out(`sealed a new cache key in ${sealedKekPath(config.data_dir)} (seal.type ${info.type})\n`);
    for (const w of info.warnings) io.err(`WARNING: ${w}\n`);
  }
  return 0;
}
