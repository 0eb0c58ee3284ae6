#!/usr/bin/env node
// Proves a package's native parts work on their architecture before any package is
// built around them: builds the native tree (packaging/native.mjs), lays the repo's
// dist/ bundle beside it as /usr/lib/sealcache will be, and with the npm Node binary
// of each supported major, under qemu-user for arm64/armhf (natively for amd64):
//   - starts node (how long start-up takes under emulation),
//   - runs `main.mjs --version` from the bundle,
//   - runs a probe bundled like a chunk of main.mjs (chunks/, with better-sqlite3
//     and koffi external) that picks the better-sqlite3 build through
//     src/store/sqlite-binding.ts, writes and reads a SQLite database in WAL mode,
//     and calls libc's getpid() through koffi.
//
//   node packaging/smoke-native.mjs --arch arm64|armhf|amd64 [--node 20 ...] [--cache DIR]
//
// Needs dist/ (npm run build), the cross compilers, qemu-user-static and ccache
// (optional, for speed); the packaged daemon itself is tested by test/package.
import { spawn } from "node:child_process";
import { copyFileSync, cpSync, existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync } from "node:fs";
import path from "node:path";
import { performance } from "node:perf_hooks";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { ARCHES, buildNative, fetchNode, readTargets } from "./native.mjs";

const REPO = fileURLToPath(new URL("..", import.meta.url));

// The probe's source: the same module store.ts uses, bundled by esbuild as the app is.
const PROBE = `
import path from "node:path";
import Database from "better-sqlite3";
import koffi from "koffi";
import { sqliteNativeBinding } from "./src/store/sqlite-binding.ts";

const t0 = performance.now();
const nativeBinding = sqliteNativeBinding();
if (nativeBinding === undefined) throw new Error("no packaged better-sqlite3 build was selected");
const db = new Database(process.argv[2], { nativeBinding });
db.pragma("journal_mode = WAL");
db.exec("CREATE TABLE t (k TEXT PRIMARY KEY, v BLOB) STRICT");
db.prepare("INSERT INTO t VALUES (?, ?)").run("k", Buffer.from([1, 2, 3]));
const row = db.prepare("SELECT k, hex(v) AS v, sqlite_version() AS sqlite FROM t").get();
const mode = db.pragma("journal_mode", { simple: true });
db.close();
const getpid = koffi.load("libc.so.6").func("int getpid(void)");
console.log(JSON.stringify({
  node: process.version, arch: process.arch, abi: process.versions.modules,
  binding: path.relative(path.dirname(path.dirname(nativeBinding)), nativeBinding),
  sqlite: row.sqlite, row: row.k + "=" + row.v, mode,
  koffi: koffi.version, getpid: getpid() === process.pid,
  ms: Math.round(performance.now() - t0),
}));
`;

async function main() {
  const { values } = parseArgs({
    options: {
      arch: { type: "string" },
      node: { type: "string", multiple: true },
      cache: { type: "string", default: path.join(REPO, ".cache/packaging") },
    },
    strict: true,
  });
  const arch = values.arch;
  if (!arch || !ARCHES[arch]) throw new Error(`--arch: one of ${Object.keys(ARCHES).join(", ")}`);
  const majors = values.node?.map(Number) ?? readTargets()[arch];
  const cacheDir = path.resolve(values.cache);
  if (!existsSync(path.join(REPO, "dist/main.mjs"))) throw new Error("dist/main.mjs is missing: run npm run build first");

  const t0 = performance.now();
  const lib = path.join(cacheDir, "smoke", arch, "lib");
  rmSync(path.dirname(lib), { recursive: true, force: true });
  mkdirSync(path.join(lib, "chunks"), { recursive: true });
  copyFileSync(path.join(REPO, "dist/main.mjs"), path.join(lib, "main.mjs"));
  for (const f of readdirSync(path.join(REPO, "dist/chunks"))) {
    if (f.endsWith(".mjs")) copyFileSync(path.join(REPO, "dist/chunks", f), path.join(lib, "chunks", f));
  }
  const built = await buildNative({ arch, nodeMajors: majors, outDir: lib, cacheDir, log: (s) => console.log(s) });
  await bundleProbe(path.join(lib, "chunks/smoke-probe.mjs"));
  for (const b of built.bindings)
    console.log(`  ${(await run("file", ["-b", b.file])).stdout.trim().split(",").slice(0, 3).join(",")}  ${path.basename(b.file)}`);
  const buildSeconds = seconds(t0);

  const rows = [];
  for (const major of majors) {
    const nodeDir = await fetchNode({ arch, major, cacheDir });
    const node = runner(arch, path.join(nodeDir, "bin/node"));
    const start = await timed(node, ["-e", "0"]);
    const version = await timed(node, [path.join(lib, "main.mjs"), "--version"]);
    const tmp = mkdtempSync(path.join(path.dirname(lib), "db-"));
    const probe = await timed(node, [path.join(lib, "chunks/smoke-probe.mjs"), path.join(tmp, "probe.db")]);
    const p = JSON.parse(probe.stdout);
    const want = { abi: String(built.bindings.find((b) => b.major === major)?.abi), mode: "wal", row: "k=010203", getpid: true };
    for (const [k, v] of Object.entries(want))
      if (p[k] !== v) throw new Error(`Node ${major} on ${arch}: probe ${k} is ${p[k]}, expected ${v}: ${probe.stdout}`);
    rows.push([
      `Node ${p.node}`,
      p.arch,
      `ABI ${p.abi}`,
      p.binding,
      `SQLite ${p.sqlite}`,
      `koffi ${p.koffi}`,
      `start ${start.s} s`,
      `--version ${version.s} s (${version.stdout.trim()})`,
      `probe ${probe.s} s (${p.ms} ms in-process)`,
    ]);
  }
  await missingAbiFails(arch, lib, built.bindings[0], cacheDir);
  console.log(`\n${arch}: native tree + probe in ${buildSeconds} s${ARCHES[arch].qemu ? `; run under ${ARCHES[arch].qemu} -L ${ARCHES[arch].sysroot}` : ""}`);
  for (const r of rows) console.log(`  ${r.join("  ")}`);
  console.log(`${arch}: ok`);
}

/** A package without this Node's build refuses with the message sqlite-binding.ts promises, not a dlopen error. */
async function missingAbiFails(arch, lib, binding, cacheDir) {
  const broken = `${lib}-without-v${binding.abi}`;
  cpSync(lib, broken, { recursive: true });
  rmSync(path.join(broken, "native", path.basename(binding.file)));
  const [cmd, ...pre] = runner(arch, path.join(await fetchNode({ arch, major: binding.major, cacheDir }), "bin/node"));
  const r = await run(cmd, [...pre, path.join(broken, "chunks/smoke-probe.mjs"), path.join(broken, "x.db")]).then(
    () => undefined,
    (e) => e.message,
  );
  const want = `no SQLite (better-sqlite3) build for Node ${binding.node} (ABI ${binding.abi})`;
  if (!r?.includes(want)) throw new Error(`without native/${path.basename(binding.file)} the probe should fail with "${want}"; got: ${r ?? "success"}`);
  console.log(`  without ${path.basename(binding.file)}: ${/NativeBindingError: (.*)/.exec(r)?.[1] ?? want}`);
}

/** esbuild's CLI, as a tool like tar: the probe is bundled as esbuild.config.mjs bundles the app. */
async function bundleProbe(outfile) {
  const esbuild = path.join(REPO, "node_modules/.bin/esbuild");
  const args = [
    "--bundle",
    "--format=esm",
    "--platform=node",
    "--target=node20",
    "--external:better-sqlite3",
    "--external:koffi",
    "--sourcefile=probe.mjs",
    "--log-level=warning",
    `--outfile=${outfile}`,
  ];
  await run(esbuild, args, { cwd: REPO, input: PROBE });
}

/** The node binary of arch, through qemu-user with the cross sysroot's libraries unless native. */
function runner(arch, node) {
  const a = ARCHES[arch];
  return a.qemu ? [a.qemu, "-L", a.sysroot, node] : [node];
}

async function timed([cmd, ...pre], args) {
  const t0 = performance.now();
  const r = await run(cmd, [...pre, ...args]);
  return { ...r, s: seconds(t0) };
}

function run(cmd, args, { cwd, input } = {}) {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { cwd, stdio: ["pipe", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (d) => (stdout += d));
    child.stderr.on("data", (d) => (stderr += d));
    child.on("error", reject);
    child.on("close", (code) => (code === 0 ? resolve({ stdout, stderr }) : reject(new Error(`${cmd} ${args.join(" ")} exited ${code}\n${stderr}${stdout}`))));
    child.stdin.end(input ?? "");
  });
}

const seconds = (t0) => (Math.round((performance.now() - t0) / 100) / 10).toFixed(1);

await main();
