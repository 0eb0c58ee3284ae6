// sealcache render against a real daemon: templates with {{ secret "NAME" }}
// written whole (temp file, rename) with mode 0600, re-rendered by --watch through
// rotations and a daemon restart with --on-change run once per change; templates
// that do not parse, names refused by policy and bad --out folders fail before any
// file is touched.
import assert from "node:assert/strict";
import fs from "node:fs";
import path from "node:path";
import { describe, test } from "node:test";
import { fileWhen, processListings, startCli } from "../../support/cli-process.js";
import { MAIN, cli, demoConfig, eventually, launch, sleep, type RunningDaemon } from "../../support/daemon.js";
import { planted } from "../../support/planted.js";
import { tmpDir } from "../../support/tmp.js";
import { crossUserUnavailable, ensureTestAccounts, runAs } from "../../support/users.js";

type Scope = { after(fn: () => void | Promise<void>): void };
const mode = (p: string) => fs.statSync(p).mode & 0o7777;

async function appDaemon(t: Scope, files: Record<string, string>) {
  const dir = tmpDir(t);
  const base = demoConfig(dir);
  const secretsDir = path.join(dir, "secrets");
  for (const [f, v] of Object.entries(files)) fs.writeFileSync(path.join(secretsDir, f), v);
  const secrets: Record<string, unknown> = { ...(base.secrets as object) };
  for (const f of Object.keys(files)) secrets[`app/${f}`] = { provider: "demo", path: f };
  secrets["app/later"] = { provider: "demo", path: "later" };
  secrets["locked/key"] = { provider: "demo", path: Object.keys(files)[0] };
  const config = { ...base, secrets, policy: [{ match: { uid: 0 }, allow: ["app/**", "demo/**"], admin: true }] };
  const d = await launch(t, dir, config, { waitFor: "socket" });
  await eventually(async () => (await d.get(`/v1/secrets/app/${Object.keys(files)[0]}`)).status === 200, 15_000, "synced");
  return { dir, secretsDir, config, d };
}

async function rotate(d: RunningDaemon, secretsDir: string, file: string, value: string): Promise<void> {
  const p = path.join(secretsDir, file);
  fs.writeFileSync(`${p}.new`, value);
  fs.renameSync(`${p}.new`, p);
  assert.equal((await d.get(`/v1/refresh?name=app/${file}`, { method: "POST" })).status, 202);
}

const runs = (f: string) => (fs.existsSync(f) ? fs.readFileSync(f, "utf8").split("\n").filter(Boolean).length : 0);

test("render --watch: two rotations and a daemon restart; every read sees a whole file, mode 0600; --on-change once per change", async (t) => {
  const db1 = planted("render-db1");
  const tok = planted("render-tok");
  const { d, secretsDir, config, dir } = await appDaemon(t, { db: db1, token: tok });
  const work = tmpDir(t);
  const tplDb = path.join(work, "db.conf.tpl");
  const tplTok = path.join(work, "token.env.tpl");
  fs.writeFileSync(tplDb, '# rendered by sealcache\nuser=pipeline\npassword={{ secret "app/db" }}\n{{!-- a comment --}}\nbraces=\\{{ kept }}\n');
  fs.writeFileSync(tplTok, 'TOKEN={{ secret "app/token" }}\nDB={{secret "app/db"}}\n');
  const outDb = path.join(work, "db.conf");
  const outTok = path.join(work, "token.env");
  const pairs = ["--template", tplDb, "--out", outDb, "--template", tplTok, "--out", outTok];
  const dbText = (v: string) => `# rendered by sealcache\nuser=pipeline\npassword=${v}\nbraces={{ kept }}\n`;

  // As ExecStartPre= would: once, then again with nothing to do.
  const once = await cli(["--socket", d.socket, "render", ...pairs]);
  assert.equal(once.code, 0, once.stderr);
  assert.equal(once.stdout, `rendered ${outDb}\nrendered ${outTok}\n`);
  assert.equal(fs.readFileSync(outDb, "utf8"), dbText(db1));
  assert.equal(fs.readFileSync(outTok, "utf8"), `TOKEN=${tok}\nDB=${db1}\n`);
  assert.equal(mode(outDb), 0o600);
  assert.equal(mode(outTok), 0o600);
  assert.equal(fs.statSync(outDb).uid, process.getuid!());
  const again = await cli(["--socket", d.socket, "--json", "render", ...pairs]);
  assert.equal(again.code, 0, again.stderr);
  assert.deepEqual(
    again.stdout
      .trimEnd()
      .split("\n")
      .map((l) => JSON.parse(l)),
    [
      { out: outDb, template: tplDb, written: false, secrets: ["app/db"] },
      { out: outTok, template: tplTok, written: false, secrets: ["app/token", "app/db"] },
    ],
  );

  // The companion: nothing to write at its start, so --on-change does not run.
  const ranFile = path.join(work, "on-change-runs");
  const w = startCli(t, ["--socket", d.socket, "render", ...pairs, "--watch", "--on-change", `echo ran >> ${ranFile}; echo on-change-said-hello`]);
  await eventually(() => w.stdout().includes(`unchanged ${outTok}`), 10_000, "the first pass");
  assert.equal(runs(ranFile), 0);

  // A reader that never stops looking: each read is one of the whole renderings.
  const seen = new Set<string>();
  const whole = new Set([dbText(db1)]);
  let reading = true;
  const torn: string[] = [];
  const reader = (async () => {
    while (reading) {
      const text = fs.readFileSync(outDb, "utf8");
      seen.add(text);
      if (![...whole].includes(text)) torn.push(text.length.toString());
      await sleep(2);
    }
  })();

  const db2 = planted("render-db2");
  whole.add(dbText(db2));
  await rotate(d, secretsDir, "db", db2);
  await fileWhen(outDb, (s) => s === dbText(db2));
  assert.equal(await fileWhen(outTok, (s) => s.includes(db2)), `TOKEN=${tok}\nDB=${db2}\n`);
  await eventually(() => runs(ranFile) === 1, 10_000, "--on-change after the first rotation");
  assert.equal(mode(outDb), 0o600);
  assert.ok(!processListings().includes(db2), "no value in any command line");

  await d.stop();
  await w.waitForStderr(/cannot watch for changes \(cannot reach the daemon at .*\); the files keep their last rendering; retrying with backoff/);
  assert.equal(fs.readFileSync(outDb, "utf8"), dbText(db2), "the daemon down changes no file");
  const d2 = await launch(t, dir, config, { waitFor: "socket" });
  await w.waitForStderr(/watching for changes again/, 40_000);
  assert.equal(runs(ranFile), 1, "a daemon restart is not a change");

  const db3 = planted("render-db3");
  whole.add(dbText(db3));
  await rotate(d2, secretsDir, "db", db3);
  await fileWhen(outDb, (s) => s === dbText(db3));
  await eventually(() => runs(ranFile) === 2, 10_000, "--on-change after the second rotation");
  await sleep(2_500);
  assert.equal(runs(ranFile), 2, "once per change");
  reading = false;
  await reader;
  assert.deepEqual(torn, [], "a reader saw a file that was not a whole rendering");
  assert.ok(seen.size >= 2);
  assert.equal(mode(outDb), 0o600);
  assert.equal(mode(outTok), 0o600);
  assert.deepEqual(
    fs.readdirSync(work).filter((f) => f.includes(".tmp")),
    [],
    "no temporary file left behind",
  );

  assert.match(w.stderr(), /on-change-said-hello/, "--on-change's output goes to stderr");
  assert.ok(!w.stdout().includes("on-change-said-hello"));
  w.child.kill("SIGTERM");
  assert.equal(await w.exited, 0, "SIGTERM: a clean exit");
  for (const v of [db1, db2, db3, tok]) assert.ok(!w.stdout().includes(v) && !w.stderr().includes(v));
});

describe("render failures leave every file as it was", () => {
  test("a template that does not parse, or uses more than secret: line and column; unknown names; forbidden names", async (t) => {
    const tok = planted("render-fail-tok");
    const { d } = await appDaemon(t, { token: tok });
    const work = tmpDir(t);
    const out = path.join(work, "out.conf");
    fs.writeFileSync(out, "old content\n", { mode: 0o640 });
    const tpl = (name: string, text: string) => {
      const p = path.join(work, name);
      fs.writeFileSync(p, text);
      return p;
    };
    const cases: [string, number, string][] = [
      [tpl("unclosed", 'a=1\n  b={{ secret "app/token" }\n'), 1, `template ${work}/unclosed:2:27: syntax error: unexpected text inside {{ }}`],
      [tpl("block", 'a=1\nb={{ secret "app/token" }} {{#each x}}{{/each}}\n'), 1, `template ${work}/block:2:28: a block ({{#...}}) is not supported`],
      [tpl("helper", "a=1\n\nc={{ lookup this 'x' }}\n"), 1, `template ${work}/helper:3:3: the only expression a template may hold is {{ secret "NAME" }}`],
      [tpl("partial", "{{> header }}\n"), 1, `template ${work}/partial:1:1: a partial ({{> ...}}) is not supported`],
      [tpl("badname", 'x={{ secret "Not A Name" }}'), 1, `template ${work}/badname:1:13: secret name "Not A Name" must match`],
      [tpl("two", 'x={{ secret "app/token" "app/other" }}'), 1, `template ${work}/two:1:3: the only expression`],
      [
        tpl("unknown", 'x={{ secret "app/token" }}\ny={{ secret "app/nope" }}\n'),
        3,
        `${work}/unknown names "app/nope": no secret named "app/nope" is configured`,
      ],
      [tpl("forbidden", 'x={{ secret "app/token" }}\ny={{ secret "locked/key" }}\n'), 4, `${work}/forbidden names "locked/key": caller uid 0`],
      [tpl("unsynced", 'y={{ secret "app/later" }}\n'), 5, `${work}/unsynced names "app/later": secret "app/later" is configured but has not been fetched yet`],
    ];
    for (const [template, code, message] of cases) {
      const r = await cli(["--socket", d.socket, "render", "--template", template, "--out", out]);
      assert.equal(r.code, code, `${template}: ${r.stderr}`);
      assert.ok(r.stderr.startsWith("sealcache: ") && r.stderr.includes(message), `${template}: ${r.stderr}`);
      assert.equal(r.stdout, "");
      assert.equal(fs.readFileSync(out, "utf8"), "old content\n", `${template} touched the old file`);
      assert.equal(mode(out), 0o640);
    }
    // Two pairs, the second naming a forbidden secret: the first file is not written either.
    const first = path.join(work, "first.conf");
    fs.writeFileSync(path.join(work, "ok"), 'x={{ secret "app/token" }}\n');
    const both = await cli([
      "--socket",
      d.socket,
      "--json",
      "render",
      "--template",
      path.join(work, "ok"),
      "--out",
      first,
      "--template",
      path.join(work, "forbidden"),
      "--out",
      out,
    ]);
    assert.equal(both.code, 4, both.stderr);
    assert.equal(JSON.parse(both.stderr).error, "forbidden");
    assert.equal(both.stdout, "");
    assert.ok(!fs.existsSync(first), "no file of the pass is written");
    assert.equal(fs.readFileSync(out, "utf8"), "old content\n");
    assert.deepEqual(
      fs.readdirSync(work).filter((f) => f.includes(".tmp")),
      [],
    );

    // --mode, and what --mode and the pairs refuse.
    const m = await cli(["--socket", d.socket, "render", "--template", path.join(work, "ok"), "--out", first, "--mode", "0640"]);
    assert.equal(m.code, 0, m.stderr);
    assert.equal(mode(first), 0o640);
    assert.equal(fs.readFileSync(first, "utf8"), `x=${tok}\n`);
    for (const [args, message] of [
      [
        ["--template", path.join(work, "ok"), "--out", first, "--mode", "4755"],
        /^sealcache: --mode must be octal permission bits such as 0600 or 0640, got "4755"\n$/,
      ],
      [
        ["--template", path.join(work, "ok")],
        /^sealcache: render takes --template and --out in pairs .* got 1 --template and 0 --out: sealcache render --template T --out F/,
      ],
      [
        ["--template", path.join(work, "ok"), "--out", first, "--template", path.join(work, "ok"), "--out", first],
        /^sealcache: --out .*first\.conf is given twice\n$/,
      ],
      [["--template", path.join(work, "missing.tpl"), "--out", first], /^sealcache: bad_template: template .*missing\.tpl: cannot be read \(ENOENT\)\n$/],
    ] as [string[], RegExp][]) {
      const x = await cli(["--socket", d.socket, "render", ...args]);
      assert.notEqual(x.code, 0);
      assert.match(x.stderr, message);
    }

    // A revoked name (410 revoked: exit 5), then no daemon at all (exit 5): the file as it was.
    assert.equal((await d.get("/v1/revoke?name=app/token", { method: "POST" })).status, 200);
    const revoked = await cli(["--socket", d.socket, "render", "--template", path.join(work, "ok"), "--out", out]);
    assert.equal(revoked.code, 5, revoked.stderr);
    assert.match(revoked.stderr, /^sealcache: .*names "app\/token": secret "app\/token" was revoked/);
    assert.equal(fs.readFileSync(out, "utf8"), "old content\n", "a revoked name leaves the old file");
    await d.stop();
    const down = await cli(["--socket", d.socket, "render", "--template", path.join(work, "ok"), "--out", out]);
    assert.equal(down.code, 5, down.stderr);
    assert.match(down.stderr, /cannot reach the daemon at \S+ \((ENOENT|ECONNREFUSED)\)/);
    assert.equal(fs.readFileSync(out, "utf8"), "old content\n", "no daemon leaves the old file");
    assert.equal(mode(out), 0o640);
  });

  test("--out in a folder that does not exist or may not be written: a clear error before anything is fetched", async (t) => {
    const work = tmpDir(t);
    fs.chmodSync(work, 0o755);
    const tpl = path.join(work, "t.tpl");
    fs.writeFileSync(tpl, 'x={{ secret "app/token" }}\n', { mode: 0o644 });
    // No daemon at this socket: an error about the daemon would mean something was fetched first.
    const sock = path.join(work, "no-daemon.sock");
    const r = await cli(["--socket", sock, "render", "--template", tpl, "--out", path.join(work, "nowhere", "x.conf")]);
    assert.equal(r.code, 2);
    assert.equal(r.stderr, `sealcache: --out ${work}/nowhere/x.conf: its folder ${work}/nowhere does not exist; create it first (or fix the path)\n`);
    const file = path.join(work, "plain");
    fs.writeFileSync(file, "");
    const n = await cli(["--socket", sock, "render", "--template", tpl, "--out", path.join(file, "x.conf")]);
    assert.equal(n.code, 2);
    assert.equal(n.stderr, `sealcache: --out ${file}/x.conf: ${file} is not a folder\n`);

    const skip = crossUserUnavailable();
    if (skip) return t.diagnostic(`not-writable case left out: ${skip}`);
    const acct = ensureTestAccounts();
    const locked = path.join(work, "root-only");
    fs.mkdirSync(locked, { mode: 0o755 });
    const u = await runAs(acct.a, [
      fs.realpathSync(process.execPath),
      MAIN,
      "--socket",
      sock,
      "render",
      "--template",
      tpl,
      "--out",
      path.join(locked, "x.conf"),
    ]);
    assert.equal(u.code, 2, u.stderr);
    assert.equal(
      u.stderr,
      `sealcache: --out ${locked}/x.conf: this account (uid ${acct.a.uid}) may not write in ${locked} (owner uid 0, gid 0, mode 0755); the file is written there through a temporary file and a rename\n`,
    );
  });
});
