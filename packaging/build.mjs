#!/usr/bin/env node
// `npm run package [-- --arch arm64 ...] [--node 20 ...] [--release N]`:
// bundles the daemon, builds the native addons for each architecture and writes
// a .deb and an .rpm per architecture to dist/packages/, then prints their sizes.
//
// Needs (Debian): dpkg-dev, rpm, g++-aarch64-linux-gnu, g++-arm-linux-gnueabihf;
// nothing here runs on a developer's `npm ci`.
import fs from "node:fs";
import path from "node:path";
import { execFileSync } from "node:child_process";
import { parseArgs } from "node:util";
import { availableParallelism } from "node:os";
import { fileURLToPath } from "node:url";
import { stageTree, installedKiB, LIBDIR } from "./lib/stage.mjs";
import { buildDeb } from "./lib/deb.mjs";
import { buildRpm } from "./lib/rpm.mjs";
import { exposure, idleRssMiB } from "./lib/figures.mjs";
import { ARCHES } from "./native.mjs";

const repo = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
const targets = JSON.parse(fs.readFileSync(path.join(repo, "packaging/targets.json"), "utf8"));

/**
 * @typedef {{ version: string, release: number, epoch: number, maintainer: string, email: string,
 *   homepage: string, summary: string, description: string,
 *   thirdParty: { name: string, version: string, license: string }[] }} Meta
 */

export async function buildPackages({ arches, nodeMajors, release, log = (s) => process.stderr.write(`${s}\n`) }) {
  const meta = readMeta(release);
  log(`bundling (esbuild)`);
  execFileSync(process.execPath, [path.join(repo, "esbuild.config.mjs")], { cwd: repo, stdio: "inherit" });
  const out = path.join(repo, "dist/packages");
  const cacheDir = path.join(repo, ".cache/packaging");
  const plan = arches.map((arch) => {
    if (!targets[arch]) throw new Error(`unknown --arch ${arch}: one of ${Object.keys(targets).join(", ")}`);
    const majors = nodeMajors.length ? nodeMajors.filter((m) => targets[arch].includes(m)) : targets[arch];
    if (!majors.length) throw new Error(`--node ${nodeMajors.join(",")}: ${arch} is built for Node ${targets[arch].join(", ")} only`);
    const work = path.join(repo, "dist/stage", arch);
    return { arch, majors, work, staged: path.join(work, "root"), seconds: 0 };
  });
  // A cold addon build is one long single-threaded compile (sqlite3.c): architectures
  // side by side use the cores that one build leaves idle.
  await eachLimit(plan, availableParallelism(), async (p) => {
    log(`${p.arch}: staging (Node ${p.majors.join(", ")})`);
    const t0 = Date.now();
    p.needs = (await stageTree({ repo, arch: p.arch, root: p.staged, nodeMajors: p.majors, cacheDir, log })).needs;
    p.seconds = (Date.now() - t0) / 1000;
  });
  const results = [];
  for (const { arch, majors, work, staged, seconds, needs } of plan) {
    const deb = buildDeb({ repo, meta, arch, staged, work, out, nodeMajors: majors, needs });
    const rpm = buildRpm({ repo, meta, arch, staged, work, out, nodeMajors: majors });
    // Only the host's own architecture can start here without an emulator.
    const rss = ARCHES[arch].gypArch === process.arch ? await idleRssMiB(staged) : undefined;
    results.push({ arch, deb, rpm, installedKiB: installedKiB(staged), nodeMajors: majors, seconds, rss });
  }
  return results;
}

async function eachLimit(items, limit, fn) {
  const queue = [...items];
  await Promise.all(
    Array.from({ length: Math.min(limit, queue.length) }, async () => {
      while (queue.length) await fn(queue.shift());
    }),
  );
}

function readMeta(release) {
  const pkg = JSON.parse(fs.readFileSync(path.join(repo, "package.json"), "utf8"));
  const lock = JSON.parse(fs.readFileSync(path.join(repo, "package-lock.json"), "utf8"));
  const thirdParty = Object.entries(lock.packages)
    .filter(([k, v]) => k.startsWith("node_modules/") && !v.dev && !v.optional)
    .map(([k, v]) => ({ name: k.replace(/^.*node_modules\//, ""), dir: path.join(repo, k), version: v.version, license: licence(v.license) }))
    .sort((a, b) => (a.name < b.name ? -1 : 1));
  const epoch = Number(process.env.SOURCE_DATE_EPOCH ?? gitEpoch());
  return {
    version: pkg.version,
    release,
    epoch,
    maintainer: "sealcache maintainers <maintainers@sealcache.invalid>",
    email: "maintainers@sealcache.invalid",
    homepage: "https://github.com/sealcache/sealcache",
    summary: "offline-first, encrypted secret cache for edge gateways",
    description: [
      "sealcache syncs pipeline credentials from Vault, AWS Secrets Manager, SSM",
      "Parameter Store, STS or local files while a gateway is online, keeps them in",
      "an envelope-encrypted SQLite cache whose key is sealed to the TPM 2.0, and",
      "serves them to local agents over a Unix socket, to callers identified by",
      "their kernel credentials and allowed by policy. When the link is down the",
      "last good values keep being served, marked stale.",
    ].join("\n"),
    thirdParty,
    notices: notices(thirdParty),
  };
}

/** The licence texts of the bundled npm packages (MIT, BSD and ISC ask for their notice to travel with the code). */
function notices(thirdParty) {
  const parts = ["Third-party software bundled in /usr/lib/sealcache, with its licence texts.\n"];
  for (const p of thirdParty) {
    const files = fs.existsSync(p.dir)
      ? fs
          .readdirSync(p.dir)
          .filter((f) => /^(licen[cs]e|copying|notice)/i.test(f))
          .sort()
      : [];
    const text = files.map((f) => fs.readFileSync(path.join(p.dir, f), "utf8").trim()).join("\n\n");
    parts.push(
      `${"=".repeat(72)}\n${p.name} ${p.version} (${p.license})\n${"=".repeat(72)}\n${text || `Licence: ${p.license} (the package ships no licence file).`}\n`,
    );
  }
  return parts.join("\n");
}

function licence(l) {
  if (typeof l === "string") return l;
  if (Array.isArray(l)) return l.map((x) => x.type ?? x).join(" OR ");
  return l?.type ?? "see package";
}

function gitEpoch() {
  try {
    return execFileSync("git", ["log", "-1", "--format=%ct"], { cwd: repo, encoding: "utf8" }).trim();
  } catch {
    return String(Math.floor(Date.now() / 1000));
  }
}

function mib(bytes) {
  return `${(bytes / 1048576).toFixed(1)} MiB`;
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const { values } = parseArgs({
    options: { arch: { type: "string", multiple: true }, node: { type: "string", multiple: true }, release: { type: "string", default: "1" } },
    strict: true,
  });
  const arches = values.arch?.length ? values.arch : Object.keys(targets);
  const nodeMajors = (values.node ?? []).map(Number);
  const results = await buildPackages({ arches, nodeMajors, release: Number(values.release) });
  const rows = results.map((r) => [
    r.arch,
    `Node ${r.nodeMajors.join("/")}`,
    path.basename(r.deb),
    mib(fs.statSync(r.deb).size),
    mib(fs.statSync(r.rpm).size),
    mib(r.installedKiB * 1024),
    r.rss === undefined ? "-" : `${r.rss.toFixed(0)} MiB`,
    `${r.seconds.toFixed(0)} s`,
  ]);
  const head = ["arch", "addons for", ".deb", ".deb size", ".rpm size", "installed", "idle RSS", "staging time"];
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)));
  const line = (r) => r.map((c, i) => c.padEnd(widths[i])).join("  ");
  console.log(line(head));
  for (const r of rows) console.log(line(r));
  console.log(
    `systemd-analyze security exposure of sealcache.service: ${exposure(path.join(repo, "packaging/files/sealcache.service")) ?? "n/a (no systemd-analyze)"}`,
  );
  console.log(`packages in ${path.relative(process.cwd(), path.join(repo, "dist/packages")) || "."}; the daemon's code is in /${LIBDIR}`);
}
