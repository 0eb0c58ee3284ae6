// A clean Debian root made with debootstrap, for installing the built .deb the
// way an operator would. Commands run chrooted in a private mount namespace with
// the host's /proc mounted, so pids (and SO_PEERCRED) mean the same inside and out,
// and every mount disappears with the process.
import { execFileSync, spawn, spawnSync, type ChildProcess } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import { ROOT } from "./daemon.js";

export const SUITE = "bookworm";
const MIRROR = process.env.SEALCACHE_DEBIAN_MIRROR ?? "http://deb.debian.org/debian";
const CACHE = path.join(ROOT, ".cache/packaging");

/**
 * A fresh root in `dir`. debootstrap's result is kept as a tarball in .cache so a
 * second run on the same machine skips the download (CI starts without it).
 */
export function makeDebianRoot(dir: string): void {
  const tarball = path.join(CACHE, `debootstrap-${SUITE}-minbase.tar`);
  fs.mkdirSync(CACHE, { recursive: true });
  if (!fs.existsSync(tarball)) {
    const tmp = `${tarball}.tmp-${process.pid}`;
    execFileSync("debootstrap", ["--variant=minbase", `--make-tarball=${tmp}`, SUITE, path.join(CACHE, `dbs-work-${process.pid}`), MIRROR], {
      stdio: "ignore",
    });
    fs.renameSync(tmp, tarball);
  }
  execFileSync("debootstrap", ["--variant=minbase", `--unpack-tarball=${tarball}`, SUITE, dir, MIRROR], { stdio: ["ignore", "ignore", "pipe"] });
  fs.copyFileSync("/etc/resolv.conf", path.join(dir, "etc/resolv.conf"));
}

const ENTER = 'mount -t proc proc "$0/proc" && exec chroot "$0" "$@"';

export interface Run {
  status: number;
  stdout: string;
  stderr: string;
}

/** Runs a command inside the root and waits for it. */
export function inRoot(root: string, cmd: string[], opts: { input?: string; env?: Record<string, string> } = {}): Run {
  const r = spawnSync("unshare", ["--mount", "--propagation", "private", "--", "sh", "-c", ENTER, root, "/usr/bin/env", ...envArgs(opts.env), ...cmd], {
    input: opts.input,
    encoding: "utf8",
    maxBuffer: 64 << 20,
  });
  return { status: r.status ?? -1, stdout: r.stdout, stderr: r.stderr };
}

/** Like inRoot, but throws with the output when the command fails. */
export function mustInRoot(root: string, cmd: string[], opts: { env?: Record<string, string> } = {}): Run {
  const r = inRoot(root, cmd, opts);
  if (r.status !== 0) throw new Error(`${cmd.join(" ")} exited ${r.status}\n${r.stdout}\n${r.stderr}`);
  return r;
}

/** Starts a long-running command inside the root; its output goes to `logFile`. */
export function spawnInRoot(root: string, cmd: string[], logFile: string): ChildProcess {
  const fd = fs.openSync(logFile, "a");
  const child = spawn(
    "unshare",
    ["--mount", "--propagation", "private", "--", "sh", "-c", ENTER, root, "/usr/bin/env", "-i", "PATH=/usr/sbin:/usr/bin:/sbin:/bin", ...cmd],
    {
      stdio: ["ignore", fd, fd],
    },
  );
  fs.closeSync(fd);
  return child;
}

function envArgs(env: Record<string, string> = {}): string[] {
  return ["-i", "PATH=/usr/sbin:/usr/bin:/sbin:/bin", "DEBIAN_FRONTEND=noninteractive", "LANG=C.UTF-8", ...Object.entries(env).map(([k, v]) => `${k}=${v}`)];
}

/**
 * The installed nodejs package as a .deb (dpkg-repack): the package depends on
 * `nodejs (>= 20)`, which bookworm's archive does not have, so the root gets it
 * from the same source as this machine's Node.
 */
export function repackHostNode(outDir: string): string {
  const status = spawnSync("dpkg-query", ["-W", "-f=${Version}", "nodejs"], { encoding: "utf8" });
  if (status.status !== 0)
    throw new Error("this machine's Node is not from a nodejs .deb; install nodejs (>= 20) from NodeSource or Debian to run the package tests");
  // One repack per installed version, shared by the test files (they run side by side).
  const cached = path.join(CACHE, `nodejs-repack-${status.stdout.replace(/[^\w.+-]/g, "_")}.deb`);
  if (!fs.existsSync(cached)) {
    fs.mkdirSync(CACHE, { recursive: true });
    const tmp = fs.mkdtempSync(path.join(CACHE, "repack-"));
    try {
      // Uncompressed: xz over Node's 100 MB takes minutes on a small CI box, for a file that lives seconds.
      execFileSync("dpkg-repack", ["--deb-option=-Znone", "nodejs"], { cwd: tmp, stdio: "ignore" });
      const deb = fs.readdirSync(tmp).find((f) => f.startsWith("nodejs_") && f.endsWith(".deb"));
      if (!deb) throw new Error("dpkg-repack nodejs wrote no .deb");
      fs.renameSync(path.join(tmp, deb), cached);
    } finally {
      fs.rmSync(tmp, { recursive: true, force: true });
    }
  }
  const out = path.join(outDir, `nodejs_${status.stdout}_repack.deb`);
  fs.copyFileSync(cached, out);
  return out;
}

/**
 * Kills a process started by spawnInRoot and waits for it: its exit code, or null
 * when a signal ended it. One that outlives `graceMs` is killed with SIGKILL, so a
 * daemon that ignores the signal fails the test instead of keeping the test file's
 * process (and CI) alive forever.
 */
export async function stopChild(child: ChildProcess, signal: NodeJS.Signals = "SIGTERM", graceMs = 20_000): Promise<number | null> {
  if (child.exitCode !== null || child.signalCode !== null) return child.exitCode;
  const done = new Promise<number | null>((resolve) => child.once("exit", (code) => resolve(code)));
  child.kill(signal);
  const timer = setTimeout(() => child.kill("SIGKILL"), graceMs);
  try {
    return await done;
  } finally {
    clearTimeout(timer);
  }
}
