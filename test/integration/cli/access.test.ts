// Permission and readiness messages: a socket outside the account's groups is a
// refusal (exit 4) naming the group to join; not_synced says when the provider is
// offline; doctor before the first start still checks what it can; init --reseal
// with a daemon running says so; a missing default config is named.
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import crypto from "node:crypto";
import fs from "node:fs";
import net from "node:net";
import path from "node:path";
import { after, before, describe, test } from "node:test";
import { stringify } from "yaml";
import { cli, demoConfig, eventually, launch, MAIN, type CliResult, type RunningDaemon } from "../../support/daemon.js";
import { assertNoLeaks } from "../../support/planted.js";
import { startSwtpm } from "../../support/swtpm.js";
import { tmpDir } from "../../support/tmp.js";
import { crossUserUnavailable, ensureTestAccounts, runAs, shareWithGroup, type TestAccounts } from "../../support/users.js";
import { suiteScope } from "../../support/scope.js";

const NODE = fs.realpathSync(process.execPath);

/** A TCP port on 127.0.0.1 nothing listens on (bound, then closed). */
async function closedPort(): Promise<number> {
  const s = net.createServer();
  await new Promise<void>((r) => s.listen(0, "127.0.0.1", r));
  const port = (s.address() as net.AddressInfo).port;
  await new Promise((r) => s.close(r));
  return port;
}

const skip = crossUserUnavailable();
describe("a socket this account may not open", { skip }, () => {
  let acct: TestAccounts;
  let d: RunningDaemon;
  const scope = suiteScope();
  before(async () => {
    acct = ensureTestAccounts();
    const dir = tmpDir(scope);
    d = await launch(scope, dir, demoConfig(dir), { waitFor: "synced" });
    // Open to sc-test-a's own group only: sc-test-b is not in it.
    shareWithGroup(dir, d.socket, acct.a.gid);
  });
  after(async () => {
    await scope.run();
  });

  test("is exit 4 (forbidden), not 5, and the message names the group to join", async () => {
    const r = await runAs(acct.b, [NODE, MAIN, "--socket", d.socket, "get", "demo/api-token"]);
    assert.equal(r.code, 4, r.stderr);
    assert.equal(r.stdout, "");
    assert.equal(
      r.stderr,
      `sealcache: forbidden: this account may not open the socket ${d.socket} (EACCES): its folder ${path.dirname(d.socket)} is open to its group ${acct.a.name} only; ` +
        `add uid ${acct.b.uid} to it (usermod -aG ${acct.a.name} USER) and log in again, or run as an account in that group\n`,
    );
    const j = await runAs(acct.b, [NODE, MAIN, "--socket", d.socket, "--json", "status"]);
    assert.equal(j.code, 4);
    assert.equal(JSON.parse(j.stderr).error, "forbidden");
    // The member of that group gets through the same way.
    const a = await runAs(acct.a, [NODE, MAIN, "--socket", d.socket, "status"]);
    assert.equal(a.code, 0, a.stderr);
  });
});

test("not_synced says that the provider is offline, since when, and why; Retry-After follows its backoff", async (t) => {
  const dir = tmpDir(t);
  fs.writeFileSync(path.join(dir, "vault-token"), "not-a-real-token\n", { mode: 0o600 });
  const port = await closedPort();
  const base = demoConfig(dir);
  const d = await launch(
    t,
    dir,
    {
      ...base,
      providers: {
        ...(base.providers as object),
        vault: { type: "vault", address: `http://127.0.0.1:${port}`, auth: { method: "token", token_file: path.join(dir, "vault-token") } },
      },
      secrets: {
        ...(base.secrets as object),
        "kafka/password": { provider: "vault", path: "secret/data/kafka", key: "password" },
        "demo/later": { provider: "demo", path: "later" },
      },
    },
    { waitFor: "socket" },
  );
  const c = ["--config", d.configFile];
  await eventually(
    async () => (await d.get("/v1/health")).json().providers?.find((p: { name: string }) => p.name === "vault")?.failures > 0,
    10_000,
    "vault failed once",
  );

  await t.test("a provider never reached: offline, no fetch has succeeded yet, with its last error", async () => {
    const r = await d.get("/v1/secrets/kafka/password");
    assert.equal(r.status, 503);
    const j = r.json();
    assert.equal(j.error, "not_synced");
    assert.match(
      j.message,
      /^secret "kafka\/password" is configured but has not been fetched yet; provider vault is offline: no fetch has succeeded yet \(\d+ failed attempts?, the last at \d{4}-\d\d-\d\dT[\d:.]+Z\): \S/,
    );
    const retry = Number(r.headers["retry-after"]);
    assert.ok(Number.isInteger(retry) && retry >= 1 && retry <= 2, `Retry-After follows the 200ms..1s backoff: ${r.headers["retry-after"]}`);
    const g = await cli(["get", "kafka/password", ...c]);
    assert.equal(g.code, 5);
    assert.match(g.stderr, /^sealcache: not_synced: secret "kafka\/password" is configured but has not been fetched yet; provider vault is offline: /);
  });

  await t.test("a provider that went offline: since its last success, with the secret's own error as well", async () => {
    await eventually(async () => (await d.get("/v1/secrets/demo/api-token")).status === 200, 10_000, "demo synced");
    const lastSuccess = (await d.get("/v1/health")).json().providers.find((p: { name: string }) => p.name === "demo").last_success as string;
    fs.renameSync(path.join(dir, "secrets"), path.join(dir, "secrets.away"));
    assert.equal((await d.get("/v1/refresh?name=demo/api-token", { method: "POST" })).status, 202);
    await eventually(
      async () => (await d.get("/v1/health")).json().providers.find((p: { name: string }) => p.name === "demo").failures > 0,
      10_000,
      "demo offline",
    );
    const r = await d.get("/v1/secrets/demo/later");
    assert.equal(r.status, 503);
    const msg = r.json().message as string;
    assert.ok(
      msg.startsWith(
        `secret "demo/later" is configured but has not been fetched yet: last attempt failed (${path.join(dir, "secrets", "later")} does not exist); provider demo is offline since its last success at `,
      ),
      msg,
    );
    assert.match(
      msg,
      new RegExp(
        `offline since its last success at ${lastSuccess.replace(/[.]/g, "\\.")} \\(\\d+ failed attempts?, the last at [^)]+\\): file provider demo: folder ${path.join(dir, "secrets").replace(/[.]/g, "\\.")} is not available \\(ENOENT\\)$`,
      ),
    );
  });
});

test("doctor before the first start: the socket is 'not started yet' (a warning); the policy and the backends it can reach are still checked", async (t) => {
  const dir = tmpDir(t);
  const open = net.createServer((s) => s.destroy());
  await new Promise<void>((r) => open.listen(0, "127.0.0.1", r));
  t.after(() => new Promise((r) => open.close(r)));
  const openPort = (open.address() as net.AddressInfo).port;
  const closed = await closedPort();
  fs.writeFileSync(path.join(dir, "token"), "t\n", { mode: 0o600 });
  const base = demoConfig(dir);
  const vault = (port: number) => ({ type: "vault", address: `http://127.0.0.1:${port}`, auth: { method: "token", token_file: path.join(dir, "token") } });
  const config = {
    ...base,
    providers: { ...(base.providers as object), up: vault(openPort), down: vault(closed) },
    secrets: { ...(base.secrets as object), "up/a": { provider: "up", path: "secret/data/a" }, "down/a": { provider: "down", path: "secret/data/a" } },
    // gid 0 owns the socket's folder (the temp dir): this rule gives every secret to anyone who can reach the socket.
    policy: [
      { match: { gid: 0 }, allow: ["**"] },
      { match: { uid: 0 }, allow: ["**"], admin: true },
    ],
  };
  fs.rmSync(path.join(dir, "secrets", "api-token"));
  const file = path.join(dir, "sealcache.yaml");
  fs.writeFileSync(file, stringify(config));
  const socket = String(base.socket);

  const r = await cli(["doctor", "--config", file]);
  const lines = r.stdout.trimEnd().split("\n");
  assert.deepEqual(
    lines.filter((l) => l.startsWith("fail")),
    [],
    r.stdout,
  );
  assert.equal(r.code, 0, r.stdout);
  for (const want of [
    `warn  socket: ${socket} does not exist yet: the daemon has not been started (no cache in ${String(base.data_dir)} yet); start it: systemctl start sealcache`,
    `warn  backend: demo: 1 of 3 configured files missing in ${path.join(dir, "secrets")}: api-token`,
    `ok    backend: up: http://127.0.0.1:${openPort} accepts connections (checked by doctor; the daemon checks credentials once it runs)`,
    `warn  backend: down: cannot connect to http://127.0.0.1:${closed} (ECONNREFUSED) (checked by doctor; the daemon checks credentials once it runs)`,
    "warn  policy: policy[0] matches every account that can open the socket (gid 0 is the socket's group) and allows every secret; match on a user, unit or exe as well",
  ]) {
    assert.ok(lines.includes(want), `missing ${JSON.stringify(want)} in:\n${r.stdout}`);
  }

  // Once it has run, a missing socket is a daemon that is down: a failure, with the same backend checks.
  fs.writeFileSync(path.join(dir, "secrets", "api-token"), "x\n", { mode: 0o600 });
  const d = await launch(t, dir, { ...config, providers: base.providers, secrets: base.secrets }, { waitFor: "synced" });
  assert.equal(await d.stop(), 0);
  fs.writeFileSync(file, stringify(config));
  const again = await cli(["doctor", "--config", file]);
  assert.equal(again.code, 1);
  const al = again.stdout.split("\n");
  assert.ok(al.includes(`fail  socket: ${socket} does not exist: the daemon is not running (systemctl status sealcache)`), again.stdout);
  assert.ok(al.includes(`ok    backend: demo: ${path.join(dir, "secrets")} holds every configured file (3)`), again.stdout);
});

test("init --reseal with the daemon serving: refused, saying so and what to do; kek.sealed unchanged", async (t) => {
  const dir = tmpDir(t);
  const d = await launch(t, dir, demoConfig(dir), { waitFor: "synced" });
  const kek = path.join(dir, "data", "kek.sealed");
  const hash = () => crypto.createHash("sha256").update(fs.readFileSync(kek)).digest("hex");
  const before = hash();
  const r = await cli(["init", "--reseal", "--config", d.configFile]);
  assert.equal(r.code, 1, r.stdout + r.stderr);
  assert.equal(r.stdout, "");
  assert.equal(
    r.stderr,
    `sealcache: init: the daemon on ${d.socket} is running with the cache key unsealed, and kek.sealed must not change under it; ` +
      "stop it first (systemctl stop sealcache), run sealcache init --reseal again, then start it (systemctl start sealcache)\n",
  );
  assert.equal(hash(), before);
  assert.equal(await d.stop(), 0);
  const stopped = await cli(["init", "--reseal", "--config", d.configFile]);
  assert.equal(stopped.code, 0, stopped.stderr);
  assert.doesNotMatch(stopped.stdout, /daemon/, "with no daemon running, nothing to say about one");
});

test("init --reseal while the daemon waits to unseal (PCR changed): done, the output says the daemon picks it up, and it does", async (t) => {
  const tpm = await startSwtpm(t);
  const dir = tmpDir(t);
  const config = demoConfig(dir, { seal: { type: "tpm2", tcti: tpm.tcti, pcrs: [16] } });
  const file = path.join(dir, "sealcache.yaml");
  fs.writeFileSync(file, stringify(config));
  const init = await cli(["--config", file, "init", "--json"], { allowValues: true });
  assert.equal(init.code, 0, init.stderr);
  const keyFile = path.join(dir, "recovery.txt");
  fs.writeFileSync(keyFile, JSON.parse(init.stdout).recovery_key + "\n", { mode: 0o600 });
  await tpm.extendPcr(16);
  const d = await launch(t, dir, config, { waitFor: "socket" });
  assert.equal((await d.get("/v1/health")).json().sealed, true);
  const r = await cli(["--config", file, "init", "--reseal", "--recovery-key-file", keyFile]);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /^resealed the cache key in .*kek\.sealed to the current state/);
  assert.ok(
    r.stdout.includes(
      `the daemon on ${d.socket} is waiting to unseal; it tries again on its own (at most 5 min apart), or restart it to use the new seal now: systemctl restart sealcache\n`,
    ),
    r.stdout,
  );
  await eventually(async () => (await d.get("/v1/health")).json().sealed === false, 30_000, "the daemon unsealed with the new seal");
  assertNoLeaks(r.stdout + r.stderr, "reseal output");
});

/** The CLI with no --config and no SEALCACHE_* variables, in a mount namespace where /etc/sealcache and /run/sealcache are empty. */
function withoutDefaults(args: string[]): Promise<CliResult> {
  const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith("SEALCACHE_")));
  const script = 'for d in /etc/sealcache /run/sealcache; do if [ -d "$d" ]; then mount -t tmpfs tmpfs "$d"; fi; done; exec "$@"';
  return new Promise((resolve, reject) => {
    const child = spawn("unshare", ["--mount", "--propagation", "private", "sh", "-c", script, "sh", NODE, MAIN, ...args], {
      env,
      stdio: ["ignore", "pipe", "pipe"],
    });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (c: Buffer) => (stdout += c.toString()));
    child.stderr.on("data", (c: Buffer) => (stderr += c.toString()));
    child.on("error", reject);
    child.on("exit", (code) => resolve({ code, stdout, stderr }));
  });
}

test("without --config, a missing default socket with no default config says so and suggests --config / SEALCACHE_CONFIG", async () => {
  for (const cmd of [["get", "demo/api-token"], ["status"], ["list"]]) {
    const r = await withoutDefaults(cmd);
    assert.equal(r.code, 5, r.stderr);
    assert.equal(
      r.stderr,
      "sealcache: unavailable: cannot reach the daemon at /run/sealcache/sealcache.sock (ENOENT): the default config /etc/sealcache/sealcache.yaml was not found either; " +
        "if the daemon runs with another config, pass --config FILE or set SEALCACHE_CONFIG=FILE (or --socket PATH)\n",
    );
  }
});
