// Who is asking: real client processes running as other accounts (test users
// created here), through a copy of the node binary (exe rules), inside a cgroup
// named like a systemd unit (unit rules). Policy decides per caller; reads, denials
// and admin actions land in the audit trail, which never holds a value; a
// connection handed to another process stops working once its opener exits.
import assert from "node:assert/strict";
import fs from "node:fs";
import path from "node:path";
import { after, before, describe, test } from "node:test";
import Database from "better-sqlite3";
import { cli, demoConfig, launch, MAIN, type RunningDaemon } from "../../support/daemon.js";
import { assertNoLeaks, databaseBytes } from "../../support/planted.js";
import { tmpDir } from "../../support/tmp.js";
import {
  clientAs,
  crossUserUnavailable,
  ensureTestAccounts,
  installClient,
  runAs,
  shareWithGroup,
  unitCgroup,
  type Account,
  type TestAccounts,
  type UnitCgroup,
} from "../../support/users.js";
import type { AuditEntryJson } from "../../../src/store/audit.js";
import { API_TOKEN, DB_PASSWORD, KAFKA_PASSWORD } from "./api-helpers.js";
import { suiteScope } from "../../support/scope.js";

interface Answer {
  status: number;
  body: string;
  retryAfter: string | null;
}
type AuditRow = AuditEntryJson;

const skip = crossUserUnavailable();
const scope = suiteScope();
after(async () => {
  await scope.run();
});

describe("callers as other accounts", { skip }, () => {
  let acct: TestAccounts;
  let d: RunningDaemon;
  let dir: string;
  let client: string;
  /** A copy of the node binary only the exe rule names. */
  let edgeNode: string;
  let unit: UnitCgroup | string;
  const unitName = `sc-edge-${process.pid}.service`;
  const NODE = fs.realpathSync(process.execPath);

  before(async () => {
    acct = ensureTestAccounts();
    dir = tmpDir(scope);
    fs.mkdirSync(path.join(dir, "bin"), { mode: 0o755 });
    edgeNode = path.join(dir, "bin", "edge-node");
    fs.copyFileSync(process.execPath, edgeNode);
    fs.chmodSync(edgeNode, 0o755);
    client = installClient(dir);
    unit = unitCgroup(unitName);
    if (typeof unit !== "string") scope.after(() => (unit as UnitCgroup).remove());
    const config = demoConfig(dir, {
      policy: [
        { match: { user: acct.a.name, exe: edgeNode }, allow: ["demo/db-password"] },
        { match: { user: acct.a.name, unit: unitName }, allow: ["demo/kafka-password"] },
        { match: { user: acct.a.name }, allow: ["demo/api-token"] },
        { match: { user: acct.b.name, group: acct.group.name }, allow: ["demo/kafka-password"] },
        { match: { uid: 0 }, allow: ["**"], admin: true },
      ],
    });
    d = await launch(scope, dir, config, { waitFor: "synced" });
    shareWithGroup(dir, d.socket, acct.group.gid);
  });

  const get = (user: Account, requests: (string | { path: string; method: string })[], opts: { node?: string; prefix?: readonly string[] } = {}) =>
    clientAs<Answer[]>(user, opts.node ?? NODE, client, { op: "get", socket: d.socket, requests }, { prefix: opts.prefix });
  const secret = (n: string) => `/v1/secrets/${n}?format=raw`;
  const audit = async (q: string): Promise<AuditRow[]> => {
    const r = await d.get(`/v1/audit?${q}`);
    assert.equal(r.status, 200, r.body);
    return r.json<{ entries: AuditRow[] }>().entries;
  };

  test("each account reads what its rule allows and is refused the rest", async () => {
    const [a1, a2, a3] = await get(acct.a, [secret("demo/api-token"), secret("demo/db-password"), secret("demo/kafka-password")]);
    assert.equal(a1!.status, 200, a1!.body);
    assert.equal(a1!.body, API_TOKEN);
    for (const r of [a2!, a3!]) {
      assert.equal(r.status, 403);
      assert.equal(JSON.parse(r.body).error, "forbidden");
      assert.match(JSON.parse(r.body).message, new RegExp(`caller uid ${acct.a.uid} \\(pid \\d+\\) may not read`));
    }
    const [b1, b2] = await get(acct.b, [secret("demo/kafka-password"), secret("demo/api-token")]);
    assert.equal(b1!.status, 200, b1!.body);
    assert.equal(b1!.body, KAFKA_PASSWORD);
    assert.equal(b2!.status, 403);
    assertNoLeaks(a2!.body + a3!.body + b2!.body, "denials");
  });

  test("an exe rule matches only that program: the same account through another binary is a different caller", async () => {
    const [viaCopy, copyOther] = await get(acct.a, [secret("demo/db-password"), secret("demo/api-token")], { node: edgeNode });
    assert.equal(viaCopy!.status, 200, viaCopy!.body);
    assert.equal(viaCopy!.body, DB_PASSWORD);
    assert.equal(copyOther!.status, 403, "first match wins: the exe rule allows only demo/db-password");
    const [viaNode] = await get(acct.a, [secret("demo/db-password")]);
    assert.equal(viaNode!.status, 403, "the real node binary is not the exe the rule names");
    const rows = await audit("name=demo/db-password");
    assert.ok(
      rows.some((r) => r.uid === acct.a.uid && r.exe === edgeNode && r.status === 200 && r.code === "ok"),
      JSON.stringify(rows),
    );
    assert.ok(
      rows.some((r) => r.uid === acct.a.uid && r.exe === NODE && r.status === 403 && r.code === "forbidden"),
      JSON.stringify(rows),
    );
  });

  test("a unit rule matches only processes in that unit's cgroup", async (t) => {
    if (typeof unit === "string") return t.skip(`${unit}; the cgroup parsing is covered by test/unit/policy/cgroup.test.ts`);
    const [inUnit, inUnitOther] = await get(acct.a, [secret("demo/kafka-password"), secret("demo/api-token")], { prefix: unit.prefix });
    assert.equal(inUnit!.status, 200, inUnit!.body);
    assert.equal(inUnit!.body, KAFKA_PASSWORD);
    assert.equal(inUnitOther!.status, 403, "first match wins: the unit rule allows only demo/kafka-password");
    const [outside] = await get(acct.a, [secret("demo/kafka-password")]);
    assert.equal(outside!.status, 403, "the same account outside the unit");
    const rows = await audit("name=demo/kafka-password");
    assert.ok(
      rows.some((r) => r.uid === acct.a.uid && r.unit === unitName && r.status === 200),
      JSON.stringify(rows),
    );
  });

  test("list shows each caller only what it may read", async () => {
    const names = (r: Answer) => (JSON.parse(r.body).secrets as { name: string; value?: unknown }[]).map((s) => s.name);
    const [a] = await get(acct.a, ["/v1/secrets"]);
    const [b] = await get(acct.b, ["/v1/secrets"]);
    const [viaCopy] = await get(acct.a, ["/v1/secrets?prefix=demo/"], { node: edgeNode });
    assert.deepEqual(names(a!), ["demo/api-token"]);
    assert.deepEqual(names(b!), ["demo/kafka-password"]);
    assert.deepEqual(names(viaCopy!), ["demo/db-password"]);
    assertNoLeaks(a!.body + b!.body + viaCopy!.body, "list answers");
    const root = await d.get("/v1/secrets");
    assert.equal(root.json().secrets.length, 3, "root's rule allows everything");
  });

  test("refresh and audit are admin-only; refusals are audited, the admin's refresh too", async () => {
    const [refresh, auditRead, auditCli] = await get(acct.a, [{ path: "/v1/refresh?name=demo/api-token", method: "POST" }, "/v1/audit", "/v1/audit?since=1h"]);
    assert.equal(refresh!.status, 403);
    assert.match(JSON.parse(refresh!.body).message, /may not trigger a refresh; it needs a policy rule with admin: true/);
    assert.equal(auditRead!.status, 403);
    assert.match(JSON.parse(auditRead!.body).message, /may not read the audit trail/);
    assert.equal(auditCli!.status, 403);
    // The CLI as that account: exit 4.
    const asA = await runAs(acct.a, [NODE, MAIN, "--socket", d.socket, "audit"]);
    assert.equal(asA.code, 4, asA.stderr);
    assert.match(asA.stderr, /^sealcache: forbidden: .* may not read the audit trail/);
    const ok = await d.get("/v1/refresh?name=demo/api-token", { method: "POST" });
    assert.equal(ok.status, 202);
    const rows = await audit("since=5m&limit=1000");
    const mine = rows.filter((r) => r.uid === acct.a.uid);
    assert.ok(
      mine.some((r) => r.route === "refresh" && r.status === 403 && r.code === "forbidden" && r.name === "demo/api-token"),
      JSON.stringify(mine),
    );
    assert.ok(mine.filter((r) => r.route === "audit" && r.status === 403).length >= 3, "every refused audit read, CLI included");
    assert.ok(rows.some((r) => r.uid === 0 && r.route === "refresh" && r.status === 202 && r.code === "ok" && r.name === "demo/api-token"));
    assert.ok(!rows.some((r) => r.route === "audit" && r.status === 200), "reading the trail is not itself an entry");
  });

  test("every read and denial is in the trail: time, uid, pid, exe, unit, name, route, outcome; `sealcache audit` shows it", async () => {
    const t0 = Date.now();
    const [ok, no] = await get(acct.b, [secret("demo/kafka-password"), secret("demo/db-password")]);
    assert.equal(ok!.status, 200);
    assert.equal(no!.status, 403);
    const rows = (await audit("since=1m&limit=1000")).filter((r) => r.uid === acct.b.uid && Date.parse(r.at) >= t0 - 1000);
    const read = rows.filter((r) => r.name === "demo/kafka-password").at(-1)!;
    const denied = rows.filter((r) => r.name === "demo/db-password").at(-1)!;
    assert.ok(read && denied, JSON.stringify(rows));
    assert.deepEqual(
      { ...read, at: undefined, pid: undefined },
      {
        at: undefined,
        pid: undefined,
        uid: acct.b.uid,
        exe: NODE,
        unit: read.unit,
        route: "secret",
        name: "demo/kafka-password",
        status: 200,
        code: "ok",
        principal: "peer",
      },
    );
    assert.equal(typeof read.pid, "number");
    assert.equal(read.pid, denied.pid, "one client process, two requests");
    assert.deepEqual([denied.route, denied.status, denied.code], ["secret", 403, "forbidden"]);
    assert.match(d.output(), new RegExp(`"level":"warn".*"uid":${acct.b.uid}.*"request denied"`), "a denial is also a warn line in the log");

    const json = await cli(["--socket", d.socket, "audit", "--json", "--name", "demo/db-password", "--since", "1m"]);
    assert.equal(json.code, 0, json.stderr);
    const entries = JSON.parse(json.stdout).entries as AuditRow[];
    assert.ok(entries.length > 0 && entries.every((e) => e.name === "demo/db-password"));
    const human = await cli(["--socket", d.socket, "audit", "--since", new Date(t0 - 1000).toISOString()]);
    assert.equal(human.code, 0, human.stderr);
    const lines = human.stdout.trimEnd().split("\n");
    assert.match(lines[0]!, /^TIME\s+UID\s+PID\s+UNIT\s+EXE\s+ROUTE\s+NAME\s+STATUS\s+OUTCOME$/);
    assert.ok(
      lines.some((l) => l.includes(`${acct.b.uid}`) && /\ssecret\s+demo\/db-password\s+403\s+forbidden$/.test(l)),
      human.stdout,
    );
    const bad = await cli(["--socket", d.socket, "audit", "--since", "yesterday"]);
    assert.equal(bad.code, 2, "a bad --since is a usage error (bad_request)");
    assert.match(bad.stderr, /since must be an ISO 8601 time or a duration/);
  });

  test("a connection handed to another process stops working once the process that opened it exits", async () => {
    const r = await clientAs<{ first: Answer; second: Answer; heirPid: number }>(acct.a, NODE, client, {
      op: "handoff",
      socket: d.socket,
      path: secret("demo/api-token"),
    });
    assert.equal(r.first.status, 200, "while the opener lives, the connection speaks for it");
    assert.equal(r.first.body, API_TOKEN);
    assert.equal(r.second.status, 403, `after it exited: ${JSON.stringify(r.second)}`);
    const j = JSON.parse(r.second.body);
    assert.equal(j.error, "forbidden");
    assert.match(j.message, /the process that opened this connection \(pid \d+\) has exited/);
    const rows = (await audit("name=demo/api-token&since=1m")).filter((x) => x.uid === acct.a.uid);
    const last = rows[rows.length - 1]!;
    assert.deepEqual([last.status, last.code], [403, "forbidden"]);
    assert.notEqual(last.pid, r.heirPid, "recorded against the opener's pid, not the process that used the connection");
    assert.equal(rows[rows.length - 2]!.pid, last.pid);
  });

  test("doctor and status warn about rules that match nothing or everyone", async () => {
    const cfg = path.join(dir, "doctor.yaml");
    fs.writeFileSync(
      cfg,
      fs
        .readFileSync(d.configFile, "utf8")
        .replace(
          /^policy:\n(?: {2}.*\n| {4}.*\n)*/m,
          `policy:\n  - { match: { user: ghost-user }, allow: ["**"] }\n  - { match: { user: ${acct.a.name}, exe: /opt/nowhere/agent }, allow: ["demo/*"] }\n  - { match: { group: ${acct.group.name} }, allow: ["**"] }\n  - { match: { unit: edge-agent }, allow: ["**"] }\n`,
        ),
    );
    const r = await cli(["--config", cfg, "doctor"]);
    const warns = r.stdout.split("\n").filter((l) => l.startsWith("warn  policy: "));
    assert.ok(
      warns.some((l) => /policy\[0\]\.match\.user: no local user "ghost-user"; the rule matches nobody/.test(l)),
      r.stdout,
    );
    assert.ok(
      warns.some((l) => /policy\[1\]\.match\.exe: \/opt\/nowhere\/agent is not an executable file/.test(l)),
      r.stdout,
    );
    assert.ok(
      warns.some((l) => /policy\[2\] matches every account that can open the socket \(gid \d+ is the socket's group\) and allows every secret/.test(l)),
      r.stdout,
    );
    assert.ok(
      warns.some((l) => /policy\[3\] allows every secret to every account running unit edge-agent\.service/.test(l)),
      r.stdout,
    );
    assert.ok(!r.stdout.includes("not active"), "unit/exe are not reported as inactive");
    const status = await cli(["--config", d.configFile, "status"]);
    assert.equal(status.code, 0, status.stderr);
    assert.doesNotMatch(status.stdout, /^policy: /m, "the running policy has no such rule");
  });

  test("the audit rows (audit.db) survive a shutdown right after the request, and hold no value", async () => {
    const [r] = await get(acct.a, [secret("demo/api-token")]);
    assert.equal(r!.status, 200);
    const at = Date.now();
    assert.equal(await d.stop(), 0);
    const file = path.join(dir, "data", "audit.db");
    const db = new Database(file, { readonly: true });
    try {
      const rows = db.prepare("SELECT * FROM audit WHERE at >= ? AND uid = ?").all(at - 2000, acct.a.uid) as { name: string; status: number }[];
      assert.ok(
        rows.some((x) => x.name === "demo/api-token" && x.status === 200),
        "written on shutdown",
      );
      const total = (db.prepare("SELECT count(*) AS n FROM audit").get() as { n: number }).n;
      assert.ok(total >= 1, `${total} rows`);
      const cols = (db.prepare("PRAGMA table_info(audit)").all() as { name: string }[]).map((c) => c.name);
      assert.deepEqual(cols, ["id", "at", "uid", "pid", "exe", "unit", "route", "name", "status", "code", "principal"], "no column for a value");
    } finally {
      db.close();
    }
    assertNoLeaks(databaseBytes(file), "cache.db with its audit table");
  });
});
