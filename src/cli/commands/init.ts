import { loadSodium } from "../../crypto/sodium.js";
import { createLogger } from "../../log.js";
import { createKek, sealedKekPath } from "../../seal/kek.js";
import { ensurePrivateDir } from "../../seal/permissions.js";
import { createSealer } from "../../seal/registry.js";
import { loadFull, type GlobalOptions, type Io } from "../context.js";

/** `init`: create data_dir and seal a new cache key. Refuses if one exists. */
export async function init(g: GlobalOptions, io: Io): Promise<number> {
  const { config } = loadFull(g, true);
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
