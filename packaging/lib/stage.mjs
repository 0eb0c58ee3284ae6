// Lays out the installed file tree for one architecture: the tree both the .deb
// and the .rpm carry. Everything here is deterministic (modes, mtimes, gzip
// headers) so a rebuild from the same commit gives the same payload.
import fs from "node:fs";
import path from "node:path";
import zlib from "node:zlib";
import { execFileSync } from "node:child_process";
import { buildNative } from "../native.mjs";
import { manPage } from "./manpage.mjs";

export const LIBDIR = "usr/lib/sealcache";

/**
 * @param {{ repo: string, arch: string, root: string, nodeMajors: number[], cacheDir: string, log: (s: string) => void }} o
 */
export async function stageTree(o) {
  const { repo, root } = o;
  fs.rmSync(root, { recursive: true, force: true });
  const lib = path.join(root, LIBDIR);
  fs.mkdirSync(lib, { recursive: true });

  // The bundle without its source maps: they would double its size on a gateway.
  const dist = path.join(repo, "dist");
  fs.copyFileSync(path.join(dist, "main.mjs"), path.join(lib, "main.mjs"));
  fs.mkdirSync(path.join(lib, "chunks"));
  for (const f of fs.readdirSync(path.join(dist, "chunks"))) {
    if (f.endsWith(".mjs")) fs.copyFileSync(path.join(dist, "chunks", f), path.join(lib, "chunks", f));
  }
  const native = await buildNative({ arch: o.arch, nodeMajors: o.nodeMajors, outDir: lib, cacheDir: o.cacheDir, log: o.log });

  const flags = JSON.parse(fs.readFileSync(path.join(repo, "packaging/daemon-node-flags.json"), "utf8"));
  // exec, so node is the unit's main PID (Type=notify, NotifyAccess=main).
  write(root, "usr/bin/sealcache", `#!/bin/sh\nexec /usr/bin/node ${flags.join(" ")} /${LIBDIR}/main.mjs "$@"\n`, 0o755);
  write(root, "etc/sealcache/sealcache.yaml", fs.readFileSync(path.join(repo, "packaging/files/sealcache.yaml")), 0o644);
  write(root, "usr/lib/systemd/system/sealcache.service", fs.readFileSync(path.join(repo, "packaging/files/sealcache.service")), 0o644);
  const help = execFileSync(process.execPath, [path.join(dist, "main.mjs"), "--help"], { encoding: "utf8" });
  const version = JSON.parse(fs.readFileSync(path.join(repo, "package.json"), "utf8")).version;
  write(root, "usr/share/man/man1/sealcache.1.gz", gzip(manPage(help, version)), 0o644);
  return { needs: native.needs };
}

/**
 * The packaged launcher's command, read back from an installed or staged tree:
 * node's flags and main.mjs's path inside `root`. The figures and the emulated
 * test start the daemon exactly as the launcher would, with another node in front.
 */
export function launcherCommand(root) {
  const text = fs.readFileSync(path.join(root, "usr/bin/sealcache"), "utf8");
  const m = /^exec \/usr\/bin\/node (.*) \/(usr\/lib\/sealcache\/main\.mjs) "\$@"$/m.exec(text);
  if (!m) throw new Error(`${root}/usr/bin/sealcache is not the launcher stageTree writes:\n${text}`);
  return { flags: m[1].split(" "), main: path.join(root, m[2]) };
}

/** Copies a staged tree and adds files; used to derive the .deb and .rpm roots. */
export function copyTree(from, to) {
  fs.rmSync(to, { recursive: true, force: true });
  fs.cpSync(from, to, { recursive: true, preserveTimestamps: true, verbatimSymlinks: true });
}

export function write(root, rel, data, mode) {
  const file = path.join(root, rel);
  fs.mkdirSync(path.dirname(file), { recursive: true });
  fs.writeFileSync(file, data);
  fs.chmodSync(file, mode);
}

/** gzip -9n: no name, mtime 0 (lintian and reproducible builds want both). */
export function gzip(data) {
  return zlib.gzipSync(data, { level: 9 });
}

/** Directories 0755, files 0644 but the launcher in usr/bin (0755; .node addons are dlopen'ed, not run), every mtime clamped. */
export function normalise(root, epoch) {
  const t = new Date(epoch * 1000);
  const walk = (dir) => {
    for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
      const p = path.join(dir, e.name);
      if (e.isDirectory()) {
        walk(p);
        fs.chmodSync(p, 0o755);
      } else if (e.isFile()) {
        fs.chmodSync(p, path.relative(root, dir) === "usr/bin" ? 0o755 : 0o644);
      }
      fs.lutimesSync(p, t, t);
    }
  };
  walk(root);
  fs.utimesSync(root, t, t);
}

/** Installed size in KiB as dpkg counts it: each file rounded up to 1 KiB, plus one per directory. */
export function installedKiB(root) {
  let kib = 0;
  const walk = (dir) => {
    for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
      if (e.name === "DEBIAN" && dir === root) continue;
      const p = path.join(dir, e.name);
      if (e.isDirectory()) {
        kib += 1;
        walk(p);
      } else kib += Math.ceil(fs.lstatSync(p).size / 1024);
    }
  };
  walk(root);
  return kib;
}
