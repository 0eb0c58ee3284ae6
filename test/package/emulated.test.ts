// The arm64 (and armhf) packages' own files — bundle, launcher flags, native
// addons — run under qemu user-mode emulation with that architecture's Node from
// npm: a real daemon serving a secret over a real socket to this (x86) host.
import assert from "node:assert/strict";
import { execFileSync, spawn, spawnSync } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import { test } from "node:test";
// @ts-expect-error -- plain ESM build script without type declarations
import { ARCHES, fetchNode } from "../../packaging/native.mjs";
// @ts-expect-error -- plain ESM build script without type declarations
import { launcherCommand } from "../../packaging/lib/stage.mjs";
import { eventually, ROOT } from "../support/daemon.js";
import { req } from "../support/http.js";
import { assertNoLeaks, DEMO_VALUES } from "../support/planted.js";
import { builtPackage } from "../support/packages.js";
import { stopChild } from "../support/chroot.js";

// The architectures the packaging runs under qemu; gypArch is also what process.arch says there.
type ArchFacts = { qemu: string | null; sysroot: string; gypArch: string };
const EMULATED = Object.entries(ARCHES as Record<string, ArchFacts>).flatMap(([arch, a]) =>
  a.qemu ? [{ arch, qemu: a.qemu, sysroot: a.sysroot, gypArch: a.gypArch }] : [],
);

for (const { arch, ...emu } of EMULATED) {
  test(`the ${arch} package's daemon runs under ${emu.qemu} and serves a secret over its socket`, async (t) => {
    const deb = builtPackage("deb", arch);
    const work = fs.mkdtempSync(`/tmp/sc-pkg-${arch}-`);
    t.after(() => fs.rmSync(work, { recursive: true, force: true }));
    const root = path.join(work, "root");
    execFileSync("dpkg-deb", ["-x", deb, root]);
    const node = path.join(await fetchNode({ arch, major: 20, cacheDir: path.join(ROOT, ".cache/packaging") }), "bin/node");

    // The packaged launcher, with the emulator in front of its node and the root in front of its paths.
    const { flags, main } = launcherCommand(root) as { flags: string[]; main: string };
    const argv = (...args: string[]) => ["-L", emu.sysroot, node, ...flags, main, ...args];

    fs.mkdirSync(path.join(work, "files"));
    fs.writeFileSync(path.join(work, "files/api-token"), DEMO_VALUES[0]);
    const config = path.join(work, "sealcache.yaml");
    const socket = path.join(work, "sealcache.sock");
    fs.writeFileSync(
      config,
      [
        `data_dir: ${work}/data`,
        `socket: ${socket}`,
        "seal: { type: host }",
        `providers: { local: { type: file, dir: ${work}/files } }`,
        "secrets: { demo/api-token: { provider: local, path: api-token } }",
        "policy: [{ match: { uid: 0 }, allow: ['**'], admin: true }]",
        "",
      ].join("\n"),
    );

    const version = spawnSync(emu.qemu, argv("--version"), { encoding: "utf8" });
    assert.match(version.stdout, /^sealcache \d/, version.stderr);
    const arch_ = spawnSync(emu.qemu, ["-L", emu.sysroot, node, "-p", "process.arch"], { encoding: "utf8" });
    assert.equal(arch_.stdout.trim(), emu.gypArch, "the Node under qemu is the package's architecture");

    const log = path.join(work, "daemon.log");
    const fd = fs.openSync(log, "w");
    const daemon = spawn(emu.qemu, argv("daemon", "--config", config), { stdio: ["ignore", fd, fd] });
    fs.closeSync(fd);
    try {
      const started = Date.now();
      const reply = await eventually(
        async () => {
          const r = await req(socket, "/v1/secrets/demo/api-token").catch(() => undefined);
          return r?.status === 200 ? r : undefined;
        },
        120_000,
        `the ${arch} daemon to serve the secret`,
      );
      t.diagnostic(`${arch} under qemu: first secret served ${((Date.now() - started) / 1000).toFixed(1)} s after start`);
      assert.equal(JSON.parse(reply.body).value, DEMO_VALUES[0]);
      assert.equal(await stopChild(daemon), 0, "the daemon exits 0 on SIGTERM");
    } finally {
      if (daemon.exitCode === null) await stopChild(daemon, "SIGKILL");
      assertNoLeaks(fs.readFileSync(log), `the ${arch} daemon's output`);
    }
  });
}
