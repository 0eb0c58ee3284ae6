// The .deb: the staged tree plus Debian's control area, doc files and lintian
// overrides, built by dpkg-deb (no debhelper: nothing here is compiled on the host).
import fs from "node:fs";
import path from "node:path";
import crypto from "node:crypto";
import { execFileSync } from "node:child_process";
import { copyTree, gzip, installedKiB, normalise, write } from "./stage.mjs";

/**
 * TPM libraries are opened with dlopen (native/tpm2), so no shlibs tooling sees
 * them: they are named here. Each has an alternative for the t64 names of newer releases.
 */
const TPM_DEPENDS = [
  "libtss2-esys-3.0.2-0 | libtss2-esys-3.0.2-0t64",
  "libtss2-tctildr0 | libtss2-tctildr0t64",
  "libtss2-tcti-device0 | libtss2-tcti-device0t64",
  "libtss2-mu0 | libtss2-mu-4.0.1-0t64",
  "libtss2-rc0 | libtss2-rc0t64",
];

/**
 * @param {{ repo: string, meta: import("../build.mjs").Meta, arch: string, staged: string, work: string, out: string, nodeMajors: number[], needs: { versions: Record<string, string> } }} o
 * @returns {string} the .deb's path
 */
export function buildDeb(o) {
  const { meta } = o;
  const root = path.join(o.work, "deb");
  copyTree(o.staged, root);
  const doc = "usr/share/doc/sealcache";
  write(root, `${doc}/copyright`, copyright(meta), 0o644);
  write(root, `${doc}/changelog.Debian.gz`, gzip(changelog(meta)), 0o644);
  write(root, `${doc}/THIRD-PARTY-NOTICES.gz`, gzip(meta.notices), 0o644);
  // Example units for agents that use exec and render (README, "Secrets for agents that cannot speak the socket").
  for (const f of fs.readdirSync(path.join(o.repo, "packaging/examples")).sort()) {
    write(root, `${doc}/examples/${f}`, fs.readFileSync(path.join(o.repo, "packaging/examples", f)), 0o644);
  }
  write(root, "usr/share/lintian/overrides/sealcache", fs.readFileSync(path.join(o.repo, "packaging/deb/lintian-overrides")), 0o644);
  normalise(root, meta.epoch);

  const debian = path.join(root, "DEBIAN");
  fs.mkdirSync(debian);
  const ensureUser = fs.readFileSync(path.join(o.repo, "packaging/files/ensure-user.sh"), "utf8").replace(/^/gm, "\t").replace(/^\t$/gm, "");
  for (const script of ["postinst", "prerm", "postrm"]) {
    const text = fs.readFileSync(path.join(o.repo, "packaging/deb", script), "utf8").replace("#ENSURE_USER#\n", ensureUser);
    write(root, `DEBIAN/${script}`, text, 0o755);
  }
  write(root, "DEBIAN/conffiles", "/etc/sealcache/sealcache.yaml\n", 0o644);
  write(root, "DEBIAN/md5sums", md5sums(root, new Set(["etc/sealcache/sealcache.yaml"])), 0o644);
  write(root, "DEBIAN/control", control(meta, o.arch, installedKiB(root), o.nodeMajors, libraryDepends(o.needs)), 0o644);

  fs.mkdirSync(o.out, { recursive: true });
  const file = path.join(o.out, `sealcache_${meta.version}-${meta.release}_${o.arch}.deb`);
  execFileSync("dpkg-deb", ["--root-owner-group", "-Zxz", "-z9", "--build", root, file], {
    stdio: ["ignore", "ignore", "inherit"],
    env: { ...process.env, SOURCE_DATE_EPOCH: String(meta.epoch) },
  });
  return file;
}

/** GLIBCXX symbol version → the GCC release whose libstdc++ first has it. */
const GCC_OF_GLIBCXX = { 28: "10", 29: "11", 30: "12", 31: "13", 32: "13.2", 33: "14" };

/**
 * libc6 and libstdc++6 floors read from the addons' own symbol versions
 * (native.mjs `needs`), so a newer build host or koffi cannot produce a package
 * that installs and then fails in dlopen.
 */
function libraryDepends(needs) {
  const glibc = needs?.versions?.GLIBC;
  const cxx = Number(needs?.versions?.GLIBCXX?.split(".")[2]);
  const gcc = GCC_OF_GLIBCXX[cxx];
  if (!glibc || !gcc)
    throw new Error(`cannot derive libc6/libstdc++6 from the addons' needs ${JSON.stringify(needs?.versions)}: extend GCC_OF_GLIBCXX in packaging/lib/deb.mjs`);
  return [`libc6 (>= ${glibc})`, `libstdc++6 (>= ${gcc})`, "libgcc-s1"];
}

function control(meta, arch, kib, nodeMajors, libraries) {
  // The better-sqlite3 addon is built per Node ABI: the upper bound is the first
  // major this package carries no binding for.
  const nodeHigh = Math.max(...nodeMajors) + 1;
  const depends = [`nodejs (>= ${Math.min(...nodeMajors)})`, `nodejs (<< ${nodeHigh})`, ...libraries, "passwd", ...TPM_DEPENDS];
  return [
    "Package: sealcache",
    `Version: ${meta.version}-${meta.release}`,
    // The packaging's arch names are Debian's.
    `Architecture: ${arch}`,
    `Maintainer: ${meta.maintainer}`,
    `Installed-Size: ${kib}`,
    `Depends: ${depends.join(", ")}`,
    "Section: admin",
    "Priority: optional",
    `Homepage: ${meta.homepage}`,
    `Description: ${meta.summary}`,
    ...meta.description.split("\n").map((l) => (l.trim() === "" ? " ." : ` ${l}`)),
    "",
  ].join("\n");
}

/** dpkg's md5sums, without conffiles (dpkg tracks those in its own status, as dh_md5sums leaves them out). */
function md5sums(root, conffiles) {
  const lines = [];
  const walk = (dir) => {
    for (const e of fs.readdirSync(dir, { withFileTypes: true }).sort((a, b) => (a.name < b.name ? -1 : 1))) {
      const p = path.join(dir, e.name);
      const rel = path.relative(root, p);
      if (rel === "DEBIAN" || conffiles.has(rel)) continue;
      if (e.isDirectory()) walk(p);
      else if (e.isFile()) lines.push(`${crypto.createHash("md5").update(fs.readFileSync(p)).digest("hex")}  ${rel}`);
    }
  };
  walk(root);
  return lines.join("\n") + "\n";
}

function changelog(meta) {
  const date = new Date(meta.epoch * 1000).toUTCString().replace(/GMT$/, "+0000");
  return `sealcache (${meta.version}-${meta.release}) unstable; urgency=medium\n\n  * Release ${meta.version}.\n\n -- ${meta.maintainer}  ${date}\n`;
}

/** Machine-readable debian/copyright; bundled third-party code is listed from the lockfile. */
function copyright(meta) {
  const third = meta.thirdParty.map((p) => ` ${p.name} ${p.version}: ${p.license}`).join("\n");
  return [
    "Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/",
    "Upstream-Name: sealcache",
    `Source: ${meta.homepage}`,
    "",
    "Files: *",
    "Copyright: 2026 sealcache developers",
    "License: Apache-2.0",
    "Comment: /usr/lib/sealcache bundles these npm packages (name version: licence);",
    " their licence texts are in /usr/share/doc/sealcache/THIRD-PARTY-NOTICES.gz:",
    third.replace(/^ /gm, "  "),
    "",
    "License: Apache-2.0",
    " On Debian systems, the full text of the Apache License, Version 2.0 can be",
    " found in the file /usr/share/common-licenses/Apache-2.0.",
    "",
  ].join("\n");
}
