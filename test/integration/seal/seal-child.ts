// Run by the cross-process test: `node --import tsx seal-child.ts init|load TYPE TCTI DATA_DIR`.
// Prints {"sha256": …} of the KEK (never the KEK) so the parent can compare processes.
import { createHash } from "node:crypto";
import { loadSodium } from "../../../src/crypto/sodium.js";
import { createLogger } from "../../../src/log.js";
import { createKek, loadKek } from "../../../src/seal/kek.js";
import { createSealer } from "../../../src/seal/registry.js";

const [op, type, tcti, dataDir] = process.argv.slice(2);
const sodium = await loadSodium();
const sealer = await createSealer({
  dataDir: dataDir!,
  seal: { type: type as "tpm2", tcti: tcti!, pcrs: [16], counter_index: 0x01005343 },
  sodium,
  logger: createLogger({ level: "silent" }),
});
const kek = op === "init" ? await createKek(sealer, dataDir!) : await loadKek(sealer, dataDir!);
process.stdout.write(JSON.stringify({ sha256: createHash("sha256").update(kek).digest("hex") }) + "\n");
sodium.memzero(kek);
await sealer.close?.();
