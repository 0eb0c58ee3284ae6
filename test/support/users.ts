// Real callers as other accounts: test users and a group created on the machine
// (the suite runs as root), client processes started under them with setpriv, and
// a daemon socket opened up to that group.
import { execFileSync, spawn } from "node:child_process";
import fs from "node:fs";
import path from "node:path";

export const GROUP = "sc-test";
export const USERS = ["sc-test-a", "sc-test-b"] as const;
export type TestUser = (typeof USERS)[number];

export interface Account {
  readonly name: string;
  readonly uid: number;
  readonly gid: number;
}

export interface TestAccounts {
  readonly group: { readonly name: string; readonly gid: number };
  readonly a: Account;
  readonly b: Account;
}

/** Why cross-user tests cannot run here, or undefined when they can. */
export function crossUserUnavailable(): string | undefined {
  if (process.geteuid?.() !== 0) return "needs root to create test users and switch to them";
  for (const tool of ["useradd", "groupadd", "setpriv"]) {
    try {
      execFileSync("sh", ["-c", `command -v ${tool}`], { stdio: "ignore" });
    } catch {
      return `${tool} is not installed`;
    }
  }
  return undefined;
}

function lookup(file: string, name: string): { id: number; fields: string[] } | undefined {
  for (const line of fs.readFileSync(file, "utf8").split("\n")) {
    const f = line.split(":");
    if (f[0] === name && f[2] !== undefined) return { id: Number(f[2]), fields: f };
  }
  return undefined;
}

/** Runs useradd/groupadd, retrying while another test file holds the passwd lock. */
function admin(cmd: string, args: string[], exists: () => boolean): void {
  for (let i = 0; ; i++) {
    if (exists()) return;
    try {
      execFileSync(cmd, args, { stdio: ["ignore", "ignore", "pipe"] });
      return;
    } catch (e) {
      if (exists()) return;
      if (i >= 20) throw new Error(`${cmd} ${args.join(" ")} failed: ${String((e as { stderr?: Buffer }).stderr ?? e)}`);
      execFileSync("sleep", ["0.2"]);
    }
  }
}

/**
 * Creates (idempotently) the group sc-test and the system users sc-test-a and
 * sc-test-b, each with its own primary group and sc-test as a supplementary one.
 */
export function ensureTestAccounts(): TestAccounts {
  admin("groupadd", ["--system", GROUP], () => lookup("/etc/group", GROUP) !== undefined);
  for (const u of USERS) {
    admin(
      "useradd",
      ["--system", "--no-create-home", "--shell", "/usr/sbin/nologin", "--user-group", "--groups", GROUP, u],
      () => lookup("/etc/passwd", u) !== undefined,
    );
  }
  const members = lookup("/etc/group", GROUP)!.fields[3]?.split(",") ?? [];
  for (const u of USERS) {
    if (!members.includes(u))
      admin("usermod", ["--append", "--groups", GROUP, u], () => (lookup("/etc/group", GROUP)!.fields[3]?.split(",") ?? []).includes(u));
  }
  const account = (name: string): Account => {
    const p = lookup("/etc/passwd", name)!;
    return { name, uid: p.id, gid: Number(p.fields[3]) };
  };
  return { group: { name: GROUP, gid: lookup("/etc/group", GROUP)!.id }, a: account(USERS[0]), b: account(USERS[1]) };
}

/**
 * Lets the test group reach a daemon's socket: the temp dir becomes root:sc-test
 * 0750 (the secrets and data under it stay root-only) and the socket root:sc-test 0660.
 */
export function shareWithGroup(dir: string, socket: string, gid: number): void {
  fs.chownSync(dir, 0, gid);
  fs.chmodSync(dir, 0o750);
  for (const sub of ["secrets", "data"]) if (fs.existsSync(path.join(dir, sub))) fs.chmodSync(path.join(dir, sub), 0o700);
  if (fs.existsSync(path.join(dir, "sealcache.yaml"))) fs.chmodSync(path.join(dir, "sealcache.yaml"), 0o600);
  fs.chownSync(socket, 0, gid);
  fs.chmodSync(socket, 0o660);
}

export interface Run {
  readonly code: number | null;
  readonly stdout: string;
  readonly stderr: string;
}

/**
 * Starts `argv` as `user` (setpriv: real and effective uid and gid, groups from
 * /etc/group), optionally through `prefix` (a root shell that moves itself into a
 * cgroup first), and collects its output once every holder of its stdio has closed.
 */
export function runAs(user: Account, argv: readonly string[], opts: { cwd?: string; timeoutMs?: number; prefix?: readonly string[] } = {}): Promise<Run> {
  const cmd = [...(opts.prefix ?? []), "setpriv", "--reuid", String(user.uid), "--regid", String(user.gid), "--init-groups", "--", ...argv];
  return new Promise((resolve, reject) => {
    const child = spawn(cmd[0]!, cmd.slice(1), { cwd: opts.cwd ?? "/", stdio: ["ignore", "pipe", "pipe"], env: { PATH: process.env.PATH ?? "/usr/bin:/bin" } });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (c: Buffer) => (stdout += c.toString("utf8")));
    child.stderr.on("data", (c: Buffer) => (stderr += c.toString("utf8")));
    const timer = setTimeout(() => child.kill("SIGKILL"), opts.timeoutMs ?? 30_000);
    child.on("error", reject);
    child.on("close", (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

/** The path of the client program (test/support/client.mjs) copied where test users can read it. */
export function installClient(dir: string): string {
  const target = path.join(dir, "client.mjs");
  fs.copyFileSync(new URL("./client.mjs", import.meta.url), target);
  fs.chmodSync(target, 0o644);
  return target;
}

/** Runs the client program as `user` with one job; returns its JSON answer. */
export async function clientAs<T = unknown>(
  user: Account,
  node: string,
  client: string,
  job: Record<string, unknown>,
  opts: { prefix?: readonly string[]; timeoutMs?: number } = {},
): Promise<T> {
  const r = await runAs(user, [node, client, JSON.stringify(job)], opts);
  if (r.code !== 0) throw new Error(`client as ${user.name} exited ${r.code}: ${r.stderr.slice(-2000)}`);
  try {
    return JSON.parse(r.stdout) as T;
  } catch {
    throw new Error(`client as ${user.name} printed no JSON: ${r.stdout.slice(0, 500)} ${r.stderr.slice(-1000)}`);
  }
}

export interface UnitCgroup {
  /** The cgroup path as /proc/PID/cgroup shows it. */
  readonly path: string;
  /** Put before setpriv in runAs: a root shell that moves itself into the cgroup, then execs the rest. */
  readonly prefix: readonly string[];
  remove(): void;
}

/**
 * A cgroup named like a systemd unit (`/sc-test.slice/NAME`) in the cgroup v2
 * hierarchy, so a client can run "in a unit" on a machine where systemd is not
 * PID 1 (containers, CI). The daemon reads the unit from /proc/PID/cgroup exactly
 * as it would for a unit systemd started. Returns why not, where there is no
 * writable cgroup v2 mount.
 */
export function unitCgroup(unit: string): UnitCgroup | string {
  const mount = fs
    .readFileSync("/proc/self/mountinfo", "utf8")
    .split("\n")
    .map((l) => l.split(" "))
    .find((f) => f[f.indexOf("-") + 1] === "cgroup2" && f[3] === "/")?.[4];
  if (!mount) return "no cgroup v2 hierarchy is mounted";
  const slice = path.join(mount, "sc-test.slice");
  const dir = path.join(slice, unit);
  try {
    fs.mkdirSync(dir, { recursive: true });
  } catch (e) {
    return `cannot create a cgroup under ${mount}: ${(e as NodeJS.ErrnoException).code}`;
  }
  return {
    path: `/sc-test.slice/${unit}`,
    prefix: ["sh", "-c", 'echo $$ > "$0" && exec "$@"', path.join(dir, "cgroup.procs")],
    remove() {
      // Empty once its processes have exited; rmdir fails while any is still there.
      for (const d of [dir, slice]) {
        for (let i = 0; i < 50; i++) {
          try {
            fs.rmdirSync(d);
            break;
          } catch (e) {
            const code = (e as NodeJS.ErrnoException).code;
            if (code === "ENOENT" || (d === slice && code === "EBUSY")) break; // another test's unit is still in the slice
            execFileSync("sleep", ["0.1"]);
          }
        }
      }
    },
  };
}
