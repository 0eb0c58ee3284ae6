// The peer tracker on the real kernel: a real client process connects over a real
// Unix socket; its identity comes from SO_PEERCRED and /proc, and once it exits the
// connection stops speaking for it — with SO_PEERPIDFD (Linux 6.5+) and with the
// start-time fallback, which is forced here so both paths run on this kernel.
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import fs from "node:fs";
import net from "node:net";
import path from "node:path";
import { test } from "node:test";
import { PeerTracker, type Peer, type TrackMode } from "../../../src/server/peers.js";
import { tmpDir } from "../../support/tmp.js";

async function acceptOne(t: Parameters<typeof tmpDir>[0], tracker: PeerTracker) {
  const sock = path.join(tmpDir(t), "p.sock");
  let resolvePeer!: (p: { peer: Peer; socket: net.Socket }) => void;
  const accepted = new Promise<{ peer: Peer; socket: net.Socket }>((r) => (resolvePeer = r));
  const server = net.createServer((socket) => {
    const fd = (socket as unknown as { _handle: { fd: number } })._handle.fd;
    resolvePeer({ peer: tracker.track(fd, tracker.credentials(fd)), socket });
  });
  await new Promise<void>((r) => server.listen(sock, r));
  t.after(() => void server.close());
  // The client connects, then exits when its stdin closes.
  const child = spawn(process.execPath, ["-e", `require("net").connect(${JSON.stringify(sock)}); process.stdin.on("end", () => process.exit(0)).resume();`], {
    stdio: ["pipe", "ignore", "inherit"],
  });
  const exited = new Promise<void>((r) => child.once("exit", () => r()));
  const { peer, socket } = await accepted;
  t.after(() => void socket.destroy());
  return { peer, child, exit: async () => (child.stdin!.end(), await exited) };
}

for (const mode of ["auto", "starttime"] as const) {
  test(`${mode}: a real client's identity at accept, refused once it has exited`, async (t) => {
    const tracker = new PeerTracker(mode === "starttime" ? { mode: "starttime" as TrackMode } : {});
    const { peer, child, exit } = await acceptOne(t, tracker);
    if (mode === "auto") t.diagnostic(`kernel ${fs.readFileSync("/proc/sys/kernel/osrelease", "utf8").trim()}: tracking by ${tracker.mode}`);
    const c = peer.caller;
    assert.ok(c, `identified: ${peer.problem}`);
    assert.equal(c.pid, child.pid);
    assert.equal(c.uid, process.geteuid!());
    assert.equal(c.gid, process.getegid!());
    assert.equal(c.exe, fs.realpathSync(process.execPath));
    const ours = /^Groups:[ \t]*(.*)$/m.exec(fs.readFileSync("/proc/self/status", "utf8"))![1]!.split(/\s+/).filter(Boolean).map(Number);
    assert.deepEqual(c.groups, ours, "supplementary groups, inherited from this process");
    assert.equal(peer.check(), undefined, "alive: the connection speaks for it");
    await exit();
    assert.match(peer.check() ?? "", new RegExp(`the process that opened this connection \\(pid ${child.pid}\\) has exited`));
    peer.release();
  });
}

test("SO_PEERPIDFD where the kernel has it: the pidfd is held while the connection is open and closed with it", async (t) => {
  const [major, minor] = fs.readFileSync("/proc/sys/kernel/osrelease", "utf8").split(".").map(Number) as [number, number];
  if (major < 6 || (major === 6 && minor < 5)) return t.skip(`kernel ${major}.${minor} has no SO_PEERPIDFD; the start-time path is tested above`);
  const link = (fd: string) => {
    try {
      return fs.readlinkSync(`/proc/self/fd/${fd}`);
    } catch {
      return ""; // the directory's own descriptor
    }
  };
  const fds = () => fs.readdirSync("/proc/self/fd").filter((fd) => link(fd).includes("pidfd")).length;
  const before = fds();
  const tracker = new PeerTracker();
  const { peer, exit } = await acceptOne(t, tracker);
  assert.equal(tracker.mode, "pidfd");
  assert.equal(fds(), before + 1, "one pidfd held for the connection");
  await exit();
  assert.ok(peer.check());
  peer.release();
  assert.equal(fds(), before, "released with the connection");
});
