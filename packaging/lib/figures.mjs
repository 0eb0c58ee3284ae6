// Figures the package build prints beside the sizes: the unit's systemd exposure
// score, and the idle RSS of the staged daemon started the way the launcher does.
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import net from "node:net";
import { spawn, spawnSync } from "node:child_process";
import { launcherCommand } from "./stage.mjs";

/** `systemd-analyze security --offline` on the unit; undefined where systemd-analyze is missing. */
export function exposure(unitFile) {
  const r = spawnSync("systemd-analyze", ["security", "--offline=true", "--no-pager", unitFile], { encoding: "utf8" });
  const m = /Overall exposure level for \S+: ([\d.]+) (\S+)/.exec(`${r.stdout}${r.stderr}`);
  return m ? `${m[1]} ${m[2]}` : undefined;
}

/**
 * Starts the staged daemon (this machine's Node, so only for its own architecture)
 * on a host-sealed cache with one file secret, waits for its socket, lets it
 * settle and reads VmRSS. Returns MiB, or undefined when it cannot run here.
 */
export async function idleRssMiB(stagedRoot, { settleMs = 3000 } = {}) {
  const { flags, main } = launcherCommand(stagedRoot);
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "sc-rss-"));
  const socket = path.join(dir, "s.sock");
  fs.mkdirSync(path.join(dir, "files"));
  fs.writeFileSync(path.join(dir, "files/token"), "figure-only-not-a-secret\n");
  const config = path.join(dir, "sealcache.yaml");
  fs.writeFileSync(
    config,
    [
      `data_dir: ${dir}/data`,
      `socket: ${socket}`,
      "seal: { type: host }",
      `providers: { local: { type: file, dir: ${dir}/files } }`,
      "secrets: { demo/token: { provider: local, path: token } }",
      "",
    ].join("\n"),
  );
  const child = spawn(process.execPath, [...flags, main, "daemon", "--config", config], { stdio: "ignore" });
  try {
    const deadline = Date.now() + 20_000;
    while (!(await answers(socket))) {
      if (child.exitCode !== null || Date.now() > deadline) return undefined;
      await new Promise((r) => setTimeout(r, 100));
    }
    await new Promise((r) => setTimeout(r, settleMs));
    const kb = /VmRSS:\s+(\d+) kB/.exec(fs.readFileSync(`/proc/${child.pid}/status`, "utf8"));
    return kb ? Number(kb[1]) / 1024 : undefined;
  } finally {
    child.kill("SIGTERM");
    await new Promise((r) => (child.exitCode !== null ? r() : child.once("exit", r)));
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

function answers(socket) {
  return new Promise((resolve) => {
    const c = net.connect(socket, () => (c.end(), resolve(true)));
    c.on("error", () => resolve(false));
  });
}
