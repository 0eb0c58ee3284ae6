// sealcache exec against a real daemon (file provider, secrets rotated by
// rewriting their files and asking for a refresh): CMD gets the secrets in its
// environment only, is restarted once per burst of changes, signalled, and
// supervised (signals forwarded, its status passed on); every refusal comes
// before CMD runs, with its exit code.
import assert from "node:assert/strict";
import fs from "node:fs";
import path from "node:path";
import { after, before, describe, test } from "node:test";
import { fileWhen, processListings, startCli } from "../../support/cli-process.js";
import { cli, demoConfig, eventually, launch, sleep, type RunningDaemon } from "../../support/daemon.js";
import { planted } from "../../support/planted.js";
import { tmpDir } from "../../support/tmp.js";
import { type Scope, suiteScope } from "../../support/scope.js";

/** A daemon whose file provider serves app/* from `dir/secrets`; locked/* is configured but not allowed to anyone. */
async function appDaemon(scope: Scope, files: Record<string, string | Buffer>, extra: Record<string, unknown> = {}) {
  const dir = tmpDir(scope);
  const base = demoConfig(dir);
  const secretsDir = path.join(dir, "secrets");
  for (const [f, v] of Object.entries(files)) fs.writeFileSync(path.join(secretsDir, f), v);
  const secrets: Record<string, unknown> = { ...(base.secrets as object) };
  for (const f of ["token", "rotating", "signal", "stubborn", "later", "later2", "never", "nul", "binary", "restart"])
    secrets[`app/${f}`] = { provider: "demo", path: f };
  secrets["locked/key"] = { provider: "demo", path: "token" };
  const config = { ...base, secrets, policy: [{ match: { uid: 0 }, allow: ["app/**", "demo/**"], admin: true }], ...extra };
  const d = await launch(scope, dir, config, { waitFor: "socket" });
  await eventually(async () => (await d.get("/v1/secrets/app/token")).status === 200, 15_000, "app/token synced");
  return { dir, secretsDir, config, d };
}

/** Rotates a secret as a writer should (temp file, rename) and asks the daemon to fetch it now. */
async function rotate(d: RunningDaemon, secretsDir: string, file: string, value: string): Promise<void> {
  const p = path.join(secretsDir, file);
  fs.writeFileSync(`${p}.new`, value);
  fs.renameSync(`${p}.new`, p);
  const r = await d.get(`/v1/refresh?name=app/${file}`, { method: "POST" });
  assert.equal(r.status, 202, r.body);
}

const lines = (f: string) => (fs.existsSync(f) ? fs.readFileSync(f, "utf8").split("\n").filter(Boolean) : []);
const alive = (pid: number) => {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
};
/** The environment a child printed with `env`, as a map. */
const envOf = (text: string) =>
  new Map(
    text
      .split("\n")
      .filter(Boolean)
      .map((l) => [l.slice(0, l.indexOf("=")), l.slice(l.indexOf("=") + 1)]),
  );

describe("sealcache exec", () => {
  const scope = suiteScope();
  const v = { token: planted("exec-token"), rot1: planted("exec-rot1"), sig1: planted("exec-sig1"), stub1: planted("exec-stub1"), nul: planted("exec-nul") };
  let env: Awaited<ReturnType<typeof appDaemon>>;
  before(async () => {
    env = await appDaemon(scope, {
      token: v.token,
      rotating: v.rot1,
      signal: v.sig1,
      stubborn: v.stub1,
      nul: Buffer.from(`${v.nul}\0after-the-nul`),
      binary: Buffer.from([0xff, 0xfe, 0x00, 0x80]),
    });
  });
  after(async () => {
    await scope.run();
  });
  const sock = () => ["--socket", env.d.socket];

  test("CMD sees the secrets in its environment; one restart per change, changes within 2 s are one; never in argv, ps or output", async (t) => {
    const work = tmpDir(t);
    const starts = path.join(work, "starts");
    const script = `echo $$ >> ${starts}; env > ${work}/env.$$; exec sleep 600`;
    const all = [v.token, v.rot1];
    const ex = startCli(t, [...sock(), "exec", "--env", "TOKEN=app/token", "--env", "ROTATING=app/rotating", "--", "/bin/sh", "-c", script]);
    await fileWhen(starts, (s) => s.trim().split("\n").length === 1);
    const [pid1] = lines(starts).map(Number);
    const e1 = envOf(await fileWhen(path.join(work, `env.${pid1}`), (s) => s.includes("ROTATING=")));
    assert.equal(e1.get("TOKEN"), v.token);
    assert.equal(e1.get("ROTATING"), v.rot1);
    assert.equal(e1.get("PATH"), process.env.PATH, "exec's own environment is passed on");

    // Neither exec's nor CMD's command line holds a value; nor does exec's own environment.
    const listing = processListings();
    for (const val of all) assert.ok(!listing.includes(val), "a value is in some process's command line or in ps");
    assert.ok(!fs.readFileSync(`/proc/${ex.child.pid}/environ`).toString("latin1").includes(v.token), "exec's own environment holds no value");

    const rot2 = planted("exec-rot2");
    await rotate(env.d, env.secretsDir, "rotating", rot2);
    await fileWhen(starts, (s) => s.trim().split("\n").length === 2);
    const pid2 = Number(lines(starts)[1]);
    const e2 = envOf(await fileWhen(path.join(work, `env.${pid2}`), (s) => s.includes("ROTATING=")));
    assert.equal(e2.get("ROTATING"), rot2);
    assert.equal(e2.get("TOKEN"), v.token);
    await eventually(() => !alive(pid1!), 5_000, "the old CMD gone");
    await ex.waitForStderr(new RegExp(`restarted /bin/sh \\(pid ${pid1} -> ${pid2}\\) after a change of app/rotating`));

    // Two rotations 300 ms apart: one restart, with the last value.
    const rot3 = planted("exec-rot3");
    const rot4 = planted("exec-rot4");
    await rotate(env.d, env.secretsDir, "rotating", rot3);
    await sleep(300);
    await rotate(env.d, env.secretsDir, "rotating", rot4);
    await fileWhen(starts, (s) => s.trim().split("\n").length >= 3);
    const pid3 = Number(lines(starts)[2]);
    assert.equal(envOf(await fileWhen(path.join(work, `env.${pid3}`), (s) => s.includes("ROTATING="))).get("ROTATING"), rot4);
    await sleep(3_000);
    assert.equal(lines(starts).length, 3, "exactly one restart for the two changes");

    // A refresh that finds the same value is no change: no restart.
    await env.d.get("/v1/refresh?name=app/rotating", { method: "POST" });
    await sleep(2_500);
    assert.equal(lines(starts).length, 3);

    const status = await ex.stop();
    assert.equal(status, 128 + 15, "CMD (sleep) died of the forwarded SIGTERM: 143, as a shell reports it");
    for (const val of [...all, rot2, rot3, rot4]) assert.ok(!ex.stderr().includes(val) && !ex.stdout().includes(val));
    assert.ok(!alive(pid3), "CMD stopped with exec");
  });

  test("--on-change signal:HUP signals CMD (not restarted) once per change", async (t) => {
    const work = tmpDir(t);
    const log = path.join(work, "log");
    const script = `trap 'echo hup >> ${log}' HUP; echo start >> ${log}; while :; do sleep 0.1; done`;
    const ex = startCli(t, [...sock(), "exec", "--env", "S=app/signal", "--on-change", "signal:HUP", "--", "/bin/sh", "-c", script]);
    await fileWhen(log, (s) => s.includes("start"));
    await rotate(env.d, env.secretsDir, "signal", planted("exec-sig2"));
    await fileWhen(log, (s) => s.includes("hup"));
    await ex.waitForStderr(/sent SIGHUP to \/bin\/sh \(pid \d+\) after a change of app\/signal/);
    await sleep(2_500);
    assert.deepEqual(lines(log), ["start", "hup"], "signalled once, never restarted");
    assert.equal(await ex.stop(), 143);
  });

  test("signals sent to exec reach CMD; exec exits with CMD's status, 128+N for a signal death", async (t) => {
    const work = tmpDir(t);
    const log = path.join(work, "log");
    const script = `trap 'echo usr1 >> ${log}' USR1; trap 'echo hup >> ${log}' HUP; trap 'echo term >> ${log}; exit 7' TERM; echo ready >> ${log}; while :; do sleep 0.1; done`;
    const ex = startCli(t, [...sock(), "exec", "--env", "T=app/token", "--on-change", "none", "--", "/bin/sh", "-c", script]);
    await fileWhen(log, (s) => s.includes("ready"));
    ex.child.kill("SIGUSR1");
    await fileWhen(log, (s) => s.includes("usr1"));
    ex.child.kill("SIGHUP");
    await fileWhen(log, (s) => s.includes("hup"));
    ex.child.kill("SIGTERM");
    assert.equal(await ex.exited, 7);
    assert.deepEqual(lines(log), ["ready", "usr1", "hup", "term"]);

    const killed = startCli(t, [...sock(), "exec", "--env", "T=app/token", "--", "/bin/sh", "-c", `echo up > ${work}/up; exec sleep 600`]);
    await fileWhen(path.join(work, "up"));
    killed.child.kill("SIGINT");
    assert.equal(await killed.exited, 130, "SIGINT death: 128 + 2");

    const r = await cli([...sock(), "exec", "--env", "T=app/token", "--", "/bin/sh", "-c", "exit 3"]);
    assert.equal(r.code, 3, r.stderr);
    assert.equal(r.stderr, "");
  });

  test("CMD not found: 127; not executable: 126 (as a shell)", async (t) => {
    const work = tmpDir(t);
    const r = await cli([...sock(), "exec", "--env", "T=app/token", "--", "/nonexistent/agent", "--flag"]);
    assert.equal(r.code, 127);
    assert.equal(r.stderr, "sealcache: exec: /nonexistent/agent: command not found (ENOENT)\n");
    const j = await cli([...sock(), "--json", "exec", "--env", "T=app/token", "--", "no-such-agent-here"]);
    assert.equal(j.code, 127);
    assert.deepEqual(JSON.parse(j.stderr), { error: "command_not_found", message: "no-such-agent-here: command not found (ENOENT)" });
    const plain = path.join(work, "agent.sh");
    fs.writeFileSync(plain, "#!/bin/sh\necho hi\n", { mode: 0o644 });
    const n = await cli([...sock(), "exec", "--env", "T=app/token", "--", plain]);
    assert.equal(n.code, 126);
    assert.match(n.stderr, /^sealcache: exec: \/.*agent\.sh: cannot run it \(EACCES\): not an executable file, or not allowed\n$/);
  });

  test("a secret that cannot be had stops exec before CMD runs, with its exit code and a message naming it", async (t) => {
    const work = tmpDir(t);
    const marker = path.join(work, "ran");
    const run = (...envs: string[]) => [...sock(), "exec", ...envs.flatMap((e) => ["--env", e]), "--", "/bin/sh", "-c", `touch ${marker}`];
    const cases: [string[], number, RegExp][] = [
      [run("T=app/token", "X=app/unknown"), 3, /^sealcache: not_found: --env X=app\/unknown: no secret named "app\/unknown" is configured\n$/],
      [
        run("KEY=locked/key"),
        4,
        /^sealcache: forbidden: --env KEY=locked\/key: caller uid 0 \(pid \d+\) may not read "locked\/key"; see the policy section of the config\n$/,
      ],
      [run("L=app/later"), 5, /^sealcache: not_synced: --env L=app\/later: secret "app\/later" is configured but has not been fetched yet/],
      [
        run("BLOB=app/nul"),
        1,
        /^sealcache: bad_value: --env BLOB=app\/nul: the value of secret "app\/nul" contains a NUL byte, which an environment variable cannot hold; /,
      ],
      [
        run("BIN=app/binary"),
        1,
        /^sealcache: bad_value: --env BIN=app\/binary: the value of secret "app\/binary" is not UTF-8 text, so it cannot be used as text; read it with sealcache get app\/binary --raw\n$/,
      ],
      [run("1X=app/token"), 2, /^sealcache: --env "1X=app\/token": expected VAR=NAME, VAR a variable name/],
      [run("X=App/Token"), 2, /^sealcache: --env X=App\/Token: secret name "App\/Token" must match/],
      [
        run(...Array.from({ length: 80 }, (_, i) => `V${i}=app/a-rather-long-secret-name-${i}`)),
        2,
        /^sealcache: exec follows at most 256 secrets whose names take at most 1900 bytes together \(one watch request\); these are 80 taking \d+: split them over several exec processes\n$/,
      ],
      [run("X=app/token", "X=app/rotating"), 2, /^sealcache: --env X is given twice\n$/],
      [[...sock(), "exec", "--", "/bin/true"], 2, /^sealcache: exec needs at least one --env VAR=NAME: sealcache exec --env VAR=NAME\.\.\./],
      [[...sock(), "exec", "--env", "T=app/token", "/bin/true"], 2, /^sealcache: exec runs the command given after --: /],
      [[...sock(), "exec", "--env", "T=app/token"], 2, /^sealcache: exec needs the command to run after --: /],
      [
        [...sock(), "exec", "--env", "T=app/token", "--on-change", "reload", "--", "/bin/true"],
        2,
        /^sealcache: --on-change must be restart, none or signal:SIG/,
      ],
      [
        [...sock(), "exec", "--env", "T=app/token", "--on-change", "signal:NOPE", "--", "/bin/true"],
        2,
        /^sealcache: --on-change must be restart, none or signal:SIG/,
      ],
      [[...sock(), "exec", "--env", "T=app/token", "--wait", "soon", "--", "/bin/true"], 2, /^sealcache: --wait must be a duration such as 30s/],
    ];
    for (const [args, code, stderr] of cases) {
      const r = await cli(args);
      assert.equal(r.code, code, `${args.join(" ")}: ${r.stderr}`);
      assert.match(r.stderr, stderr);
      assert.equal(r.stdout, "");
      assert.ok(!fs.existsSync(marker), `CMD ran for ${args.join(" ")}`);
      assert.ok(!r.stderr.includes(v.nul) && !r.stderr.includes("after-the-nul"));
    }
    const j = await cli([...sock(), "--json", "exec", "--env", "KEY=locked/key", "--", "/bin/true"]);
    assert.equal(j.code, 4);
    assert.equal(JSON.parse(j.stderr).error, "forbidden");
  });

  test("--wait waits for a secret that is not synced yet at boot; gives up after DURATION with exit 5", async (t) => {
    const work = tmpDir(t);
    const out = path.join(work, "later");
    const ex = startCli(t, [
      ...sock(),
      "exec",
      "--env",
      "LATER=app/later2",
      "--wait",
      "60s",
      "--",
      "/bin/sh",
      "-c",
      `printf %s "$LATER" > ${out}.tmp; mv ${out}.tmp ${out}; exec sleep 600`,
    ]);
    await ex.waitForStderr(
      /^sealcache exec: waiting up to 60s for the secrets: --env LATER=app\/later2: secret "app\/later2" is configured but has not been fetched yet/m,
    );
    assert.ok(!fs.existsSync(out));
    const later = planted("exec-later");
    await rotate(env.d, env.secretsDir, "later2", later);
    assert.equal(await fileWhen(out), later);
    assert.equal(await ex.stop(), 143);

    const r = await cli([...sock(), "exec", "--env", "N=app/never", "--wait", "1s", "--", "/bin/sh", "-c", `touch ${work}/ran`]);
    assert.equal(r.code, 5, r.stderr);
    assert.match(r.stderr, /waiting up to 1s for the secrets: --env N=app\/never/);
    assert.match(r.stderr, /\nsealcache: not_synced: --env N=app\/never: secret "app\/never" is configured but has not been fetched yet/);
    assert.ok(!fs.existsSync(path.join(work, "ran")));
  });

  test("the daemon down: exit 5 before CMD runs", async (t) => {
    const work = tmpDir(t);
    const r = await cli(["--socket", path.join(work, "none.sock"), "exec", "--env", "T=app/token", "--", "/bin/sh", "-c", `touch ${work}/ran`]);
    assert.equal(r.code, 5);
    assert.match(r.stderr, /^sealcache: unavailable: --env T=app\/token: cannot reach the daemon at .*none\.sock \(ENOENT\)/);
    assert.ok(!fs.existsSync(path.join(work, "ran")));
  });

  test("a CMD that ignores SIGTERM is killed 10 s after it, then started again", async (t) => {
    const work = tmpDir(t);
    const starts = path.join(work, "starts");
    const ex = startCli(t, [
      ...sock(),
      "exec",
      "--env",
      "S=app/stubborn",
      "--",
      "/bin/sh",
      "-c",
      `trap '' TERM; echo $$ >> ${starts}; while :; do sleep 0.1; done`,
    ]);
    await fileWhen(starts);
    const [pid1] = lines(starts).map(Number);
    await rotate(env.d, env.secretsDir, "stubborn", planted("exec-stub2"));
    await sleep(2_000 + 8_000);
    assert.ok(alive(pid1!), "still in its grace period");
    assert.equal(lines(starts).length, 1);
    await fileWhen(starts, (s) => s.trim().split("\n").length === 2, 10_000);
    assert.ok(!alive(pid1!), "killed");
    // This CMD ignores SIGTERM; stopping exec then takes SIGKILL, which is the test's cleanup.
    ex.child.kill("SIGKILL");
    await ex.exited;
    process.kill(Number(lines(starts)[1]), "SIGKILL");
  });
});

test("exec keeps CMD running while the daemon restarts, and follows changes again once it is back", async (t) => {
  const first = planted("exec-dr1");
  const { d, secretsDir, config, dir } = await appDaemon(t, { token: first, restart: first });
  const work = tmpDir(t);
  const starts = path.join(work, "starts");
  const ex = startCli(t, [
    "--socket",
    d.socket,
    "exec",
    "--env",
    "R=app/restart",
    "--",
    "/bin/sh",
    "-c",
    `echo $$ >> ${starts}; printf %s "$R" > ${work}/v.$$; exec sleep 600`,
  ]);
  await fileWhen(starts);
  const [pid1] = lines(starts).map(Number);
  await d.stop();
  await ex.waitForStderr(/cannot watch for changes \(cannot reach the daemon at .*\); \/bin\/sh keeps running with the values it has; retrying with backoff/);
  assert.ok(alive(pid1!), "CMD keeps running while the daemon is down");
  const second = planted("exec-dr2");
  fs.writeFileSync(path.join(secretsDir, "restart"), second);
  const d2 = await launch(t, dir, config, { waitFor: "socket" });
  // The restarted daemon keeps its schedule (the value was fetched moments ago): ask it
  // to fetch now, most likely before exec is back, which then sees the change at once.
  assert.equal((await d2.get("/v1/refresh?name=app/restart", { method: "POST" })).status, 202);
  await ex.waitForStderr(/watching for changes again/, 40_000);
  await fileWhen(starts, (s) => s.trim().split("\n").length === 2, 20_000).catch((e) => {
    throw new Error(`${e}; exec said:\n${ex.stderr()}`);
  });
  const pid2 = Number(lines(starts)[1]);
  assert.equal(await fileWhen(path.join(work, `v.${pid2}`)), second);
  assert.equal(await ex.stop(), 143);
});
