// Hostile and broken clients on the socket: malformed and oversized requests,
// garbage, pipelining, slowloris, and a seeded fuzz loop. One daemon serves the
// whole file; after every abuse it must still be alive and answering lookups.
import assert from "node:assert/strict";
import net from "node:net";
import { after, test } from "node:test";
import { demoConfig, launch, sleep, type RunningDaemon } from "../../support/daemon.js";
import { req } from "../../support/http.js";
import { leaksIn } from "../../support/planted.js";
import { tmpDir } from "../../support/tmp.js";
import { API_TOKEN, DB_PASSWORD, ERROR_CODES, KAFKA_PASSWORD, assertRawError, assertServing, exchange, seeded } from "./api-helpers.js";
import { suiteScope } from "../../support/scope.js";

const scope = suiteScope();
after(async () => {
  await scope.run();
});

let daemon: RunningDaemon | undefined;
async function d(): Promise<RunningDaemon> {
  if (!daemon) {
    const dir = tmpDir(scope);
    daemon = await launch(scope, dir, demoConfig(dir), { waitFor: "synced" });
  }
  return daemon;
}

const H = "Host: sealcache\r\n";

test("malformed request lines and headers get a JSON 400 and the connection is closed", async () => {
  const dm = await d();
  const cases = [
    "GARBAGE\r\n\r\n",
    "GET\r\n\r\n",
    "GET /v1/health HTTP/9.9\r\n" + H + "\r\n",
    "GET /v1/health HTTP/1.1 extra\r\n" + H + "\r\n",
    "G\x00T /v1/health HTTP/1.1\r\n" + H + "\r\n",
    "\x00\x01\x02\x03\r\n\r\n",
    "GET /v1/health HTTP/1.1\r\n" + H + "NoColonHere\r\n\r\n",
    "GET /v1/health HTTP/1.1\r\nHost : sealcache\r\n\r\n",
    "GET /v1/health HTTP/1.1\r\n" + H + "X-Folded: a\r\n b\r\n\r\n",
    "GET /v1/health HTTP/1.1\r\n" + H + "X-Nul: a\x00b\r\n\r\n",
    "GET /v1/health HTTP/1.1\r\n" + H + "Bad Name: x\r\n\r\n",
    "GET /v1/health HTTP/1.1\r\n" + H + "Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n",
    "GET /v1/health HTTP/1.1\r\n" + H + "Content-Length: 5\r\nContent-Length: 6\r\n\r\n",
    "GET /v1/health HTTP/1.1\r\n" + H + "Content-Length: abc\r\n\r\n",
    "GET /v1/health HTTP/1.1\r\n" + H + "Content-Length: -1\r\n\r\n",
    "GET /v1/health HTTP/1.1\r\n" + H + "Content-Length: 99999999999999999999999\r\n\r\n",
    "POST /v1/refresh HTTP/1.1\r\n" + H + "Transfer-Encoding: chunked\r\n\r\nzz\r\n",
    "GET /v1/health HTTP/1.1\nHost: sealcache\n\n",
  ];
  for (const c of cases) {
    const x = await exchange(dm.socket, c, { timeoutMs: 3_000, untilClose: true });
    assert.ok(!x.timedOut, `answered and closed: ${JSON.stringify(c)}`);
    assert.equal(x.responses.length, 1, `one response to ${JSON.stringify(c)}: ${JSON.stringify(x.raw.slice(0, 200))}`);
    assert.equal(x.responses[0]!.status, 400, `400 for ${JSON.stringify(c)}`);
    assertRawError(x.responses[0], 400, "bad_request");
    assert.ok(x.closed, `connection closed after ${JSON.stringify(c)}`);
  }
  await assertServing(dm);
});

test("Host-less HTTP/1.1 and HTTP/1.0 requests are served like any other", async () => {
  const dm = await d();
  for (const c of [
    "GET /v1/secrets/demo/api-token?format=raw HTTP/1.1\r\nConnection: close\r\n\r\n",
    "GET /v1/secrets/demo/api-token?format=raw HTTP/1.0\r\n\r\n",
  ]) {
    const x = await exchange(dm.socket, c);
    assert.equal(x.responses[0]?.status, 200, JSON.stringify(x.raw.slice(0, 300)));
    assert.equal(x.responses[0]?.body, API_TOKEN);
  }
  // An error on such a request is still the JSON error.
  const x = await exchange(dm.socket, "GET /v1/nope HTTP/1.1\r\nConnection: close\r\n\r\n");
  assertRawError(x.responses[0], 404, "not_found");
});

test("an oversized URL (> 2048 bytes) gets 414; exactly 2048 bytes is served", async () => {
  const dm = await d();
  const base = "/v1/secrets/demo/api-token?format=raw&pad=";
  const at = (n: number) => base + "x".repeat(n - base.length);
  const ok = await req(dm.socket, at(2048));
  assert.equal(ok.status, 200);
  assert.equal(ok.body, API_TOKEN);
  for (const url of [at(2049), at(4000), "/v1/secrets/demo/" + "a".repeat(3000), at(7000)]) {
    const x = await exchange(dm.socket, `GET ${url} HTTP/1.1\r\n${H}\r\n`, { untilClose: true });
    assertRawError(x.responses[0], 414, "bad_request");
    assert.ok(x.closed, "the connection is closed after a 414");
  }
  await assertServing(dm);
});

test("oversized headers (> 8 KiB) get 431, one big header or many small ones", async () => {
  const dm = await d();
  const big = `GET /v1/health HTTP/1.1\r\n${H}X-Big: ${"b".repeat(9000)}\r\n\r\n`;
  const many = `GET /v1/health HTTP/1.1\r\n${H}${Array.from({ length: 200 }, (_, i) => `X-H${i}: ${"c".repeat(50)}\r\n`).join("")}\r\n`;
  const longUrl = `GET /v1/secrets/demo/${"a".repeat(9000)} HTTP/1.1\r\n${H}\r\n`;
  const endless = `GET /v1/health HTTP/1.1\r\n${H}X-Endless: ${"e".repeat(64 * 1024)}`;
  for (const c of [big, many, longUrl, endless]) {
    const x = await exchange(dm.socket, c, { timeoutMs: 3_000, untilClose: true });
    assertRawError(x.responses[0], 431, "bad_request");
    assert.ok(x.closed, "the connection is closed after a 431");
  }
  // Under the limit is fine.
  const fine = await exchange(dm.socket, `GET /v1/secrets/demo/api-token?format=raw HTTP/1.1\r\n${H}X-Big: ${"b".repeat(6000)}\r\nConnection: close\r\n\r\n`);
  assert.equal(fine.responses[0]?.status, 200);
  assert.equal(fine.responses[0]?.body, API_TOKEN);
  await assertServing(dm);
});

test("oversized bodies get 413 (declared or chunked); a small body is read and the connection stays usable", async () => {
  const dm = await d();
  const chunked = (size: number) => `${size.toString(16)}\r\n${"x".repeat(size)}\r\n0\r\n\r\n`;
  const cases = [
    `POST /v1/refresh HTTP/1.1\r\n${H}Content-Length: 5000\r\n\r\n${"x".repeat(5000)}`,
    `POST /v1/refresh HTTP/1.1\r\n${H}Content-Length: 100000000\r\n\r\n`,
    `GET /v1/secrets/demo/api-token HTTP/1.1\r\n${H}Content-Length: 2048\r\n\r\n${"x".repeat(2048)}`,
    `GET /v1/secrets/demo/api-token HTTP/1.1\r\n${H}Transfer-Encoding: chunked\r\n\r\n${chunked(10)}`,
    `POST /v1/refresh HTTP/1.1\r\n${H}Transfer-Encoding: chunked\r\n\r\n${chunked(4096)}`,
    `POST /v1/refresh HTTP/1.1\r\n${H}Transfer-Encoding: chunked\r\n\r\n${"400\r\n" + "y".repeat(1024) + "\r\n"}${chunked(1)}`,
  ];
  for (const c of cases) {
    const x = await exchange(dm.socket, c, { timeoutMs: 3_000, untilClose: true });
    assert.equal(x.responses.length, 1, `exactly one answer to ${JSON.stringify(c.slice(0, 80))}: ${JSON.stringify(x.raw.slice(0, 300))}`);
    assertRawError(x.responses[0], 413, "bad_request");
    assert.ok(x.closed, "the connection is closed after a 413");
  }
  // A small body is consumed and the next pipelined request on the connection is answered.
  const small = await exchange(
    dm.socket,
    `GET /v1/secrets/demo/api-token?format=raw HTTP/1.1\r\n${H}Content-Length: 10\r\n\r\n0123456789` +
      `POST /v1/refresh?name=demo/api-token HTTP/1.1\r\n${H}Transfer-Encoding: chunked\r\n\r\n${chunked(16)}` +
      `GET /v1/secrets/demo/db-password?format=raw HTTP/1.1\r\n${H}Connection: close\r\n\r\n`,
    { expect: 3 },
  );
  assert.deepEqual(
    small.responses.map((r) => r.status),
    [200, 202, 200],
  );
  assert.equal(small.responses[0]!.body, API_TOKEN);
  assert.equal(small.responses[2]!.body, DB_PASSWORD);
  await assertServing(dm);
});

test("garbage bytes, TLS handshakes, half requests and instant hang-ups leave the daemon serving", async () => {
  const dm = await d();
  const rand = seeded(0xbad5eed);
  const noise = Buffer.from(Array.from({ length: 64 * 1024 }, () => Math.floor(rand() * 256)));
  // The start of a TLS ClientHello, as a client speaking https to the socket would send.
  const tls = Buffer.from("16030100a5010000a10303" + "00".repeat(32) + "000020c02bc02fc02cc030cca9cca8c013c014009c009d002f0035c012000a0100", "hex");
  for (const c of [noise, tls, Buffer.from("\r\n\r\n\r\n\r\n"), Buffer.alloc(4096, 0)]) {
    const x = await exchange(dm.socket, c, { timeoutMs: 8_000, untilClose: true });
    assert.ok(x.closed, "the server closes a connection that sends garbage");
    // 400 when the parser rejects it; 408 when it only ever saw blank lines and waited for a request.
    if (x.responses.length > 0) assertRawError(x.responses[0], x.responses[0]!.status === 408 ? 408 : 400, "bad_request");
  }
  // Half a request, then gone; connect-and-close storms.
  await Promise.all(
    Array.from(
      { length: 50 },
      (_, i) =>
        new Promise<void>((resolve) => {
          const s = net.connect(dm.socket);
          s.on("error", () => resolve());
          s.on("close", () => resolve());
          s.on("connect", () => {
            if (i % 2 === 0) s.write("GET /v1/secrets/demo/api-token HTTP/1.1\r\nHo");
            s.destroy();
          });
        }),
    ),
  );
  await assertServing(dm);
});

test("pipelined requests on one connection are all answered, in order", async () => {
  const dm = await d();
  const reqs = [
    "/v1/secrets/demo/api-token?format=raw",
    "/v1/secrets/demo/db-password?format=raw",
    "/v1/health",
    "/v1/secrets/demo/nope",
    "/v1/secrets/Bad",
    "/v1/secrets/demo/kafka-password?format=raw",
    "/v1/secrets/demo/api-token",
  ];
  const data = reqs.map((p, i) => `GET ${p} HTTP/1.1\r\n${H}${i === reqs.length - 1 ? "Connection: close\r\n" : ""}\r\n`).join("");
  const x = await exchange(dm.socket, data, { expect: reqs.length });
  assert.deepEqual(
    x.responses.map((r) => r.status),
    [200, 200, 200, 404, 400, 200, 200],
  );
  assert.equal(x.responses[0]!.body, API_TOKEN);
  assert.equal(x.responses[1]!.body, DB_PASSWORD);
  assert.equal(JSON.parse(x.responses[2]!.body).status, "ok");
  assert.equal(JSON.parse(x.responses[3]!.body).error, "not_found");
  assert.equal(JSON.parse(x.responses[4]!.body).error, "bad_request");
  assert.equal(x.responses[5]!.body, KAFKA_PASSWORD);
  assert.equal(JSON.parse(x.responses[6]!.body).value, API_TOKEN);

  // 50 pipelined lookups written byte by byte in odd-sized pieces still come back in order.
  const many = Array.from(
    { length: 50 },
    (_, i) => `GET /v1/secrets/${["demo/api-token", "demo/db-password", "demo/kafka-password"][i % 3]}?format=raw HTTP/1.1\r\n${H}\r\n`,
  ).join("");
  const answers = await exchange(dm.socket, many, { expect: 50, pieceBytes: 97, timeoutMs: 10_000 });
  assert.equal(answers.responses.length, 50);
  answers.responses.forEach((r, i) => {
    assert.equal(r.status, 200);
    assert.equal(r.body, [API_TOKEN, DB_PASSWORD, KAFKA_PASSWORD][i % 3]);
  });
  await assertServing(dm);
});

test("slowloris clients are cut off by the server while a normal client keeps being answered", async () => {
  const dm = await d();
  type Slow = { closedAt: number | undefined; got: string };
  const started = Date.now();
  const slows: Slow[] = [];
  const sockets: net.Socket[] = [];
  const open = (initial: string, dribble: boolean) => {
    const st: Slow = { closedAt: undefined, got: "" };
    slows.push(st);
    const s = net.connect(dm.socket);
    sockets.push(s);
    let iv: NodeJS.Timeout | undefined;
    s.on("connect", () => {
      if (initial) s.write(initial);
      if (dribble) iv = setInterval(() => s.writable && s.write("a"), 100);
    });
    s.on("data", (c: Buffer) => (st.got += c.toString("latin1")));
    s.on("error", () => undefined);
    s.on("close", () => {
      clearInterval(iv);
      st.closedAt = Date.now();
    });
  };
  for (let i = 0; i < 30; i++) open(`GET /v1/health HTTP/1.1\r\n${H}X-Slow: `, true); // headers byte by byte, never finished
  for (let i = 0; i < 10; i++) open("", false); // connects, says nothing
  for (let i = 0; i < 5; i++) open(`GET /v1/health HTTP/1.1\r\n`, false); // half a request line block
  for (let i = 0; i < 5; i++) open(`POST /v1/refresh HTTP/1.1\r\n${H}Content-Length: 100\r\n\r\nabc`, false); // body never completed

  // While they hang on, a normal client's lookups keep answering.
  let answered = 0;
  while (Date.now() - started < 4_000) {
    const t0 = Date.now();
    const r = await req(dm.socket, "/v1/secrets/demo/db-password?format=raw", { timeoutMs: 2_000 });
    assert.equal(r.status, 200);
    assert.equal(r.body, DB_PASSWORD);
    assert.ok(Date.now() - t0 < 2_000, "a lookup during the slowloris answered within 2 s");
    answered++;
    await sleep(100);
  }
  assert.ok(answered >= 5, `normal client answered ${answered} times`);

  // The server closes every slow connection on its own (headers and request timeouts).
  const deadline = Date.now() + 20_000;
  while (slows.some((s) => s.closedAt === undefined) && Date.now() < deadline) await sleep(100);
  const open_ = slows.filter((s) => s.closedAt === undefined).length;
  for (const s of sockets) s.destroy();
  assert.equal(open_, 0, "every slow connection was closed by the server");
  for (const s of slows.slice(0, 30)) assert.match(s.got, /^HTTP\/1\.1 408 /, "an unfinished header block gets 408");
  await assertServing(dm);
});

test("many concurrent clients are all answered", async () => {
  const dm = await d();
  const names = ["demo/api-token", "demo/db-password", "demo/kafka-password"];
  const values = [API_TOKEN, DB_PASSWORD, KAFKA_PASSWORD];
  const rs = await Promise.all(Array.from({ length: 150 }, (_, i) => req(dm.socket, `/v1/secrets/${names[i % 3]}?format=raw`, { timeoutMs: 10_000 })));
  rs.forEach((r, i) => {
    assert.equal(r.status, 200);
    assert.equal(r.body, values[i % 3]);
  });
  await assertServing(dm);
});

/** One random request: mostly plausible, sometimes broken in a random place. */
function fuzzRequest(rand: () => number): { data: string; head: boolean; secretPath: boolean } {
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rand() * xs.length)]!;
  const chance = (p: number) => rand() < p;
  const printable = (n: number) => Array.from({ length: n }, () => String.fromCharCode(33 + Math.floor(rand() * 94))).join("");
  const anyBytes = (n: number) => Array.from({ length: n }, () => String.fromCharCode(Math.floor(rand() * 256))).join("");
  const pct = (n: number) =>
    Array.from(
      { length: n },
      () =>
        "%" +
        Math.floor(rand() * 256)
          .toString(16)
          .padStart(2, "0"),
    ).join("");
  const nameChars = "abcdefghijklmnopqrstuvwxyz0123456789._/-ABCZ%..";
  const name = () =>
    pick([
      () => pick(["demo/api-token", "demo/db-password", "demo/kafka-password"]),
      () => pick(["demo/api-token", "demo/db-password", "demo/kafka-password"]),
      () =>
        pick(["demo/", "x/", ""]) +
        Array.from({ length: 1 + Math.floor(rand() * 12) }, () => pick("abcxyz019-_.".split("")))
          .join("")
          .replace(/^[-_.]/, "a"),
      () => Array.from({ length: 1 + Math.floor(rand() * 40) }, () => pick(nameChars.split(""))).join(""),
      () => "demo/" + pick(["..", ".", "", "API", "x".repeat(300), pct(3), "%", "%g1", "api-token/"]),
      () => pct(1 + Math.floor(rand() * 8)),
      () => encodeURIComponent(printable(1 + Math.floor(rand() * 20))),
    ])();
  const method = pick(["GET", "GET", "GET", "GET", "GET", "POST", "HEAD", "DELETE", "PUT", "OPTIONS", "PATCH", "G3T", printable(5)]);
  const route = pick(["secret", "secret", "secret", "list", "watch", "refresh", "health", "metrics", "other"]);
  const q: string[] = [];
  let p: string;
  switch (route) {
    case "secret":
      p = "/v1/secrets/" + name();
      if (chance(0.4)) q.push("format=" + pick(["raw", "json", "xml", "", "RAW", printable(3)]));
      break;
    case "list":
      p = "/v1/secrets";
      if (chance(0.6)) q.push("prefix=" + pick(["demo/", "", "x".repeat(300), name()]));
      break;
    case "watch":
      p = "/v1/watch";
      if (chance(0.9)) q.push("names=" + Array.from({ length: 1 + Math.floor(rand() * 3) }, name).join(","));
      if (chance(0.7)) q.push("since=" + pick(["0", "1", "2", "999999", "-1", "abc", "", "1e3", "9007199254740993"]));
      // Keep long-polls short so the loop stays bounded.
      q.push("timeout=" + pick(["0", "1ms", "50ms", "100ms", "abc", "-1", "301s", "1h"]));
      break;
    case "refresh":
      p = "/v1/refresh";
      if (chance(0.5)) q.push("name=" + name());
      break;
    case "health":
      p = "/v1/health";
      break;
    case "metrics":
      p = "/metrics";
      break;
    default:
      p = pick(["/", "*", "/v1", "/v1/", "/v1/secrets/../health", "/v1//health", "//", "http://sealcache/v1/health", "/" + printable(10), "/" + pct(5)]);
  }
  if (chance(0.2)) q.push(printable(1 + Math.floor(rand() * 12)) + "=" + printable(Math.floor(rand() * 12)));
  let target = q.length > 0 ? `${p}?${q.join("&")}` : p;
  if (chance(0.05)) target = target + " " + printable(3); // stray token in the request line
  if (chance(0.03)) target = anyBytes(8) + target;
  const version = chance(0.9) ? "HTTP/1.1" : pick(["HTTP/1.0", "HTTP/2.0", "HTTP/1", "http/1.1", "", "HTTP/1.1x"]);
  const headers: string[] = [];
  if (chance(0.9)) headers.push("Host: sealcache");
  const n = Math.floor(rand() * 4);
  for (let i = 0; i < n; i++) {
    const benign = [
      () => `X-${printable(5).replace(/[^A-Za-z0-9]/g, "a")}: ${printable(Math.floor(rand() * 40))}`,
      () => `Accept: ${pick(["*/*", "application/json", "text/plain"])}`,
      () => `User-Agent: fuzz/${Math.floor(rand() * 100)}`,
      () => `X-Long: ${"L".repeat(Math.floor(rand() * 12_000))}`,
      () => `Connection: ${pick(["close", "keep-alive", "upgrade"])}`,
      () => `Expect: 100-continue`,
      () => `Upgrade: websocket`,
    ];
    const broken = [
      () => `${printable(8)}: ${printable(8)}`,
      () => `X-Bin: ${anyBytes(6)}`,
      () => `Content-Length: ${pick(["abc", "-1", "1e3", "99999", "0"])}`,
      () => `Transfer-Encoding: ${pick(["gzip", "identity", "chunked, gzip", printable(5)])}`,
      () => printable(10),
    ];
    headers.push(pick(chance(0.25) ? broken : benign)());
  }
  let body = "";
  if (chance(0.15)) {
    body = printable(Math.floor(rand() * 200));
    headers.push(`Content-Length: ${body.length}`);
  }
  headers.push("Connection: close");
  const eol = chance(0.95) ? "\r\n" : "\n";
  const data = `${method} ${target} ${version}`.replace(/ $/, "") + eol + headers.map((h) => h + eol).join("") + eol + body;
  return { data, head: method === "HEAD", secretPath: route === "secret" };
}

test("a seeded fuzz loop of 300 requests never gets a 5xx (other than a legitimate 503) and never crashes the daemon", async (t) => {
  const dm = await d();
  const rand = seeded(20240611);
  const cases = Array.from({ length: 300 }, () => fuzzRequest(rand));
  const statuses = new Map<number, number>();
  let unanswered = 0;
  const problems: string[] = [];
  const run = async (c: (typeof cases)[number]) => {
    const x = await exchange(dm.socket, Buffer.from(c.data, "latin1"), { timeoutMs: 4_000, heads: [c.head] });
    if (x.responses.length === 0) {
      // Closing without an answer is allowed (e.g. a parse error mid-stream); silence is counted.
      if (x.timedOut) unanswered++;
      if (x.raw.length > 0 && !x.raw.startsWith("HTTP/1.1 "))
        problems.push(`not HTTP: ${JSON.stringify(x.raw.slice(0, 100))} for ${JSON.stringify(c.data.slice(0, 200))}`);
      return;
    }
    const r = x.responses[0]!;
    statuses.set(r.status, (statuses.get(r.status) ?? 0) + 1);
    const where = `${r.status} for ${JSON.stringify(c.data.slice(0, 200))}: ${r.body.slice(0, 200)}`;
    if (r.status >= 500) {
      const code = r.body ? (JSON.parse(r.body) as { error?: string }).error : undefined;
      if (r.status !== 503 || !["not_synced", "sealed"].includes(code ?? "")) problems.push(`5xx: ${where}`);
    }
    if (r.status >= 400 && !c.head) {
      try {
        const j = JSON.parse(r.body) as { error: string; message: string };
        if (!(ERROR_CODES as readonly string[]).includes(j.error) || typeof j.message !== "string") problems.push(`bad error body: ${where}`);
      } catch {
        problems.push(`non-JSON error: ${where}`);
      }
    }
    // Only a 200 on a secret path may hold a value.
    if (!(r.status === 200 && c.secretPath) && leaksIn(x.raw).length > 0) problems.push(`value leaked: ${where}`);
  };
  const queue = [...cases];
  await Promise.all(
    Array.from({ length: 12 }, async () => {
      for (let c = queue.shift(); c; c = queue.shift()) await run(c);
    }),
  );
  t.diagnostic(`fuzz statuses ${JSON.stringify([...statuses].sort((a, b) => a[0] - b[0]))}, unanswered ${unanswered}`);
  assert.deepEqual(problems, [], problems.slice(0, 10).join("\n"));
  const answered = [...statuses.values()].reduce((a, b) => a + b, 0);
  assert.ok(answered >= 250, `most fuzz requests were answered (${answered}; statuses ${JSON.stringify([...statuses])}; ${unanswered} unanswered)`);
  assert.ok((statuses.get(200) ?? 0) > 0 && (statuses.get(400) ?? 0) > 0, `a mix of outcomes: ${JSON.stringify([...statuses])}`);

  // Random names through a well-formed client only ever get the API's own answers.
  const nameRand = seeded(7);
  const alphabet = "abcdefghijklmnopqrstuvwxyzABCZ0123456789._/-%~!$&'()*+,;=:@";
  for (let i = 0; i < 150; i++) {
    const n = Array.from({ length: 1 + Math.floor(nameRand() * 30) }, () => alphabet[Math.floor(nameRand() * alphabet.length)]).join("");
    const r = await req(dm.socket, "/v1/secrets/" + n);
    assert.ok([200, 400, 403, 404].includes(r.status), `GET /v1/secrets/${n}: ${r.status} ${r.body.slice(0, 200)}`);
    if (r.status !== 200) assert.deepEqual(leaksIn(r.body), []);
  }
  await assertServing(dm);
  assert.doesNotMatch(dm.output(), /request failed/, "no request ended in an internal error");
});

test("after all of it the daemon stops cleanly, logged no secret value, and no internal error", async () => {
  const dm = await d();
  await assertServing(dm);
  const h = await req(dm.socket, "/v1/health");
  assert.equal(h.status, 200);
  assert.equal(h.json().status, "ok");
  assert.doesNotMatch(dm.output(), /"level":(50|60)/, "no error or fatal log line");
  assert.equal(await dm.stop(), 0, "clean exit");
});
