import { spawn } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import { build } from "esbuild";
import { loadSodium } from "../src/crypto/sodium.js";
import { createLogger } from "../src/log.js";
import { createKek, loadKek } from "../src/seal/kek.js";
import { createSealer } from "../src/seal/registry.js";
import { startSwtpm } from "../test/support/swtpm.js";
import { removeDir, tempDir, track } from "./support/cleanup.js";
import { emit, note } from "./support/report.js";
import { lastColdstartMedianMs } from "./coldstart.js";
import { ROOT } from "./support/servers.js";
import { median, min } from "./support/stats.js";

const RUNS = 10;
const WARM_UNSEALS = 50;
/** The default config's policy: bound to PCR 7 (Secure Boot state), so TPM2_PolicyPCR is part of every unseal. */
const PCRS = [7];
/** Inside node_modules so the bundle resolves koffi and better-sqlite3 from the project, like dist/ does. */
const CHILD = path.join(ROOT, "node_modules/.cache/sealcache-bench/unseal-child.mjs");

// What a daemon start does up to the KEK: libsodium, the sealer from the registry,
// kek.sealed read and unsealed. Bundled like dist/ and run with plain node.
const CHILD_SOURCE = `
import { loadSodium } from "./src/crypto/sodium.ts";
import { createLogger } from "./src/log.ts";
import { loadKek } from "./src/seal/kek.ts";
import { createSealer } from "./src/seal/registry.ts";
const [dataDir, tcti, pcrs] = process.argv.slice(2);
const sodium = await loadSodium();
const sealer = await createSealer({ dataDir, seal: { type: "tpm2", tcti, pcrs: pcrs.split(",").map(Number) }, sodium, logger: createLogger({ level: "silent" }) });
const t1 = performance.now();
const kek = await loadKek(sealer, dataDir);
const t2 = performance.now();
sodium.memzero(kek);
process.stdout.write(JSON.stringify({ kek_at_ms: t2, unseal_ms: t2 - t1 }) + "\\n");
`;

/**
 * Process start to the KEK in memory with seal.type tpm2 on swtpm: a fresh node
 * process loads libsodium, tpm2-tss (koffi) and the sealer, then unseals
 * kek.sealed (SRK, salted policy session, PolicyPCR, Load, Unseal, flushes).
 * swtpm does its crypto in software on the same CPU, so a real TPM is slower per
 * command (tens of ms for an ECC primary) but this CPU is then free.
 */
export async function unsealBench(): Promise<void> {
  const cleanups: (() => void | Promise<void>)[] = [];
  const dir = tempDir("scb-unseal-");
  try {
    const tpm = await startSwtpm({ after: (fn) => cleanups.push(fn) });
    const swtpmProcess = tpm.process();
    if (swtpmProcess) track(swtpmProcess);
    const dataDir = path.join(dir, "data");
    fs.mkdirSync(dataDir, { mode: 0o700 });
    const sodium = await loadSodium();
    const sealer = await createSealer({
      dataDir,
      seal: { type: "tpm2", tcti: tpm.tcti, pcrs: PCRS, counter_index: 0x01005343 },
      sodium,
      logger: createLogger({ level: "silent" }),
    });
    sodium.memzero(await createKek(sealer, dataDir));

    // In a warm process: the unseal alone, connection open to close.
    const warm: number[] = [];
    for (let i = 0; i < WARM_UNSEALS; i++) {
      const t0 = performance.now();
      sodium.memzero(await loadKek(sealer, dataDir));
      warm.push(performance.now() - t0);
    }

    await bundleChild();
    await runChild(dataDir, tpm.tcti); // untimed: page cache
    const wall: number[] = [];
    const inChild: number[] = [];
    const unseal: number[] = [];
    for (let i = 0; i < RUNS; i++) {
      const r = await runChild(dataDir, tpm.tcti);
      wall.push(r.wallMs);
      inChild.push(r.kekAtMs);
      unseal.push(r.unsealMs);
    }
    note(`unseal: spawn to KEK ${wall.map((v) => v.toFixed(0)).join(", ")} ms; unseal alone ${unseal.map((v) => v.toFixed(1)).join(", ")} ms`);
    emit("unseal", "median_ms", median(wall), "ms");
    emit("unseal", "min_ms", min(wall), "ms");
    emit("unseal", "kek_at_median_ms", median(inChild), "ms");
    emit("unseal", "unseal_only_median_ms", median(unseal), "ms");
    emit("unseal", "warm_unseal_median_ms", median(warm), "ms");
    if (lastColdstartMedianMs) emit("unseal", "share_of_coldstart", median(unseal) / lastColdstartMedianMs, "ratio");
  } finally {
    for (const fn of cleanups.reverse()) await fn();
    removeDir(dir);
  }
}

async function bundleChild(): Promise<void> {
  await build({
    stdin: { contents: CHILD_SOURCE, resolveDir: ROOT, sourcefile: "unseal-child.ts", loader: "ts" },
    outfile: CHILD,
    bundle: true,
    format: "esm",
    platform: "node",
    target: "node20",
    external: ["better-sqlite3", "koffi"],
    banner: { js: "import { createRequire as __r } from 'node:module'; const require = __r(import.meta.url);" },
    define: { __SEALCACHE_VERSION__: JSON.stringify("bench") },
    logLevel: "warning",
  });
}

/** Spawn to the child's line on stdout; the child's own clock says when the KEK was in memory. */
function runChild(dataDir: string, tcti: string): Promise<{ wallMs: number; kekAtMs: number; unsealMs: number }> {
  return new Promise((resolve, reject) => {
    const t0 = performance.now();
    const child = track(spawn(process.execPath, [CHILD, dataDir, tcti, PCRS.join(",")], { stdio: ["ignore", "pipe", "pipe"] }));
    let out = "";
    let err = "";
    let wallMs: number | undefined;
    child.stdout.on("data", (c: Buffer) => {
      wallMs ??= performance.now() - t0;
      out += c.toString();
    });
    child.stderr.on("data", (c: Buffer) => (err += c.toString()));
    child.once("error", reject);
    child.once("exit", (code) => {
      if (code !== 0 || wallMs === undefined) return reject(new Error(`unseal child exited ${code}: ${err.slice(-2000)}`));
      const r = JSON.parse(out) as { kek_at_ms: number; unseal_ms: number };
      resolve({ wallMs, kekAtMs: r.kek_at_ms, unsealMs: r.unseal_ms });
    });
  });
}
