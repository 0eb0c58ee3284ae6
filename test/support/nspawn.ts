// A debootstrap root booted with systemd as PID 1 (systemd-nspawn --boot), so the
// packaged unit runs under a real service manager: Type=notify, the watchdog, the
// sandbox options and the syscall filter, none of which a chroot exercises.
//
// Made to work where the host has no systemd and hybrid cgroups (v1 controllers,
// name=systemd, cgroup2 at /sys/fs/cgroup/unified): --register=no --keep-unit need
// neither machined nor a bus. nspawn then makes `payload` and `supervisor` cgroups
// below its own, so it is first moved into a cgroup of its own, named for the
// machine (two runs on one box must not share them), removed once it has exited.
// /run/systemd/nspawn (locks, the propagation folder nspawn refuses to delete when
// /run is not a tmpfs) is a tmpfs private to nspawn's mount namespace.
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import type { Run } from "./chroot.js";

/** What the root needs besides the package under test to boot and be managed. */
export const MACHINE_PACKAGES = ["systemd", "dbus"] as const;

const NSPAWN_RUN = "/run/systemd/nspawn";
const PATH_ENV = "PATH=/usr/sbin:/usr/bin:/sbin:/bin";

export interface Machine {
  readonly name: string;
  readonly root: string;
  readonly log: string;
  /** The container's PID 1 (systemd), as this machine's pids count. */
  readonly leader: number;
  readonly nspawn: ChildProcess;
  /** cgroups and /run folders this boot created, removed by stopMachine. */
  readonly leftovers: string[];
}

/**
 * Boots `root` (a Debian root with MACHINE_PACKAGES installed) and waits until
 * systemd reports the boot finished. Returns the state `systemctl
 * is-system-running` gave (`running` or `degraded`). The console goes to `logFile`.
 */
export async function bootMachine(root: string, name: string, logFile: string): Promise<{ machine: Machine; state: string }> {
  const cgroups = machineCgroups(name);
  const leftovers = [...outermostMissing(NSPAWN_RUN), ...cgroups];
  for (const dir of cgroups) fs.mkdirSync(dir);
  fs.mkdirSync(NSPAWN_RUN, { recursive: true });
  const script = `mount -t tmpfs -o mode=0700 tmpfs ${NSPAWN_RUN} && for cg in $CGROUPS; do echo $$ > "$cg/cgroup.procs" || exit 1; done && unset CGROUPS && exec systemd-nspawn "$@"`;
  const fd = fs.openSync(logFile, "a");
  const nspawn = spawn(
    "unshare",
    [
      "--mount",
      "--propagation",
      "private",
      "--",
      "sh",
      "-c",
      script,
      "sh",
      "--boot",
      "--directory",
      root,
      "--machine",
      name,
      "--register=no",
      "--keep-unit",
      "--console=pipe",
    ],
    { stdio: ["ignore", fd, fd], env: { PATH: PATH_ENV.slice(5), LANG: "C.UTF-8", CGROUPS: cgroups.join(" ") } },
  );
  fs.closeSync(fd);
  let machine: Machine | undefined;
  try {
    const leader = await systemdChild(nspawn, logFile);
    machine = { name, root, log: logFile, leader, nspawn, leftovers };
    return { machine, state: await bootFinished(machine) };
  } catch (e) {
    await stopMachine(machine ?? { name, root, log: logFile, leader: 0, nspawn, leftovers });
    throw e;
  }
}

/** Runs a command in the machine (all its namespaces, a clean environment) and waits for it. */
export function inMachine(m: Machine, cmd: string[], opts: { input?: string; env?: Record<string, string>; timeoutMs?: number } = {}): Run {
  const env = [
    "-i",
    PATH_ENV,
    "LANG=C.UTF-8",
    "DEBIAN_FRONTEND=noninteractive",
    "SYSTEMD_PAGER=",
    ...Object.entries(opts.env ?? {}).map(([k, v]) => `${k}=${v}`),
  ];
  const r = spawnSync("nsenter", ["--target", String(m.leader), "--all", "--root", "--wd", "/usr/bin/env", ...env, ...cmd], {
    input: opts.input,
    encoding: "utf8",
    maxBuffer: 64 << 20,
    timeout: opts.timeoutMs ?? 120_000,
  });
  return { status: r.status ?? -1, stdout: r.stdout ?? "", stderr: (r.stderr ?? "") + (r.error ? `\n${r.error.message}` : "") };
}

/** Like inMachine, but throws with the output when the command fails. */
export function mustInMachine(m: Machine, cmd: string[], opts: { input?: string; env?: Record<string, string>; timeoutMs?: number } = {}): Run {
  const r = inMachine(m, cmd, opts);
  if (r.status !== 0) throw new Error(`${cmd.join(" ")} exited ${r.status} in machine ${m.name}\n${r.stdout}\n${r.stderr}`);
  return r;
}

/** `systemctl show -p …` as an object. */
export function unitProperties(m: Machine, unit: string, props: string[]): Record<string, string> {
  const out = mustInMachine(m, ["systemctl", "show", unit, ...props.flatMap((p) => ["-p", p])]).stdout;
  return Object.fromEntries(
    out
      .split("\n")
      .filter(Boolean)
      .map((l) => [l.slice(0, l.indexOf("=")), l.slice(l.indexOf("=") + 1)]),
  );
}

/**
 * Halts the machine (nspawn turns SIGTERM into an orderly poweroff), kills it if
 * that takes over `graceMs`, then removes the cgroups and folders the boot left.
 */
export async function stopMachine(m: Machine, graceMs = 20_000): Promise<void> {
  if (m.nspawn.exitCode === null && m.nspawn.signalCode === null) {
    const exited = new Promise<void>((resolve) => m.nspawn.once("exit", () => resolve()));
    m.nspawn.kill("SIGTERM");
    const timer = setTimeout(() => m.nspawn.kill("SIGKILL"), graceMs);
    await exited;
    clearTimeout(timer);
  }
  for (const dir of m.leftovers) {
    if (dir.startsWith("/sys/fs/cgroup/")) removeCgroupTree(dir);
    else fs.rmSync(dir, { recursive: true, force: true }); // empty here: its contents were on the private tmpfs
  }
}

/** The container's init: nspawn's child once it has exec'd systemd. */
async function systemdChild(nspawn: ChildProcess, logFile: string, timeoutMs = 30_000): Promise<number> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (nspawn.exitCode !== null || nspawn.signalCode !== null) break;
    const children = readOr(`/proc/${nspawn.pid}/task/${nspawn.pid}/children`).trim().split(/\s+/).filter(Boolean);
    const init = children.find((pid) => readOr(`/proc/${pid}/comm`).trim() === "systemd");
    if (init) return Number(init);
    await sleep(100);
  }
  throw new Error(`systemd-nspawn did not start systemd (exit ${nspawn.exitCode ?? nspawn.signalCode})\n${readOr(logFile)}`);
}

async function bootFinished(m: Machine, timeoutMs = 60_000): Promise<string> {
  const deadline = Date.now() + timeoutMs;
  let last = "";
  while (Date.now() < deadline) {
    // Fails until systemd's private socket exists; then waits for the boot to end.
    const r = inMachine(m, ["systemctl", "is-system-running", "--wait"], { timeoutMs: Math.max(1_000, deadline - Date.now()) });
    last = (r.stdout + r.stderr).trim();
    if (/^(running|degraded)$/m.test(r.stdout)) return r.stdout.trim();
    await sleep(200);
  }
  throw new Error(`machine ${m.name} did not finish booting: ${last}\n${readOr(m.log)}`);
}

/**
 * A cgroup named `name` below the caller's, in each hierarchy nspawn --keep-unit
 * uses: name=systemd (v1 or hybrid) and cgroup2 (unified or hybrid).
 */
function machineCgroups(name: string): string[] {
  const own = new Map<string, string>();
  for (const line of fs.readFileSync("/proc/self/cgroup", "utf8").split("\n")) {
    const m = /^(\d+):([^:]*):(.*)$/.exec(line);
    if (m?.[1] === "0" && m[2] === "") own.set("cgroup2", m[3]!);
    else if (m?.[2]?.split(",").includes("name=systemd")) own.set("name=systemd", m[3]!);
  }
  const dirs: string[] = [];
  for (const line of fs.readFileSync("/proc/self/mountinfo", "utf8").split("\n")) {
    const [left, right] = line.split(" - ");
    if (!left || !right) continue;
    const mountPoint = left.split(" ")[4]!;
    const [fstype, , opts = ""] = right.split(" ");
    const key = fstype === "cgroup2" ? "cgroup2" : fstype === "cgroup" && opts.split(",").includes("name=systemd") ? "name=systemd" : undefined;
    const base = key && own.get(key);
    if (base !== undefined) dirs.push(path.join(mountPoint, base, name));
  }
  if (dirs.length === 0) throw new Error("no name=systemd or cgroup2 hierarchy is mounted; systemd-nspawn needs one");
  return dirs;
}

/** rmdir a cgroup and the ones below it, deepest first (cgroupfs has no recursive delete). */
function removeCgroupTree(dir: string): void {
  if (!fs.existsSync(dir)) return;
  for (const e of fs.readdirSync(dir, { withFileTypes: true })) if (e.isDirectory()) removeCgroupTree(path.join(dir, e.name));
  fs.rmdirSync(dir);
}

/** The outermost folder `mkdir -p dir` would create, if any. */
function outermostMissing(dir: string): string[] {
  let missing: string | undefined;
  for (let d = dir; !fs.existsSync(d); d = path.dirname(d)) missing = d;
  return missing ? [missing] : [];
}

function readOr(file: string, fallback = ""): string {
  try {
    return fs.readFileSync(file, "utf8");
  } catch {
    return fallback;
  }
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
