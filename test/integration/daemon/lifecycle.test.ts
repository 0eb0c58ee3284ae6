// The daemon's life as an operator sees it: one process per data_dir, stop signals
// that always end in the same clean stop, and output that is JSON lines only.
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import crypto from "node:crypto";
import fs from "node:fs";
import path from "node:path";
import { describe, test } from "node:test";
import { stringify } from "yaml";
import { DAEMON_NODE_FLAGS, MAIN, demoConfig, eventually, launch, sleep } from "../../support/daemon.js";
import { FakeAws } from "../../support/fake-aws.js";
import { req } from "../../support/http.js";
import { assertNoLeaks, planted } from "../../support/planted.js";
import { tmpDir } from "../../support/tmp.js";
import { LOCK_FILE } from "../../../src/daemon/data-dir-lock.js";

interface Run {
  readonly pid: number;
  readonly output: () => string;
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  kill(sig: NodeJS.Signals): void;
}

/** A daemon process on a config file, without waiting for anything (launch() waits for its socket). */
function start(configFile: string, env: NodeJS.ProcessEnv = {}): Run {
  const child = spawn(process.execPath, [...DAEMON_NODE_FLAGS, MAIN, "daemon", "--config", configFile], {
    env: { ...process.env, ...env },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let out = "";
  child.stdout.on("data", (c: Buffer) => (out += c.toString("utf8")));
  child.stderr.on("data", (c: Buffer) => (out += c.toString("utf8")));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.on("exit", (code, signal) => resolve({ code, signal })),
  );
  return { pid: child.pid!, output: () => out, exited, kill: (sig) => void child.kill(sig) };
}

function writeConfig(dir: string, name: string, config: Record<string, unknown>): string {
  const file = path.join(dir, name);
  fs.writeFileSync(file, stringify(config));
  return file;
}

/** Every file in data_dir (the lock file aside) with its size and content hash. */
function snapshot(dataDir: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const f of fs.readdirSync(dataDir).sort()) {
    if (f === LOCK_FILE) continue;
    const p = path.join(dataDir, f);
    const st = fs.statSync(p);
    out[f] = st.isFile() ? `${st.size}:${crypto.createHash("sha256").update(fs.readFileSync(p)).digest("hex")}:${st.mtimeMs}` : "dir";
  }
  return out;
}

async function waitFor(run: Run, re: RegExp, ms = 10_000): Promise<void> {
  await eventually(() => re.test(run.output()), ms, `${re} in the daemon output:\n${run.output().slice(-2000)}`);
}

describe("one daemon per data_dir", { timeout: 60_000 }, () => {
  test("a second daemon on the same data_dir (another socket) is refused at once, exit 1, naming the holder's pid, and writes nothing", async (t) => {
    const dir = tmpDir(t);
    const config = demoConfig(dir);
    const d = await launch(t, dir, config, { waitFor: "synced" });
    const dataDir = String(config.data_dir);
    const before = snapshot(dataDir);
    const second = writeConfig(dir, "second.yaml", { ...config, socket: path.join(dir, "second.sock") });
    const t0 = Date.now();
    const run = start(second);
    const { code } = await run.exited;
    assert.equal(code, 1, run.output());
    assert.ok(Date.now() - t0 < 10_000, "refused at once");
    assert.match(
      run.output(),
      new RegExp(`data_dir ${dataDir.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")} is in use by another sealcache process \\(pid ${d.child.pid}\\)`),
    );
    assert.deepEqual(snapshot(dataDir), before, "not a byte of data_dir changed");
    assert.equal(fs.existsSync(path.join(dir, "second.sock")), false, "it never listened");
    const r = await d.get("/v1/secrets/demo/api-token");
    assert.equal(r.status, 200);
    assert.doesNotMatch(d.output(), /quarantin/i, "the serving daemon never saw a foreign row");
    assertNoLeaks(run.output(), "refused daemon output");
  });

  test("the same socket and data_dir: refused at the socket, before data_dir is touched (exit 5)", async (t) => {
    const dir = tmpDir(t);
    const d = await launch(t, dir, demoConfig(dir), { waitFor: "synced" });
    const run = start(d.configFile);
    const { code } = await run.exited;
    assert.equal(code, 5, run.output());
    assert.match(run.output(), /another process is already serving on/);
    assert.doesNotMatch(run.output(), /sync batch/, "it synced nothing");
    assert.equal((await d.get("/v1/health")).status, 200, "the first one still answers on its socket");
  });

  test("two daemons started at the same moment on a fresh data_dir: one serves, the other is refused (no migration race)", async (t) => {
    for (let round = 0; round < 3; round++) {
      const dir = tmpDir(t);
      const config = demoConfig(dir);
      const a = start(writeConfig(dir, "a.yaml", { ...config, socket: path.join(dir, "a.sock") }));
      const b = start(writeConfig(dir, "b.yaml", { ...config, socket: path.join(dir, "b.sock") }));
      const first = await Promise.race([a.exited.then(() => a), b.exited.then(() => b)]);
      const other = first === a ? b : a;
      assert.equal((await first.exited).code, 1, first.output());
      assert.match(first.output(), /in use by another sealcache process/);
      assert.doesNotMatch(first.output() + other.output(), /already exists|duplicate column|SqliteError/);
      const sock = path.join(dir, other === a ? "a.sock" : "b.sock");
      await eventually(async () => (await req(sock, "/v1/secrets/demo/api-token", { timeoutMs: 1000 })).status === 200, 10_000, "the winner serves");
      other.kill("SIGTERM");
      assert.equal((await other.exited).code, 0);
    }
  });

  test("the lock is the kernel's: a daemon killed with SIGKILL leaves nothing that stops the next start", async (t) => {
    const dir = tmpDir(t);
    const d = await launch(t, dir, demoConfig(dir), { waitFor: "synced" });
    await d.kill("SIGKILL");
    const again = await launch(t, dir, demoConfig(dir), { waitFor: "synced" });
    assert.equal((await again.get("/v1/secrets/demo/api-token")).status, 200);
  });

  test("a symlink planted as the lock file is refused, never followed", async (t) => {
    const dir = tmpDir(t);
    const config = demoConfig(dir);
    const dataDir = String(config.data_dir);
    fs.mkdirSync(dataDir, { mode: 0o700 });
    const target = path.join(dir, "elsewhere");
    fs.writeFileSync(target, "untouched");
    fs.symlinkSync(target, path.join(dataDir, "sealcache.lock"));
    const run = start(writeConfig(dir, "c.yaml", config));
    assert.equal((await run.exited).code, 1, run.output());
    assert.match(run.output(), /sealcache\.lock is a symbolic link; remove it/);
    assert.equal(fs.readFileSync(target, "utf8"), "untouched");
  });
});

describe("stop signals", { timeout: 60_000 }, () => {
  test("a second Ctrl-C while stopping is ignored: the stop is always the same clean one", async (t) => {
    for (let round = 0; round < 4; round++) {
      const dir = tmpDir(t);
      const config = demoConfig(dir);
      const run = start(writeConfig(dir, "c.yaml", config));
      await waitFor(run, /"msg":"sync batch applied"/);
      // A terminal's Ctrl-C reaches the whole process group: twice (npm and the daemon), a few ms apart.
      run.kill("SIGINT");
      await sleep(round);
      run.kill("SIGINT");
      const { code, signal } = await run.exited;
      assert.equal(signal, null, `killed by ${signal}:\n${run.output()}`);
      assert.equal(code, 0, run.output());
      assert.match(run.output(), /"msg":"stopping"/);
      assert.match(run.output(), /"msg":"stopped"/);
      const dataDir = String(config.data_dir);
      assert.deepEqual(
        fs.readdirSync(dataDir).filter((f) => /-(wal|shm)$/.test(f)),
        [],
        "SQLite closed cleanly (no -wal/-shm left behind)",
      );
    }
  });

  test("a SIGTERM before the socket listens ends in a clean exit 0, not the default action", async (t) => {
    const dir = tmpDir(t);
    const config = demoConfig(dir);
    const run = start(writeConfig(dir, "c.yaml", config));
    await waitFor(run, /"msg":"starting"/);
    run.kill("SIGTERM");
    const { code, signal } = await run.exited;
    assert.equal(signal, null, `killed by ${signal}:\n${run.output()}`);
    assert.equal(code, 0, run.output());
    assert.match(run.output(), /"msg":"stopped"/);
  });
});

describe("daemon output", { timeout: 60_000 }, () => {
  test("is JSON lines only, with the AWS SDK loaded on Node 20 (its Node-version notice goes through the logger)", async (t) => {
    const fa = await new FakeAws().start();
    t.after(() => fa.stop());
    const value = planted("aws-json-lines");
    fa.putSecret("pipeline/db", value);
    const dir = tmpDir(t);
    const d = await launch(
      t,
      dir,
      {
        data_dir: path.join(dir, "data"),
        socket: path.join(dir, "s.sock"),
        seal: { type: "host" },
        sync: { interval: "30s", timeout: "2s" },
        providers: { sm: { type: "aws-secrets-manager", region: fa.region, endpoint: fa.url } },
        secrets: { "db/password": { provider: "sm", path: "pipeline/db" } },
        log: { level: "debug" },
      },
      { waitFor: "synced", env: { ...fa.env(), AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: "" } },
    );
    assert.equal((await d.get("/v1/secrets/db/password?format=raw")).body, value);
    await d.stop();
    const lines = d
      .output()
      .split("\n")
      .filter((l) => l.trim() !== "");
    assert.ok(lines.length > 5);
    for (const l of lines) assert.doesNotThrow(() => JSON.parse(l), `not a JSON line: ${l.slice(0, 200)}`);
    if (Number(process.versions.node.split(".")[0]) < 22) {
      assert.ok(
        lines.some((l) => /"msg":"process warning"/.test(l) && /NodeVersionSupportWarning/.test(l)),
        "the SDK's notice was routed through the logger",
      );
    }
  });
});
