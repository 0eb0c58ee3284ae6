// Identity after connect, with real processes and real accounts (README "Callers and
// policy"): a process that execs another program on its connection loses what an exe
// rule granted it, and falls through to the rules that do not name an exe; exec'ing
// into an allowed program gains nothing; a process that changes uid keeps the uid it
// connected with; a connection passed over SCM_RIGHTS to another account speaks for
// the account that opened it while that process lives, and for nobody once it exits.
// The tricks are played by test/support/peer-tricks.py (Python's socket.send_fds).
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import { after, before, describe, test } from "node:test";
import { demoConfig, launch, type RunningDaemon } from "../../support/daemon.js";
import { assertNoLeaks } from "../../support/planted.js";
import { tmpDir } from "../../support/tmp.js";
import { crossUserUnavailable, ensureTestAccounts, runAs, shareWithGroup, type Account, type TestAccounts } from "../../support/users.js";
import { API_TOKEN, DB_PASSWORD, KAFKA_PASSWORD } from "./api-helpers.js";
import { suiteScope } from "../../support/scope.js";

interface Answer {
  status: number;
  body: string;
}
interface Exec {
  pid: number;
  pid_after: number;
  exe: string;
  exe_after: string;
  before: Answer[];
  between?: Answer[];
  after: Answer[];
}
interface Passed {
  opener_pid: number;
  receiver_pid: number;
  while_alive: Answer[];
  own: Answer[];
  after_exit: Answer[];
}
interface AuditRow {
  uid: number | null;
  pid: number | null;
  exe: string | null;
  name: string | null;
  status: number;
  code: string;
}

const PYTHON_LINK = "/usr/bin/python3";
const python = fs.existsSync(PYTHON_LINK) ? fs.realpathSync(PYTHON_LINK) : undefined;
const skip = crossUserUnavailable() ?? (python ? undefined : `${PYTHON_LINK} is not installed`);
const scope = suiteScope();
after(async () => {
  await scope.run();
});

const raw = (n: string) => `/v1/secrets/${n}?format=raw`;
const error = (a: Answer) => JSON.parse(a.body) as { error: string; message: string };

describe("identity after connect", { skip }, () => {
  let acct: TestAccounts;
  let d: RunningDaemon;
  let tricks: string;
  /** A copy of the Python interpreter that only the exe rules name. */
  let edgePython: string;

  before(async () => {
    acct = ensureTestAccounts();
    const dir = tmpDir(scope);
    fs.mkdirSync(path.join(dir, "bin"), { mode: 0o755 });
    edgePython = path.join(dir, "bin", "edge-python");
    fs.copyFileSync(python!, edgePython);
    fs.chmodSync(edgePython, 0o755);
    tricks = path.join(dir, "peer-tricks.py");
    fs.copyFileSync(new URL("../../support/peer-tricks.py", import.meta.url), tricks);
    fs.chmodSync(tricks, 0o644);
    d = await launch(
      scope,
      dir,
      demoConfig(dir, {
        policy: [
          { match: { user: acct.a.name, exe: edgePython }, allow: ["demo/db-password"] },
          { match: { user: acct.a.name }, allow: ["demo/api-token"] },
          { match: { user: acct.b.name }, allow: ["demo/kafka-password"] },
          { match: { uid: 0, exe: edgePython }, allow: ["demo/api-token"] },
          { match: { uid: 0 }, allow: ["**"], admin: true },
        ],
      }),
      { waitFor: "synced" },
    );
    shareWithGroup(dir, d.socket, acct.group.gid);
  });

  const run = async <T>(user: Account | "root", interpreter: string, job: Record<string, unknown>): Promise<T> => {
    const argv = [interpreter, tricks, JSON.stringify({ socket: d.socket, ...job })];
    const r =
      user === "root"
        ? await new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve, reject) => {
            const c = spawn(argv[0]!, argv.slice(1), { stdio: ["ignore", "pipe", "pipe"] });
            let stdout = "";
            let stderr = "";
            c.stdout.on("data", (x: Buffer) => (stdout += x));
            c.stderr.on("data", (x: Buffer) => (stderr += x));
            c.on("error", reject);
            c.on("close", (code) => resolve({ code, stdout, stderr }));
          })
        : await runAs(user, argv);
    assert.equal(r.code, 0, `peer-tricks ${String(job.op)} as ${user === "root" ? "root" : user.name}: ${r.stderr.slice(-2000)}`);
    return JSON.parse(r.stdout) as T;
  };
  const audit = async (q: string): Promise<AuditRow[]> => (await d.get(`/v1/audit?${q}`)).json<{ entries: AuditRow[] }>().entries;

  test("a process that execs another program on its connection loses the exe rule's grant, and the rules without an exe still apply", async () => {
    const r = await run<Exec>(acct.a, edgePython, {
      op: "exec",
      before: [raw("demo/db-password")],
      exec: python,
      after: [raw("demo/db-password"), raw("demo/api-token"), raw("demo/db-password")],
    });
    assert.equal(r.pid_after, r.pid, "the same process, the same connection");
    assert.deepEqual([r.exe, r.exe_after], [edgePython, python]);
    assert.deepEqual(
      r.before.map((x) => [x.status, x.body]),
      [[200, DB_PASSWORD]],
      "as edge-python: the exe rule allows demo/db-password",
    );
    const [lost, fallThrough, still] = r.after;
    // (No body in the message: were it a 200, it would hold the value.)
    assert.equal(lost!.status, 403, "after the exec, the exe rule must not match");
    assert.equal(error(lost!).error, "forbidden");
    assert.match(
      error(lost!).message,
      new RegExp(
        `^caller uid ${acct.a.uid} \\(pid ${r.pid}; it runs "${python}" now, not "${edgePython}" as when it connected, so rules naming an exe no longer match this connection\\) may not read "demo/db-password"`,
      ),
    );
    assert.deepEqual(
      [fallThrough!.status, fallThrough!.body],
      [200, API_TOKEN],
      "the account's own rule (no exe) still answers: uid and gid are the connection's",
    );
    assert.equal(still!.status, 403, "and the exe grant stays lost");
    assertNoLeaks(lost!.body + still!.body, "the refusals after exec");
    const rows = (await audit("name=demo/db-password&since=1m")).filter((x) => x.pid === r.pid);
    assert.deepEqual(
      rows.map((x) => [x.status, x.code]),
      [
        [200, "ok"],
        [403, "forbidden"],
        [403, "forbidden"],
      ],
    );
    assert.ok(
      rows.every((x) => x.exe === edgePython),
      "the trail records the program identified at accept",
    );
    assert.match(d.output(), new RegExp(`"uid":${acct.a.uid}[^\\n]*it runs [^\\n]*"request denied"`), "the denial's cause is in the log");
  });

  test("exec'ing into the program an exe rule names, after connecting as another, gains nothing", async () => {
    const r = await run<Exec>(acct.a, python!, {
      op: "exec",
      before: [raw("demo/db-password")],
      exec: edgePython,
      after: [raw("demo/db-password"), raw("demo/api-token")],
    });
    assert.equal(r.exe_after, edgePython);
    assert.equal(r.before[0]!.status, 403);
    assert.equal(r.after[0]!.status, 403, "identified as python at accept; what it runs later never adds a grant");
    assert.deepEqual([r.after[1]!.status, r.after[1]!.body], [200, API_TOKEN]);
  });

  test("a process that changes uid after connecting keeps the uid it connected with (SO_PEERCRED); once it execs, exe rules stop matching", async () => {
    const me = { uid: acct.a.uid, gid: acct.a.gid, groups: [acct.a.gid, acct.group.gid] }; // its groups, as at login
    const r = await run<Exec>("root", edgePython, {
      op: "exec",
      before: [raw("demo/api-token"), raw("demo/db-password")],
      become: me,
      between: [raw("demo/api-token"), raw("demo/db-password")],
      exec: python,
      after: [raw("demo/api-token"), raw("demo/kafka-password")],
    });
    const st = (xs: Answer[] | undefined) => (xs ?? []).map((x) => x.status);
    // Root running edge-python: the first rule for uid 0 with that exe allows only demo/api-token.
    assert.deepEqual(st(r.before), [200, 403]);
    assert.deepEqual(st(r.between), [200, 403], `now uid ${acct.a.uid}, but the connection is root's: the same rule, not ${acct.a.name}'s`);
    // After the exec the exe rule no longer matches; the connection's uid is still 0, so root's own rule decides.
    assert.deepEqual(st(r.after), [200, 200]);
    assert.equal(r.after[1]!.body, KAFKA_PASSWORD);
    const rows = (await audit("since=1m&limit=1000")).filter((x) => x.pid === r.pid);
    assert.ok(rows.length >= 6 && rows.every((x) => x.uid === 0), `recorded as uid 0 throughout: ${JSON.stringify(rows)}`);
  });

  test("a connection passed over SCM_RIGHTS to another account's process speaks for its opener while the opener lives, and for nobody after", async () => {
    const groups = (a: Account) => [a.gid, acct.group.gid];
    const r = await run<Passed>("root", python!, {
      op: "pass",
      opener: { uid: acct.a.uid, gid: acct.a.gid, groups: groups(acct.a) },
      receiver: { uid: acct.b.uid, gid: acct.b.gid, groups: groups(acct.b) },
      while_alive: [raw("demo/api-token"), raw("demo/kafka-password")],
      own: [raw("demo/api-token"), raw("demo/kafka-password")],
      after_exit: [raw("demo/api-token")],
    });
    // B's process, on A's connection: A's rules, not B's.
    assert.deepEqual(
      r.while_alive.map((x) => [x.status, x.status === 200 ? x.body : error(x).error]),
      [
        [200, API_TOKEN],
        [403, "forbidden"],
      ],
    );
    // The same process on a connection of its own is B.
    assert.deepEqual(
      r.own.map((x) => [x.status, x.status === 200 ? x.body : error(x).error]),
      [
        [403, "forbidden"],
        [200, KAFKA_PASSWORD],
      ],
    );
    // The opener has exited and been reaped: the passed connection lends nobody an identity.
    const gone = r.after_exit[0]!;
    assert.equal(gone.status, 403, "refused once the opener has gone");
    assert.match(error(gone).message, new RegExp(`the process that opened this connection \\(pid ${r.opener_pid}\\) has exited`));
    const rows = (await audit("name=demo/api-token&since=1m&limit=1000")).filter((x) => x.pid === r.opener_pid);
    assert.deepEqual(
      rows.map((x) => [x.uid, x.status]),
      [
        [acct.a.uid, 200],
        [acct.a.uid, 403],
      ],
      "recorded against the opener, whoever sent the request",
    );
    assertNoLeaks(gone.body, "the refusal after the opener exited");
  });
});
