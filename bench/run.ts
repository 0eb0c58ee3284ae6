// Runs the benchmarks: all of them, or those named on the command line
// (`npm run bench -- lookup memory`). Figures go to stdout as JSON lines.
import fs from "node:fs";
import { coldstartBench } from "./coldstart.js";
import { fleetBench } from "./fleet.js";
import { contentionBench } from "./contention.js";
import { firstSyncBench } from "./firstsync.js";
import { flashBench } from "./flash.js";
import { idleBench } from "./idle.js";
import { lookupBench } from "./lookup.js";
import { memoryBench } from "./memory.js";
import { syncBench } from "./sync.js";
import { unsealBench } from "./unseal.js";
import { installCleanup } from "./support/cleanup.js";
import { note, printSummary } from "./support/report.js";
import { MAIN } from "./support/servers.js";

// In this order when all run: firstsync builds the 10,000 and 100,000 corpora the
// next three copy (any of them builds what it needs when run alone).
const BENCHES: Record<string, () => Promise<void>> = {
  firstsync: firstSyncBench,
  lookup: lookupBench,
  coldstart: coldstartBench,
  memory: memoryBench,
  idle: idleBench,
  flash: flashBench,
  unseal: unsealBench,
  contention: contentionBench,
  sync: syncBench,
  fleet: fleetBench,
};

async function main(argv: string[]): Promise<number> {
  const unknown = argv.filter((n) => !(n in BENCHES));
  if (unknown.length > 0) {
    note(`unknown bench ${unknown.join(", ")}; choose from ${Object.keys(BENCHES).join(", ")}`);
    return 2;
  }
  if (!fs.existsSync(MAIN)) {
    note(`${MAIN} is missing; run npm run build first (npm run bench does)`);
    return 1;
  }
  installCleanup();
  const started = performance.now();
  const failed: string[] = [];
  for (const name of argv.length > 0 ? argv : Object.keys(BENCHES)) {
    const t = performance.now();
    note(`${name}: running`);
    try {
      await BENCHES[name]!();
      note(`${name}: done in ${((performance.now() - t) / 1000).toFixed(1)} s`);
    } catch (e) {
      // One broken bench must not cost the other ten minutes of figures.
      failed.push(name);
      note(`${name}: FAILED after ${((performance.now() - t) / 1000).toFixed(1)} s: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}`);
    }
  }
  note(`all done in ${((performance.now() - started) / 1000).toFixed(1)} s${failed.length > 0 ? `; FAILED: ${failed.join(", ")}` : ""}`);
  printSummary();
  return failed.length > 0 ? 1 : 0;
}

process.exitCode = await main(process.argv.slice(2));
