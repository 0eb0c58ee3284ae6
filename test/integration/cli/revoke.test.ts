// `sealcache revoke NAME|--all` end to end: the real daemon and CLI (through the
// socket and, with the daemon stopped, on the cache directly); the bytes of data_dir
// searched afterwards for the value, its sealed row and every older version of it;
// old copies of cache.db (host seal) and of the whole data_dir (TPM) restored after
// `revoke --all`.
import assert from "node:assert/strict";
import fs from "node:fs";
import path from "node:path";
import { after, before, describe, test } from "node:test";
import Database from "better-sqlite3";
import { cli, demoConfig, eventually, launch, MAIN, type RunningDaemon } from "../../support/daemon.js";
import { DEMO_VALUES, assertNoLeaks, planted } from "../../support/planted.js";
import { FakeVault, approleDaemonConfig } from "../../support/fake-vault.js";
import { startSwtpm } from "../../support/swtpm.js";
import { tmpDir } from "../../support/tmp.js";
import { crossUserUnavailable, ensureTestAccounts, runAs, shareWithGroup, type TestAccounts } from "../../support/users.js";
import { suiteScope } from "../../support/scope.js";

const NODE = fs.realpathSync(process.execPath);
const skipUsers = crossUserUnavailable();
const DEMO = ["demo/api-token", "demo/db-password", "demo/kafka-password"];

/** A row's sealed bytes as SQLite holds them: what must not outlive a revoke. */
interface SealedRow {
  version: number;
  wrapped_dek: Buffer;
  ciphertext: Buffer;
}

function sealedRow(dataDir: string, file: string, name: string): SealedRow | undefined {
  const db = new Database(path.join(dataDir, file), { readonly: true, fileMustExist: true });
  try {
    return db.prepare("SELECT version, wrapped_dek, ciphertext FROM secrets WHERE name = ?").get(name) as SealedRow | undefined;
  } finally {
    db.close();
  }
}

/** Every file under `dir` (recursively), read whole. */
function filesUnder(dir: string): { file: string; bytes: Buffer }[] {
  const out: { file: string; bytes: Buffer }[] = [];
  for (const e of fs.readdirSync(dir, { withFileTypes: true, recursive: true })) {
    const p = path.join(e.parentPath ?? e.path, e.name);
    if (e.isFile()) out.push({ file: p, bytes: fs.readFileSync(p) });
  }
  return out;
}

/** Where in data_dir (file names) any of `needles` occurs. */
function foundIn(dataDir: string, needles: readonly Buffer[]): string[] {
  const hits: string[] = [];
  for (const { file, bytes } of filesUnder(dataDir)) {
    for (const [i, n] of needles.entries()) if (bytes.includes(n)) hits.push(`${path.relative(dataDir, file)} holds needle ${i}`);
  }
  return hits;
}

/** The sealed parts of rows, as needles: a DEK and a ciphertext each, long enough never to match by chance. */
function needles(rows: readonly SealedRow[]): Buffer[] {
  return rows.flatMap((r) => [Buffer.from(r.wrapped_dek), Buffer.from(r.ciphertext)]);
}

async function jsonCli(args: string[]): Promise<{ code: number | null; out: any; stderr: string }> {
  const r = await cli(["--json", ...args]);
  return { code: r.code, out: r.stdout ? JSON.parse(r.stdout) : undefined, stderr: r.stderr };
}

describe("sealcache revoke through the real daemon, and on the cache with it stopped", () => {
  let dir: string;
  let dataDir: string;
  let config: Record<string, unknown>;
  let d: RunningDaemon;
  let c: string[];
  let acct: TestAccounts | undefined;
  const values: string[] = [];
  const scope = suiteScope();

  const start = async (waitFor: "synced" | "socket" = "synced") => {
    d = await launch(scope, dir, config, { waitFor, extraSecrets: values });
    if (acct) shareWithGroup(dir, d.socket, acct.a.gid);
  };
  const status = async (name: string) => ((await jsonCli(["list", ...c])).out.secrets as { name: string; state: string }[]).find((s) => s.name === name)?.state;
  const rotate = (v: string) => fs.writeFileSync(path.join(dir, "secrets", "rot-key"), v);

  before(async () => {
    dir = tmpDir(scope);
    dataDir = path.join(dir, "data");
    if (!skipUsers) acct = ensureTestAccounts();
    const base = demoConfig(dir);
    config = {
      ...base,
      sync: { interval: "1h", backoff_min: "200ms", backoff_max: "1s" },
      secrets: { ...(base.secrets as object), "rot/key": { provider: "demo", path: "rot-key" } },
      policy: [{ match: { uid: 0 }, allow: ["**"], admin: true }, ...(acct ? [{ match: { user: acct.a.name }, allow: ["**"] }] : [])],
    };
    c = ["--config", path.join(dir, "sealcache.yaml")];
    const v = planted("rot1");
    values.push(v);
    rotate(v);
    await start();
  });
  after(async () => {
    await scope.run();
  });

  test("revoke NAME: 410 revoked, shown by list and status, its value, data key and older versions gone from every file of data_dir; back once fetched again", async () => {
    // Three versions of rot/key, each row captured as it was sealed.
    const rows: SealedRow[] = [sealedRow(dataDir, "cache.db", "rot/key")!];
    for (const tag of ["rot2", "rot3"]) {
      const v = planted(tag);
      values.push(v);
      rotate(v);
      assert.equal((await d.get("/v1/refresh?name=rot/key", { method: "POST" })).status, 202);
      await eventually(async () => (await d.get("/v1/secrets/rot/key?format=raw")).body === v, 10_000, `rot/key at ${tag}`);
      rows.push(sealedRow(dataDir, "cache.db", "rot/key")!);
    }
    assert.deepEqual(
      rows.map((r) => r.version),
      [1, 2, 3],
    );
    assert.ok(foundIn(dataDir, needles(rows.slice(-1))).length > 0, "the search would see the current row (its sealed bytes are in data_dir)");

    const r = await jsonCli(["revoke", "rot/key", ...c]);
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(r.out, { revoked: ["rot/key"], via: "daemon" });

    const got = await d.get("/v1/secrets/rot/key");
    assert.equal(got.status, 410, got.body);
    assert.equal(got.json().error, "revoked");
    assert.match(
      got.json().message,
      /^secret "rot\/key" was revoked \(by caller uid 0 .* at \d{4}-.*\); it is served again once it has been fetched \(or imported\) anew$/,
    );
    const viaCli = await cli(["get", "rot/key", ...c]);
    assert.equal(viaCli.code, 5, viaCli.stderr);
    assert.match(viaCli.stderr, /^sealcache: revoked: secret "rot\/key" was revoked/);
    assert.equal(await status("rot/key"), "revoked");
    assert.match((await cli(["list", ...c])).stdout, /^rot\/key\s+revoked\s/m);
    assert.equal((await d.get("/v1/health")).json().secrets.revoked, 1);
    assert.match((await cli(["status", ...c])).stdout, /^secrets: 4 configured, 3 ok, .*, 1 revoked, 0 with errors$/m);

    assert.deepEqual(foundIn(dataDir, needles(rows)), [], "no version of the row, nor its data key, is left in any file of data_dir");
    for (const { file, bytes } of filesUnder(dataDir)) assertNoLeaks(bytes, file, values);
    for (const [i, n] of DEMO.entries()) assert.equal((await d.get(`/v1/secrets/${n}?format=raw`)).body, DEMO_VALUES[i], "the other secrets are untouched");

    // Revoked across a restart too: the new daemon does not fetch it at start (holding no
    // value, it would be due at once). A refresh of another secret is a sync batch of its
    // own; once it has landed, a fetch due at start would have happened before it.
    await d.stop();
    await start("socket");
    assert.equal((await d.get("/v1/refresh?name=demo/api-token", { method: "POST" })).status, 202);
    await d.waitForLog(/"msg":"sync batch applied"/);
    assert.deepEqual(
      [...d.output().matchAll(/"fetched":(\d+),"changed":\d+/g)].map((m) => Number(m[1])),
      [1],
      "one batch since the start: demo/api-token alone",
    );
    assert.equal((await d.get("/v1/secrets/rot/key")).status, 410);
    assert.equal((await d.get("/v1/secrets/demo/api-token?format=raw")).body, DEMO_VALUES[0]);

    // Fetched again: served again, as a new version.
    assert.equal((await d.get("/v1/refresh?name=rot/key", { method: "POST" })).status, 202);
    const back = await eventually(
      async () => {
        const x = await d.get("/v1/secrets/rot/key");
        return x.status === 200 && (x.json() as { value: string; version: number });
      },
      10_000,
      "rot/key fetched again",
    );
    // Numbered afresh: nothing of the revoked versions is left to count from.
    assert.deepEqual([back.value, back.version], [values.at(-1), 1]);
    assert.equal(await status("rot/key"), "ok");
  });

  test("revoke of an imported secret: gone until imported again", async () => {
    const v = planted("imp");
    values.push(v);
    const f = path.join(dir, "imp.token");
    fs.writeFileSync(f, v, { mode: 0o600 });
    assert.equal((await cli(["import", "boot/imp", "--from-file", f, ...c])).code, 0);
    const row = sealedRow(dataDir, "cache.db", "boot/imp")!;
    const r = await cli(["revoke", "boot/imp", ...c]);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout, "revoked 1 secret: boot/imp\n");
    const got = await d.get("/v1/secrets/boot/imp");
    assert.deepEqual([got.status, got.json().error], [410, "revoked"]);
    assert.deepEqual(foundIn(dataDir, needles([row])), []);
    assert.equal((await cli(["import", "boot/imp", "--from-file", f, ...c])).code, 0);
    assert.equal((await d.get("/v1/secrets/boot/imp?format=raw")).body, v);
  });

  test("a quarantined copy of the cache in data_dir (kept as evidence) loses the revoked name's rows too", async () => {
    // Two rows swapped while stopped: the next start quarantines cache.db (intact but for that) and fetches afresh.
    await d.stop();
    const db = new Database(path.join(dataDir, "cache.db"));
    try {
      const get = db.prepare("SELECT wrapped_dek, ciphertext, value_mac FROM secrets WHERE name = ?");
      const [a, b] = [get.get("demo/api-token"), get.get("demo/kafka-password")] as { wrapped_dek: Buffer; ciphertext: Buffer; value_mac: Buffer }[];
      const set = db.prepare("UPDATE secrets SET wrapped_dek = ?, ciphertext = ?, value_mac = ? WHERE name = ?");
      db.transaction(() => {
        set.run(b!.wrapped_dek, b!.ciphertext, b!.value_mac, "demo/api-token");
        set.run(a!.wrapped_dek, a!.ciphertext, a!.value_mac, "demo/kafka-password");
      })();
    } finally {
      db.close();
    }
    await start();
    const [q] = (await d.get("/v1/health")).json().quarantined as { path: string }[];
    assert.ok(q, "quarantined");
    const old = sealedRow(path.dirname(q.path), path.basename(q.path), "rot/key")!;
    const cur = sealedRow(dataDir, "cache.db", "rot/key")!;
    assert.ok(
      foundIn(dataDir, needles([old])).some((h) => h.startsWith("quarantine/")),
      "the quarantined copy holds rot/key's sealed row",
    );

    // A copy quarantined as corrupt cannot be opened to delete rows from: it goes as a whole.
    const junk = path.join(path.dirname(q.path), "cache-junk.db");
    fs.writeFileSync(junk, Buffer.concat([Buffer.from("not a database"), old.ciphertext]), { mode: 0o600 });
    fs.writeFileSync(path.join(path.dirname(q.path), "cache-junk.reason.txt"), "SQLITE_CORRUPT\n", { mode: 0o600 });

    const r = await cli(["revoke", "rot/key", ...c]);
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(foundIn(dataDir, needles([old, cur])), [], "neither the live row nor the quarantined one is left anywhere in data_dir");
    assert.equal(fs.existsSync(junk), false);
    assert.match(
      fs.readFileSync(path.join(path.dirname(q.path), "cache-junk.reason.txt"), "utf8"),
      /revoke: this copy could not be opened to delete the revoked rows \(SQLITE_NOTADB\); removed/,
    );
    assert.match(d.output(), /"msg":"revoked rows deleted from the quarantined copies of the cache too"/);
    // The copy stays as evidence, every other row in it as it was, and its note says what the revoke took.
    assert.ok(sealedRow(path.dirname(q.path), path.basename(q.path), "demo/db-password"));
    assert.match(fs.readFileSync(q.path.replace(/\.db$/, ".reason.txt"), "utf8"), /revoke: the rows of 1 revoked secret deleted from this copy/);
    // The quarantine lost the imported secret (nothing can fetch it again): imported anew, as the operator would.
    assert.equal((await cli(["import", "boot/imp", "--from-file", path.join(dir, "imp.token"), ...c])).code, 0);
  });

  test("bad input: an unknown name (exit 3), a bad name (exit 2), NAME with --all, neither; nothing revoked", async () => {
    const cases: [string[], number, string, RegExp][] = [
      [["revoke", "demo/nothing"], 3, "not_found", /no secret named "demo\/nothing" is configured or cached/],
      [["revoke", "Demo/Upper"], 2, "bad_request", /secret name "Demo\/Upper" must match/],
      [["revoke", "demo/../etc"], 2, "bad_request", /\.\./],
      [["revoke", "demo/api-token", "--all"], 2, "usage", /revoke takes a secret name or --all/],
      [["revoke"], 2, "usage", /revoke takes a secret name or --all/],
    ];
    for (const [args, code, error, message] of cases) {
      const r = await cli([...args, ...c]);
      assert.equal(r.code, code, `${args.join(" ")}: ${r.stderr}`);
      assert.equal(r.stdout, "");
      assert.match(r.stderr, message, args.join(" "));
      const j = await jsonCli([...args, ...c]);
      assert.equal(JSON.parse(j.stderr).error, error, args.join(" "));
    }
    const raw = await d.get("/v1/revoke?name=demo/api-token&all=true", { method: "POST" });
    assert.deepEqual([raw.status, raw.json().error], [400, "bad_request"]);
    for (const [i, n] of DEMO.entries()) assert.equal((await d.get(`/v1/secrets/${n}?format=raw`)).body, DEMO_VALUES[i]);
  });

  test("a caller without admin: 403 (exit 4), audited, nothing revoked", { skip: skipUsers }, async () => {
    const a = acct!.a;
    const t0 = Date.now();
    for (const args of [
      ["revoke", "demo/api-token"],
      ["revoke", "--all"],
    ]) {
      const r = await runAs(a, [NODE, MAIN, "--socket", d.socket, ...args]);
      assert.equal(r.code, 4, r.stderr);
      assert.match(
        r.stderr,
        new RegExp(`^sealcache: forbidden: caller uid ${a.uid} \\(pid \\d+\\) may not revoke secrets; it needs a policy rule with admin: true\\n$`),
      );
    }
    const entries = (await jsonCli(["audit", "--since", "1m", ...c])).out.entries as {
      uid: number;
      route: string;
      name: string | null;
      status: number;
      code: string;
      at: string;
    }[];
    const mine = entries.filter((e) => e.uid === a.uid && e.route === "revoke" && Date.parse(e.at) >= t0 - 1000);
    assert.deepEqual(
      mine.map((e) => [e.name, e.status, e.code]).sort(),
      [
        ["demo/api-token", 403, "forbidden"],
        [null, 403, "forbidden"],
      ].sort(),
      JSON.stringify(mine),
    );
    assert.equal((await d.get("/v1/secrets/demo/api-token?format=raw")).body, DEMO_VALUES[0]);
    // An account outside the socket's group: forbidden (exit 4), never taken for "the daemon is down".
    const b = await runAs(acct!.b, [NODE, MAIN, "--socket", d.socket, "revoke", "demo/api-token"]);
    assert.equal(b.code, 4, b.stderr);
    assert.match(b.stderr, /^sealcache: forbidden: this account may not open the socket .* \(EACCES\)/);
  });

  test("with the daemon stopped: revoke NAME on the cache directly; the next start answers 410", async () => {
    const row = sealedRow(dataDir, "cache.db", "demo/db-password")!;
    await d.stop();
    const r = await jsonCli(["revoke", "demo/db-password", ...c]);
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(r.out, { revoked: ["demo/db-password"], via: "cli" });
    assert.deepEqual(foundIn(dataDir, needles([row])), []);
    const unknown = await cli(["revoke", "demo/nothing", ...c]);
    assert.equal(unknown.code, 3, "the same rules offline");
    // No daemon and no config to open the cache with: both said, exit 5, nothing touched.
    const blind = await cli(["--socket", path.join(dir, "absent.sock"), "--config", path.join(dir, "absent.yaml"), "revoke", "demo/api-token"]);
    assert.equal(blind.code, 5, blind.stderr);
    assert.match(
      blind.stderr,
      /cannot reach the daemon at \S*absent\.sock \(ENOENT\)[^\n]*\n\s+and revoke cannot work on the cache directly without the daemon's config: invalid config \S*absent\.yaml/,
    );
    await start("socket");
    const got = await d.get("/v1/secrets/demo/db-password");
    assert.deepEqual([got.status, got.json().error], [410, "revoked"]);
    assert.equal((await d.get("/v1/secrets/demo/api-token")).status, 200, "the command that could not open the cache revoked nothing");
    const audit = (await jsonCli(["audit", "--since", "5m", "--name", "demo/db-password", ...c])).out.entries as {
      route: string;
      principal: string;
      status: number;
      code: string;
    }[];
    assert.ok(
      audit.some((e) => e.route === "revoke" && e.principal === "operator" && e.status === 200),
      JSON.stringify(audit),
    );
    // A refusal on the cache directly is in the audit trail as the socket would record it.
    const refused = (await jsonCli(["audit", "--since", "5m", "--name", "demo/nothing", ...c])).out.entries as typeof audit;
    assert.ok(
      refused.some((e) => e.route === "revoke" && e.principal === "operator" && e.status === 404 && e.code === "not_found"),
      JSON.stringify(refused),
    );
  });

  test("revoke --all: every name 410, the cache key rotated, nothing left in data_dir; an old copy of cache.db restored serves nothing", async () => {
    const v = planted("all-imp");
    values.push(v);
    const f = path.join(dir, "all.token");
    fs.writeFileSync(f, v, { mode: 0o600 });
    assert.equal((await cli(["import", "boot/all", "--from-file", f, ...c])).code, 0);
    assert.equal((await d.get("/v1/refresh", { method: "POST" })).status, 202);
    await eventually(async () => (await d.get("/v1/health")).json().secrets.ok === 6, 10_000, "everything fetched");
    const names = [...DEMO, "boot/all", "boot/imp", "rot/key"].sort();
    const rows = names.map((n) => sealedRow(dataDir, "cache.db", n)).filter((r): r is SealedRow => r !== undefined);
    assert.equal(rows.length, 6);
    // The old copy: taken with the daemon stopped, as a backup would be.
    await d.stop();
    const backup = path.join(dir, "backup");
    fs.mkdirSync(backup);
    for (const x of fs.readdirSync(dataDir)) if (x.startsWith("cache.db")) fs.copyFileSync(path.join(dataDir, x), path.join(backup, x));
    const kekBefore = fs.readFileSync(path.join(dataDir, "kek.sealed"));
    await start();

    const r = await jsonCli(["revoke", "--all", ...c]);
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(r.out, { revoked: names, via: "daemon" });
    for (const n of names) {
      const got = await d.get(`/v1/secrets/${n}`);
      assert.deepEqual([n, got.status, got.json().error], [n, 410, "revoked"]);
    }
    assert.notDeepEqual(fs.readFileSync(path.join(dataDir, "kek.sealed")), kekBefore, "a new cache key");
    assert.deepEqual(foundIn(dataDir, needles(rows)), []);
    assert.match(d.output(), /"msg":"cache key rotated"/);
    const human = await cli(["revoke", "--all", ...c]);
    assert.match(human.stdout, /^revoked \d+ secrets and rotated the cache key/);

    // The old cache.db back in place, nothing to fetch from: not one value comes back.
    await d.stop();
    for (const x of fs.readdirSync(dataDir)) if (x.startsWith("cache.db")) fs.rmSync(path.join(dataDir, x));
    for (const x of fs.readdirSync(backup)) fs.copyFileSync(path.join(backup, x), path.join(dataDir, x));
    fs.renameSync(path.join(dir, "secrets"), path.join(dir, "secrets.away"));
    await start("socket");
    for (const n of names) {
      const got = await d.get(`/v1/secrets/${n}?format=raw`);
      assert.notEqual(got.status, 200, `${n} must not be served from the old copy`);
      assertNoLeaks(got.body, n, values);
    }
    const h = (await d.get("/v1/health")).json();
    assert.deepEqual(
      h.quarantined.map((q: { reason: string }) => q.reason),
      ["cache.db was written under a different cache key (kek.sealed was replaced or re-initialised)"],
      "moved aside, never served",
    );
    fs.renameSync(path.join(dir, "secrets.away"), path.join(dir, "secrets"));
  });

  test("revoke --all with the daemon stopped rotates the key too", async () => {
    await d.stop();
    const kek = fs.readFileSync(path.join(dataDir, "kek.sealed"));
    const r = await jsonCli(["revoke", "--all", ...c]);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.out.via, "cli");
    assert.notDeepEqual(fs.readFileSync(path.join(dataDir, "kek.sealed")), kek);
    await start("socket");
    assert.equal((await d.get("/v1/secrets/demo/api-token")).status, 410);
  });
});

test("seal.type tpm2: an old copy of the whole data_dir restored after revoke --all is refused by the anti-rollback counter", async (t) => {
  const tpm = await startSwtpm(t);
  const dir = tmpDir(t);
  const config = demoConfig(dir, { seal: { type: "tpm2", tcti: tpm.tcti }, sync: { interval: "1h" } });
  const dataDir = String(config.data_dir);
  const c = ["--config", path.join(dir, "sealcache.yaml")];
  let d = await launch(t, dir, config, { waitFor: "synced" });
  await d.stop();
  const backup = path.join(dir, "backup");
  fs.cpSync(dataDir, backup, { recursive: true });
  d = await launch(t, dir, config, { waitFor: "synced" });
  const r = await jsonCli(["revoke", "--all", ...c]);
  assert.equal(r.code, 0, r.stderr);
  assert.deepEqual(r.out.revoked, DEMO);
  assert.equal((await d.get("/v1/secrets/demo/api-token")).status, 410);
  await d.stop();

  // The copy's kek.sealed still unseals on this TPM: only the counter tells it is old.
  fs.rmSync(dataDir, { recursive: true });
  fs.cpSync(backup, dataDir, { recursive: true });
  fs.renameSync(path.join(dir, "secrets"), path.join(dir, "secrets.away"));
  const old = await launch(t, dir, config, { waitFor: "socket" });
  const h = await old.get("/v1/health");
  assert.equal(h.status, 503);
  assert.match(h.json().sealed_reason, /older than this device's TPM anti-rollback counter/);
  for (const n of DEMO) {
    const got = await old.get(`/v1/secrets/${n}`);
    assert.deepEqual([got.status, got.json().error], [503, "sealed"]);
    assertNoLeaks(got.body, n);
  }
  assert.equal(await old.stop(), 0);
});

test("a revoke wins over a fetch that was already in flight: the value it brings back afterwards is dropped", async (t) => {
  const fv = await new FakeVault({ namespace: "edge" }).start();
  t.after(() => fv.stop());
  const v1 = planted("inflight1");
  const v2 = planted("inflight2");
  fv.putKv2("secret/data/app", { v: v1 });
  const dir = tmpDir(t);
  const d = await launch(
    t,
    dir,
    approleDaemonConfig(dir, fv, { app: { provider: "vault", path: "secret/data/app", key: "v", refresh: "1h" } }, { timeout: "10s" }),
    {
      waitFor: "synced",
      extraSecrets: [v1, v2],
    },
  );
  const c = ["--config", path.join(dir, "sealcache.yaml")];
  // A new version in the backend, read slowly: the refresh's data read stays in flight for a second.
  fv.putKv2("secret/data/app", { v: v2 });
  fv.fail("slow", { match: /\/data\/app/, times: 1 });
  const reads = fv.count("kv2-data");
  const applied = () => [...d.output().matchAll(/"msg":"sync batch applied"/g)].length;
  const batches = applied();
  assert.equal((await d.get("/v1/refresh?name=app", { method: "POST" })).status, 202);
  await eventually(() => fv.count("kv2-data") > reads, 10_000, "the data read in flight");
  const r = await cli(["revoke", "app", ...c]);
  assert.equal(r.code, 0, r.stderr);
  await eventually(() => applied() > batches, 10_000, "the in-flight batch landed");
  const got = await d.get("/v1/secrets/app");
  assert.deepEqual([got.status, got.json().error], [410, "revoked"], "what was fetched before the revoke is not served after it");
  assert.match(d.output(), /"msg":"fetched before a revoke that landed meanwhile; dropped"/);
  // Asked for after the revoke: fetched and served again.
  assert.equal((await d.get("/v1/refresh?name=app", { method: "POST" })).status, 202);
  await eventually(async () => (await d.get("/v1/secrets/app?format=raw")).body === v2, 10_000, "fetched again");
});
