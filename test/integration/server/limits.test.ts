// A socket that holds under abuse from one account: a request flood and more
// connections than its share from one uid get 429 rate_limited (or are cut off by
// the timeouts) while another uid's lookups keep answering promptly.
import assert from "node:assert/strict";
import fs from "node:fs";
import net from "node:net";
import { after, before, describe, test } from "node:test";
import { demoConfig, launch, MAIN, sleep, type RunningDaemon } from "../../support/daemon.js";
import { assertNoLeaks } from "../../support/planted.js";
import { tmpDir } from "../../support/tmp.js";
import {
  clientAs,
  crossUserUnavailable,
  ensureTestAccounts,
  installClient,
  runAs,
  shareWithGroup,
  type Account,
  type TestAccounts,
} from "../../support/users.js";
import { TARPIT_MS } from "../../../src/server/http.js";
import { API_TOKEN, DB_PASSWORD, KAFKA_PASSWORD, assertServing, exchange } from "./api-helpers.js";
import { suiteScope } from "../../support/scope.js";

const VALUES: Record<string, string> = { "demo/api-token": API_TOKEN, "demo/db-password": DB_PASSWORD, "demo/kafka-password": KAFKA_PASSWORD };

interface Answer {
  status: number;
  body: string;
  retryAfter: string | null;
  ms: number;
}
interface Loop {
  statuses: Record<string, number>;
  latencies: number[];
}

const RATE = { per_uid_rps: 20, burst: 10 };
const PER_UID = 4;
const skip = crossUserUnavailable();
const scope = suiteScope();
after(async () => {
  await scope.run();
});

const p99 = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.max(0, Math.ceil(xs.length * 0.99) - 1)] ?? NaN;

describe("per-uid limits between accounts", { skip }, () => {
  let acct: TestAccounts;
  let d: RunningDaemon;
  let client: string;
  const NODE = fs.realpathSync(process.execPath);
  const TOKEN = "/v1/secrets/demo/api-token?format=raw";

  before(async () => {
    acct = ensureTestAccounts();
    const dir = tmpDir(scope);
    client = installClient(dir);
    d = await launch(
      scope,
      dir,
      demoConfig(dir, {
        server: { max_connections_per_uid: PER_UID, rate: RATE },
        policy: [
          { match: { group: acct.group.name }, allow: ["demo/api-token"] },
          { match: { uid: 0 }, allow: ["**"], admin: true },
        ],
      }),
      { waitFor: "synced" },
    );
    shareWithGroup(dir, d.socket, acct.group.gid);
  });

  /** A's steady lookups (about 10/s, within its own rate) for `ms`. */
  const steadyA = (ms: number) => clientAs<Loop>(acct.a, NODE, client, { op: "loop", socket: d.socket, paths: [TOKEN], durationMs: ms, pauseMs: 100 });

  test("a request flood from one uid gets 429 rate_limited with Retry-After; another uid's lookups keep answering", async (t) => {
    const floodMs = 3_000;
    const [flood, a] = await Promise.all([
      clientAs<{ statuses: Record<string, number>; samples: Record<string, Answer> }>(acct.b, NODE, client, {
        op: "flood",
        socket: d.socket,
        path: TOKEN,
        connections: PER_UID,
        durationMs: floodMs,
      }),
      sleep(300).then(() => steadyA(2_000)),
    ]);
    t.diagnostic(
      `B flood: ${JSON.stringify(flood.statuses)}; A: ${JSON.stringify(a.statuses)}, p99 ${p99(a.latencies).toFixed(1)} ms, max ${Math.max(...a.latencies).toFixed(1)} ms`,
    );
    assert.deepEqual(Object.keys(a.statuses), ["200"], `every lookup of A answered 200: ${JSON.stringify(a.statuses)}`);
    assert.ok(a.latencies.length >= 10);
    assert.ok(Math.max(...a.latencies) < 1_000, `A was never stalled: max ${Math.max(...a.latencies)} ms`);
    const ok = flood.statuses["200"] ?? 0;
    const limited = flood.statuses["429"] ?? 0;
    assert.ok(limited > 0, `B's flood was refused: ${JSON.stringify(flood.statuses)}`);
    assert.ok(ok <= RATE.burst + RATE.per_uid_rps * (floodMs / 1000 + 1), `B got at most its rate through: ${ok}`);
    // Each refusal is answered after TARPIT_MS: a client ignoring Retry-After gets a few per connection per second.
    assert.ok(limited <= PER_UID * (floodMs / TARPIT_MS) + PER_UID, `refusals were slowed down: ${limited}`);
    assert.deepEqual(Object.keys(flood.statuses).sort(), ["200", "429"], "nothing but answers and refusals");
    const sample = flood.samples["429"]!;
    const j = JSON.parse(sample.body);
    assert.equal(j.error, "rate_limited");
    assert.match(j.message, new RegExp(`uid ${acct.b.uid} is over its request rate \\(server\\.rate: 20/s, burst 10\\)`));
    assert.ok(Number(sample.retryAfter) >= 1, `Retry-After: ${sample.retryAfter}`);
    assert.ok(sample.ms >= TARPIT_MS - 20, `answered after the tarpit delay: ${sample.ms} ms`);
    assertNoLeaks(sample.body, "a 429");
    // Logged and audited as a summary, not once per refused request.
    const warns = d
      .output()
      .split("\n")
      .filter((l) => l.includes("per-uid rate limit") && l.includes(`"uid":${acct.b.uid}`));
    assert.ok(warns.length >= 1 && warns.length <= 2, `${warns.length} warn lines for ${limited} refusals`);
    const rows = (await d.get("/v1/audit?since=1m&limit=10000")).json<{ entries: { uid: number; code: string }[] }>().entries;
    const audited = rows.filter((r) => r.uid === acct.b.uid && r.code === "rate_limited").length;
    assert.ok(audited >= 1 && audited <= 2, `${audited} audit rows for ${limited} refusals`);
  });

  test("a pipelining flood that ignores its 429s is disconnected; another uid's lookups keep answering", async (t) => {
    await sleep(1_000);
    const floodMs = 3_000;
    const [flood, a] = await Promise.all([
      clientAs<{ statuses: Record<string, number>; connects: number }>(acct.b, NODE, client, {
        op: "pipeflood",
        socket: d.socket,
        path: TOKEN,
        connections: PER_UID,
        depth: 64,
        durationMs: floodMs,
      }),
      sleep(300).then(() => steadyA(2_000)),
    ]);
    const answered = Object.values(flood.statuses).reduce((x, y) => x + y, 0);
    t.diagnostic(
      `B pipelined: ${JSON.stringify(flood.statuses)} over ${flood.connects} connections; A: ${JSON.stringify(a.statuses)}, max ${Math.max(...a.latencies).toFixed(1)} ms`,
    );
    assert.deepEqual(Object.keys(a.statuses), ["200"]);
    assert.ok(Math.max(...a.latencies) < 1_000, `A was never stalled: max ${Math.max(...a.latencies)} ms`);
    assert.ok((flood.statuses["200"] ?? 0) <= RATE.burst + RATE.per_uid_rps * (floodMs / 1000 + 1), "no more than its rate got through");
    // Without the cut, every one of the 64 pipelined requests per connection is answered, thousands a second.
    assert.ok(answered < 1_000, `B's pipelines were cut off, not answered in full: ${answered} answers`);
    assert.ok(flood.connects > PER_UID, "its connections were closed under it");
    assert.match(d.output(), new RegExp(`"uid":${acct.b.uid}[^\n]*"connection dropped: it kept sending requests while refused`));
  });

  test("while a uid is over its request rate, its new connections get the same 429 at accept, before anything is read; other uids connect", async (t) => {
    await sleep(1_000);
    const refusedAtAccept = async () => Number(/^sealcache_connections_refused_total\{reason="rate"\} (\d+)$/m.exec((await d.get("/metrics")).body)?.[1] ?? 0);
    const before = await refusedAtAccept();
    // B asks faster than its rate, each request on a fresh connection: once its burst
    // is spent, the next connections find its bucket empty at accept.
    const [probes, a] = await Promise.all([
      clientAs<Answer[]>(acct.b, NODE, client, { op: "get", socket: d.socket, requests: Array.from({ length: 25 }, () => TOKEN) }),
      steadyA(1_500),
    ]);
    t.diagnostic(`B probes: ${probes.map((p) => p.status).join(" ")}; A: ${JSON.stringify(a.statuses)}`);
    assert.deepEqual(Object.keys(a.statuses), ["200"], "A connects and reads throughout");
    const limited = probes.filter((p) => p.status === 429);
    assert.ok(limited.length > 0, `B was refused while over its rate: ${probes.map((p) => p.status).join(" ")}`);
    assert.ok(
      probes.every((p) => p.status === 429 || (p.status === 200 && p.body === API_TOKEN)),
      "nothing but refusals and right answers",
    );
    for (const p of limited) {
      const j = JSON.parse(p.body);
      assert.equal(j.error, "rate_limited");
      assert.match(j.message, new RegExp(`^uid ${acct.b.uid} is over its request rate \\(server\\.rate: 20/s, burst 10\\); retry after \\d+ s$`));
      assert.ok(Number(p.retryAfter) >= 1, `Retry-After: ${p.retryAfter}`);
      assertNoLeaks(p.body, "a 429 at accept");
    }
    assert.ok((await refusedAtAccept()) > before, "counted as refused at accept for the rate, not parsed and refused per request");
    assert.match(d.output(), new RegExp(`"uid":${acct.b.uid}[^\n]*"connection refused: per-uid rate limit"`));
  });

  test("connections over the per-uid cap get a 429 and are closed; other uids connect; the CLI exits 5", async () => {
    await sleep(1_000); // B's bucket refills after the flood
    const held = clientAs<{ alive: number; probe: Answer; after: Answer }>(acct.b, NODE, client, {
      op: "hold",
      socket: d.socket,
      count: PER_UID,
      path: TOKEN,
      holdMs: 2_500,
    });
    await sleep(900);
    const [a, cliB] = await Promise.all([
      clientAs<Answer[]>(acct.a, NODE, client, { op: "get", socket: d.socket, requests: [TOKEN, TOKEN] }),
      runAs(acct.b, [NODE, MAIN, "--socket", d.socket, "get", "demo/api-token"]),
    ]);
    const h = await held;
    assert.equal(h.alive, PER_UID);
    assert.equal(h.probe.status, 429, JSON.stringify(h.probe));
    assert.equal(JSON.parse(h.probe.body).error, "rate_limited");
    assert.match(
      JSON.parse(h.probe.body).message,
      new RegExp(`uid ${acct.b.uid} already has ${PER_UID} connections open \\(server\\.max_connections_per_uid\\)`),
    );
    assert.equal(h.probe.retryAfter, "1");
    assert.equal(h.after.status, 200, "with its connections closed, B is served again");
    assert.deepEqual(
      a.map((r) => r.status),
      [200, 200],
      "A connects and reads while B is at its cap",
    );
    assert.equal(cliB.code, 5, `CLI exit for rate_limited: ${cliB.stderr}`);
    assert.match(cliB.stderr, /^sealcache: rate_limited: uid \d+ already has 4 connections open/);
    assertNoLeaks(cliB.stderr + cliB.stdout, "the refused CLI");
  });

  test("slowloris from one uid: its extra connections are refused at once, its slow ones cut off by the timeouts, other uids unaffected", async (t) => {
    await sleep(500);
    const [slow, a] = await Promise.all([
      clientAs<{ closedAfterMs: number; got: string }[]>(
        acct.b,
        NODE,
        client,
        { op: "slowloris", socket: d.socket, count: PER_UID * 2, durationMs: 10_000 },
        { timeoutMs: 20_000 },
      ),
      sleep(500).then(() => steadyA(4_000)),
    ]);
    const refused = slow.filter((s) => s.got.startsWith("HTTP/1.1 429 "));
    const timedOut = slow.filter((s) => s.got.startsWith("HTTP/1.1 408 "));
    t.diagnostic(
      `slow: ${slow.map((s) => `${s.got.slice(9, 12) || "---"}@${Math.round(s.closedAfterMs)}ms`).join(" ")}; A p99 ${p99(a.latencies).toFixed(1)} ms`,
    );
    assert.equal(refused.length, PER_UID, "the connections beyond the cap are refused");
    assert.ok(
      refused.every((s) => s.closedAfterMs < 2_000),
      "and closed at once",
    );
    assert.equal(timedOut.length, PER_UID, "the ones within the cap are answered 408 by the header timeout");
    assert.ok(
      timedOut.every((s) => s.closedAfterMs < 9_000),
      "and closed by the server, not by the client giving up",
    );
    assert.deepEqual(Object.keys(a.statuses), ["200"]);
    assert.ok(Math.max(...a.latencies) < 1_000, `A never waited on B's slow connections: ${Math.max(...a.latencies)} ms`);
  });

  test("the daemon's own uid is not held to the per-uid limits, and after all of it the daemon serves", async () => {
    const rs = await Promise.all(Array.from({ length: 40 }, () => d.get(TOKEN)));
    assert.deepEqual([...new Set(rs.map((r) => r.status))], [200]);
    await assertServing(d);
    assert.equal(rs[0]!.body, API_TOKEN);
    const m = (await d.get("/metrics")).body;
    for (const reason of ["per_uid", "cut"]) {
      const v = Number(new RegExp(`^sealcache_connections_refused_total\\{reason="${reason}"\\} (\\d+)$`, "m").exec(m)?.[1] ?? 0);
      assert.ok(
        v >= 1,
        `refusals counted for ${reason}: ${m
          .split("\n")
          .filter((l) => l.includes("refused"))
          .join("; ")}`,
      );
    }
    assert.match(m, /^sealcache_http_requests_total\{route="secret",code="429"\} \d+$/m);
    assert.doesNotMatch(d.output(), /"level":(50|60)/, "no error or fatal log line");
  });
});

describe("fair turns between accounts", { skip }, () => {
  let acct: TestAccounts;
  let d: RunningDaemon;
  let client: string;
  const NODE = fs.realpathSync(process.execPath);
  const raw = (n: string) => `/v1/secrets/${n}?format=raw`;

  before(async () => {
    acct = ensureTestAccounts();
    const dir = tmpDir(scope);
    client = installClient(dir);
    d = await launch(
      scope,
      dir,
      demoConfig(dir, {
        // A rate no pipeline here reaches: what is tested is the order of work, not refusals.
        server: { rate: { per_uid_rps: 100_000, burst: 100_000 } },
        policy: [
          { match: { user: acct.a.name }, allow: ["demo/api-token", "demo/kafka-password"] },
          { match: { user: acct.b.name }, allow: ["demo/db-password", "demo/kafka-password"] },
          { match: { uid: 0 }, allow: ["**"], admin: true },
        ],
      }),
      { waitFor: "synced" },
    );
    shareWithGroup(dir, d.socket, acct.group.gid);
  });

  test("two accounts pipelining at once: each request of each gets its own answer, in order (requests wait for their turn, none is lost or crossed)", async () => {
    const names = ["demo/api-token", "demo/kafka-password", "demo/db-password"];
    const paths = Array.from({ length: 60 }, (_, i) => raw(names[i % 3]!));
    const pipeline = (user: Account) => clientAs<{ status: number; body: string }[]>(user, NODE, client, { op: "pipeline", socket: d.socket, paths });
    // Within the default rate (100/s, burst 200): every answer is the policy's, none a 429.
    const [a1, b1, a2, b2] = await Promise.all([pipeline(acct.a), pipeline(acct.b), pipeline(acct.a), pipeline(acct.b)]);
    const expect = (allowed: readonly string[]) =>
      paths.map((_, i) => {
        const n = names[i % 3]!;
        return allowed.includes(n) ? { status: 200, body: VALUES[n]! } : { status: 403, error: "forbidden" };
      });
    const seen = (answers: { status: number; body: string }[]) =>
      answers.map((r) => (r.status === 200 ? { status: 200, body: r.body } : { status: r.status, error: JSON.parse(r.body).error }));
    for (const r of [a1!, a2!]) assert.deepEqual(seen(r), expect(["demo/api-token", "demo/kafka-password"]));
    for (const r of [b1!, b2!]) assert.deepEqual(seen(r), expect(["demo/db-password", "demo/kafka-password"]));
    await assertServing(d);
  });

  test("one account's deep pipeline does not hold another caller's request: it is answered while the pipeline is still being worked through", async (t) => {
    const DEPTH = 400;
    let out = "";
    // The test reacts to the daemon's own log: the first of B's requests answered.
    const started = new Promise<void>((resolve) => {
      const on = (c: Buffer) => {
        out += c.toString("utf8");
        if (/"route":"list"[^\n]*"msg":"request"/.test(out)) {
          d.child.stdout!.off("data", on);
          resolve();
        }
      };
      d.child.stdout!.on("data", on);
    });
    const mark = d.output().length;
    // Listings (a route no other test here uses, so its log lines are B's alone).
    const pipeline = clientAs<{ status: number; body: string }[]>(acct.b, NODE, client, {
      op: "pipeline",
      socket: d.socket,
      paths: Array.from({ length: DEPTH }, () => "/v1/secrets?prefix=demo/"),
    });
    await started;
    const other = await d.get("/metrics");
    const answers = await pipeline;
    assert.equal(other.status, 200);
    assert.equal(answers.length, DEPTH);
    const names = (r: { body: string }) => (JSON.parse(r.body) as { secrets: { name: string }[] }).secrets.map((x) => x.name);
    assert.ok(
      answers.every((r) => r.status === 200 && names(r).join() === "demo/db-password,demo/kafka-password"),
      "every pipelined request answered, rightly",
    );
    // The daemon logs each request as it finishes: the other caller's is among B's, not after them all.
    await d.waitForLog(/"route":"metrics"[^\n]*"msg":"request"/);
    const lines = d
      .output()
      .slice(mark)
      .split("\n")
      .filter((l) => l.includes('"msg":"request"'));
    const lists = lines.map((l, i) => (l.includes('"route":"list"') ? i : -1)).filter((i) => i >= 0);
    const metrics = lines.findIndex((l) => l.includes('"route":"metrics"'));
    t.diagnostic(`B's ${lists.length} requests finished at lines ${lists[0]}..${lists.at(-1)}; the other caller's at line ${metrics}`);
    assert.equal(lists.length, DEPTH);
    assert.ok(metrics >= 0 && metrics < lists.at(-1)!, `answered at line ${metrics} of ${lines.length}, before B's last (line ${lists.at(-1)})`);
  });
});

test("connections over server.max_connections get 503 unavailable and are closed", async (t) => {
  const dir = tmpDir(t);
  const d = await launch(t, dir, demoConfig(dir, { server: { max_connections: 5 } }), { waitFor: "synced" });
  const idle = await Promise.all(
    Array.from(
      { length: 5 },
      () =>
        new Promise<net.Socket>((resolve) => {
          const s = net.connect(d.socket);
          s.on("connect", () => resolve(s));
        }),
    ),
  );
  await sleep(100);
  const x = await exchange(d.socket, "GET /v1/health HTTP/1.1\r\nHost: sealcache\r\n\r\n", { untilClose: true });
  assert.equal(x.responses[0]?.status, 503, x.raw);
  assert.equal(JSON.parse(x.responses[0]!.body).error, "unavailable");
  assert.match(JSON.parse(x.responses[0]!.body).message, /already has 5 connections open \(server\.max_connections\)/);
  assert.ok(x.closed);
  for (const s of idle) s.destroy();
  await sleep(100);
  await assertServing(d);
});
