// `sealcache import` end to end: the real daemon, the real CLI (through the socket,
// and on the cache directly with the daemon stopped), real test accounts for the
// callers that may not import.
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import { after, before, describe, test } from "node:test";
import { cli, demoConfig, eventually, launch, MAIN, type RunningDaemon } from "../../support/daemon.js";
import { assertNoLeaks, databaseBytes, planted } from "../../support/planted.js";
import { tmpDir } from "../../support/tmp.js";
import { crossUserUnavailable, ensureTestAccounts, runAs, shareWithGroup, type TestAccounts } from "../../support/users.js";
import { suiteScope } from "../../support/scope.js";

const NODE = fs.realpathSync(process.execPath);
const skipUsers = crossUserUnavailable();

interface Listed {
  name: string;
  state: string;
  provider: string;
  version: number | null;
  fetched_at: string | null;
}

/** A bootstrap token as an operator would have it: a 0600 file. */
function tokenFile(dir: string, name: string, value: string | Buffer): string {
  const f = path.join(dir, name);
  fs.writeFileSync(f, value, { mode: 0o600 });
  return f;
}

describe("sealcache import through the real daemon", () => {
  let dir: string;
  let config: Record<string, unknown>;
  let d: RunningDaemon;
  let c: string[];
  let acct: TestAccounts | undefined;
  /** Every planted value imported here, for the leak checks. */
  const values: string[] = [];
  const scope = suiteScope();

  const start = async () => {
    d = await launch(scope, dir, config, { waitFor: "synced", extraSecrets: values });
    if (acct) shareWithGroup(dir, d.socket, acct.a.gid);
  };
  const list = async (): Promise<Listed[]> => JSON.parse((await cli(["--json", "list", ...c])).stdout).secrets;
  const raw = async (name: string) => d.get(`/v1/secrets/${name}?format=raw`);

  before(async () => {
    dir = tmpDir(scope);
    if (!skipUsers) acct = ensureTestAccounts();
    config = demoConfig(dir, {
      // One interval for the whole file: nothing is refreshed on its own while the tests run.
      sync: { interval: "1h", backoff_min: "200ms", backoff_max: "1s" },
      policy: [{ match: { uid: 0 }, allow: ["**"], admin: true }, ...(acct ? [{ match: { user: acct.a.name }, allow: ["**"] }] : [])],
    });
    c = ["--config", path.join(dir, "sealcache.yaml")];
    // Where a test account can read a file of its own (dir itself becomes root:sc-test 0750).
    fs.mkdirSync(path.join(dir, "pub"), { mode: 0o755 });
    await start();
  });
  after(async () => {
    await scope.run();
  });

  test("a token from a 0600 file: served by GET like any secret, listed with provider imported, never refreshed, kept across a restart", async () => {
    const v = planted("boot");
    values.push(v);
    const f = tokenFile(dir, "boot.token", v);
    const r = await cli(["--json", "import", "boot/token", "--from-file", f, ...c]);
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(JSON.parse(r.stdout), { name: "boot/token", version: 1, via: "daemon", source_deleted: false });
    assert.equal(fs.readFileSync(f, "utf8"), v, "without --delete-source the file is left alone");

    const got = await d.get("/v1/secrets/boot/token");
    assert.equal(got.status, 200, got.body);
    const j = got.json();
    assert.deepEqual([j.name, j.value, j.version, j.stale], ["boot/token", v, 1, false]);
    assert.equal((await raw("boot/token")).body, v);
    const viaCli = await cli(["get", "boot/token", ...c], { allowValues: true });
    assert.deepEqual([viaCli.code, viaCli.stdout], [0, `${v}\n`]);

    const listed = (await list()).find((s) => s.name === "boot/token");
    assert.deepEqual([listed?.state, listed?.provider, listed?.version], ["ok", "imported", 1]);
    const human = await cli(["list", ...c]);
    assert.match(human.stdout, /^boot\/token\s+ok\s+\S+\s+1\s+imported\s*$/m);

    // Never refreshed: a refresh of everything fetches the configured secrets only, and the
    // imported one keeps its version and its time; asked for by name, it is refused as such.
    const batches = () => [...d.output().matchAll(/"provider":"demo","count":(\d+),"msg":"sync batch start"/g)].map((m) => Number(m[1]));
    const before = batches().length;
    assert.equal((await d.get("/v1/refresh", { method: "POST" })).status, 202);
    await eventually(() => batches().length > before, 10_000, "the refresh's sync batch");
    await eventually(async () => (await d.get("/v1/health")).json().secrets.ok === 4, 10_000, "every secret ok after the refresh");
    assert.deepEqual(batches().slice(before), [3], "one batch of the three configured secrets: the imported one is not fetched");
    const again = (await list()).find((s) => s.name === "boot/token");
    assert.deepEqual([again?.version, again?.fetched_at], [1, listed?.fetched_at], "not touched by the refresh");
    const byName = await cli(["refresh", "boot/token", ...c]);
    assert.equal(byName.code, 3, byName.stderr);
    assert.match(byName.stderr, /boot\/token is an imported secret: no provider fetches it; import it again to change it/);

    await d.stop();
    await start();
    assert.equal((await raw("boot/token")).body, v, "served after a restart");
    const afterRestart = (await list()).find((s) => s.name === "boot/token");
    assert.deepEqual([afterRestart?.provider, afterRestart?.version], ["imported", 1]);
    assertNoLeaks(databaseBytes(path.join(String(config.data_dir), "cache.db")), "cache.db", values);
  });

  test("importing again replaces the value and bumps the version; the same value again changes nothing", async () => {
    const v1 = planted("again1");
    const v2 = planted("again2");
    values.push(v1, v2);
    const run = async (v: string) => {
      const r = await cli(["--json", "import", "boot/again", "--from-file", tokenFile(dir, "again.token", v), ...c]);
      assert.equal(r.code, 0, r.stderr);
      return JSON.parse(r.stdout).version as number;
    };
    assert.equal(await run(v1), 1);
    assert.equal(await run(v2), 2);
    assert.equal((await raw("boot/again")).body, v2);
    assert.equal(await run(v2), 2, "an unchanged value is no new version");
    assert.equal((await d.get("/v1/secrets/boot/again")).json().version, 2);
  });

  test("--delete-source overwrites the file with zeros, then removes it, once the daemon confirmed; not when the import failed", async () => {
    const v = planted("once");
    values.push(v);
    const f = tokenFile(dir, "once.token", v);
    // A second name for the same inode shows what happened to the bytes after the unlink.
    const witness = path.join(dir, "once.witness");
    fs.linkSync(f, witness);
    const r = await cli(["import", "boot/once", "--from-file", f, "--delete-source", ...c]);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout, `imported boot/once (version 1); ${f} overwritten and removed\n`);
    assert.equal(fs.existsSync(f), false, "removed");
    assert.deepEqual(fs.readFileSync(witness), Buffer.alloc(Buffer.byteLength(v)), "its bytes were overwritten with zeros first");
    assert.equal((await raw("boot/once")).body, v);

    // Refused by the daemon (a name a provider serves): the file stays as it was.
    const keep = planted("keep");
    values.push(keep);
    const k = tokenFile(dir, "keep.token", keep);
    const refused = await cli(["import", "demo/api-token", "--from-file", k, "--delete-source", ...c]);
    assert.equal(refused.code, 2, refused.stderr);
    assert.equal(fs.readFileSync(k, "utf8"), keep, "the source is kept, byte for byte");
  });

  test("each bad input is refused with a clear error and its exit code; nothing cached is lost", async () => {
    const big = tokenFile(dir, "big.token", Buffer.alloc(64 * 1024 + 1, 0x41));
    const exact = tokenFile(dir, "exact.token", Buffer.alloc(64 * 1024, 0x42));
    const empty = tokenFile(dir, "empty.token", "");
    const target = tokenFile(dir, "target.token", planted("target"));
    const link = path.join(dir, "link.token");
    fs.symlinkSync(target, link);
    const fifo = path.join(dir, "fifo.token");
    fs.mkdirSync(path.join(dir, "adir"));
    const ok = tokenFile(dir, "ok.token", planted("ok"));
    const cases: [string[], number, RegExp][] = [
      [["boot/big", "--from-file", big], 2, /--from-file .*big\.token is 65537 bytes; an imported secret is at most 65536 bytes \(64 KiB\)/],
      [["boot/none", "--from-file", path.join(dir, "missing.token")], 3, /cannot read --from-file .*missing\.token \(ENOENT\)/],
      [["boot/dir", "--from-file", path.join(dir, "adir")], 2, /--from-file .*adir is not a regular file/],
      [["boot/link", "--from-file", link], 2, /cannot read --from-file .*link\.token \(it is a symbolic link\)/],
      [["boot/empty", "--from-file", empty], 2, /the value for "boot\/empty" is empty; there is nothing to import/],
      [["Boot/Upper", "--from-file", ok], 2, /secret name "Boot\/Upper" must match/],
      [["boot/../etc", "--from-file", ok], 2, /secret name "boot\/\.\.\/etc" .*\.\./],
      [["demo/api-token", "--from-file", ok], 2, /secret name "demo\/api-token" is served by provider demo; an imported secret needs a name of its own/],
      [["boot/x"], 2, /import needs --from-file F/],
    ];
    // A FIFO would block a reader waiting for a writer: refused without reading.
    execFileSync("mkfifo", [fifo]);
    cases.push([["boot/fifo", "--from-file", fifo], 2, /--from-file .*fifo\.token is not a regular file/]);
    const before = (await list()).map((s) => [s.name, s.version]);
    for (const [args, code, message] of cases) {
      const r = await cli(["import", ...args, ...c]);
      assert.equal(r.code, code, `${args.join(" ")}: ${r.stderr}`);
      assert.equal(r.stdout, "", args.join(" "));
      assert.match(r.stderr, message, args.join(" "));
      const j = await cli(["--json", "import", ...args, ...c]);
      assert.equal(j.code, code);
      assert.ok(["bad_request", "not_found", "usage"].includes(JSON.parse(j.stderr).error), j.stderr);
    }
    assert.deepEqual(
      (await list()).map((s) => [s.name, s.version]),
      before,
      "nothing was added, replaced or lost",
    );
    assert.equal((await raw("demo/api-token")).status, 200, "the provider's value is still served");

    // Exactly 64 KiB is taken.
    const r = await cli(["--json", "import", "boot/exact", "--from-file", exact, ...c]);
    assert.equal(r.code, 0, r.stderr);
    assert.equal((await raw("boot/exact")).body.length, 64 * 1024);
    // The socket enforces the bound itself (a client that is not the CLI).
    const over = await d.get("/v1/secrets/boot/over", { method: "PUT", body: "x".repeat(64 * 1024 + 1) });
    assert.equal(over.status, 413, over.body);
    assert.match(over.json().message, /an imported secret is at most 64 KiB/);
    assert.equal((await raw("boot/over")).status, 404);
  });

  test("a caller without admin is refused (403, exit 4) and audited; an account that may not open the socket is exit 4", { skip: skipUsers }, async () => {
    const a = acct!;
    const v = planted("nonadmin");
    values.push(v);
    const f = path.join(dir, "pub", "nonadmin.token");
    fs.writeFileSync(f, v, { mode: 0o644 });
    const t0 = Date.now();
    const r = await runAs(a.a, [NODE, MAIN, "--socket", d.socket, "import", "boot/nonadmin", "--from-file", f]);
    assert.equal(r.code, 4, r.stderr);
    assert.equal(r.stdout, "");
    assert.match(
      r.stderr,
      new RegExp(`^sealcache: forbidden: caller uid ${a.a.uid} \\(pid \\d+\\) may not import secrets; it needs a policy rule with admin: true\\n$`),
    );
    assertNoLeaks(r.stderr, "the refusal", values);
    assert.equal((await raw("boot/nonadmin")).status, 404, "nothing stored");
    const audit = JSON.parse((await cli(["--json", "audit", "--since", "1m", "--name", "boot/nonadmin", ...c])).stdout).entries as {
      uid: number;
      route: string;
      status: number;
      code: string;
      at: string;
    }[];
    assert.ok(
      audit.some((e) => e.uid === a.a.uid && e.route === "import" && e.status === 403 && e.code === "forbidden" && Date.parse(e.at) >= t0 - 1000),
      JSON.stringify(audit),
    );
    assert.equal(fs.readFileSync(f, "utf8"), v);

    // A file the account cannot read is its own error, before anything is asked of the daemon.
    const secret = path.join(dir, "pub", "root-only.token");
    fs.writeFileSync(secret, planted("rootonly"), { mode: 0o600 });
    const unreadable = await runAs(a.a, [NODE, MAIN, "--socket", d.socket, "import", "boot/x", "--from-file", secret]);
    assert.equal(unreadable.code, 2, unreadable.stderr);
    assert.match(unreadable.stderr, /cannot read --from-file .*root-only\.token \(EACCES\)/);

    // sc-test-b is not in the socket's group: forbidden (exit 4), not "the daemon is down" (which would
    // try the cache directly). Its file is where it can read it, outside the daemon's folder.
    const open = tmpDir(scope);
    fs.chmodSync(open, 0o755);
    const fb = path.join(open, "b.token");
    fs.writeFileSync(fb, v, { mode: 0o644 });
    const b = await runAs(a.b, [NODE, MAIN, "--socket", d.socket, "import", "boot/b", "--from-file", fb]);
    assert.equal(b.code, 4, b.stderr);
    assert.match(b.stderr, /^sealcache: forbidden: this account may not open the socket .* \(EACCES\)/);
  });

  test("with the daemon stopped the CLI imports on the cache directly; the next start serves it", async () => {
    await d.stop();
    const v = planted("offline");
    values.push(v);
    const r = await cli(["--json", "import", "boot/offline", "--from-file", tokenFile(dir, "offline.token", v), "--delete-source", ...c]);
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(JSON.parse(r.stdout), { name: "boot/offline", version: 1, via: "cli", source_deleted: true });
    assert.equal(fs.existsSync(path.join(dir, "offline.token")), false);
    // Offline, the same rules hold.
    const refused = await cli(["import", "demo/db-password", "--from-file", tokenFile(dir, "offline2.token", planted("o2")), ...c]);
    assert.equal(refused.code, 2, refused.stderr);
    assert.match(refused.stderr, /is served by provider demo/);
    // No daemon and no config to open the cache with: both said, exit 5, the source kept.
    const kept = tokenFile(dir, "offline3.token", planted("o3"));
    const blind = await cli([
      "--socket",
      path.join(dir, "absent.sock"),
      "--config",
      path.join(dir, "absent.yaml"),
      "import",
      "boot/blind",
      "--from-file",
      kept,
      "--delete-source",
    ]);
    assert.equal(blind.code, 5, blind.stderr);
    assert.match(
      blind.stderr,
      /cannot reach the daemon at \S*absent\.sock \(ENOENT\)[^\n]*\n\s+and import cannot work on the cache directly without the daemon's config/,
    );
    assert.ok(fs.existsSync(kept), "--delete-source keeps the file when nothing was stored");
    await start();
    assert.equal((await raw("boot/offline")).body, v);
    const listed = (await list()).find((s) => s.name === "boot/offline");
    assert.deepEqual([listed?.provider, listed?.version], ["imported", 1]);
    const audit = JSON.parse((await cli(["--json", "audit", "--since", "5m", "--name", "boot/offline", ...c])).stdout).entries as {
      principal: string;
      route: string;
      status: number;
    }[];
    assert.ok(
      audit.some((e) => e.route === "import" && e.status === 201 && e.principal === "operator"),
      JSON.stringify(audit),
    );
    const refusedAudit = JSON.parse((await cli(["--json", "audit", "--since", "5m", "--name", "demo/db-password", ...c])).stdout).entries as typeof audit;
    assert.ok(
      refusedAudit.some((e) => e.route === "import" && e.status === 400 && e.principal === "operator"),
      `an offline refusal is audited: ${JSON.stringify(refusedAudit)}`,
    );
    assertNoLeaks(d.output(), "daemon output", values);
  });
});
