// A socket-API client that tests run as other accounts (test/support/users.ts).
// Plain JavaScript with node builtins only, so any account can run it with any
// copy of the node binary. argv[2] is a JSON job; the answer is one JSON document
// on stdout.
import { spawn } from "node:child_process";
import http from "node:http";
import net from "node:net";
import { fileURLToPath } from "node:url";

const job = JSON.parse(process.argv[2] ?? "{}");

function request(socketPath, path, o = {}) {
  return new Promise((resolve) => {
    const t0 = performance.now();
    const r = http.request({ socketPath, path, method: o.method ?? "GET", agent: o.agent ?? false, timeout: o.timeoutMs ?? 10_000 }, (res) => {
      const chunks = [];
      res.on("data", (c) => chunks.push(c));
      res.on("end", () =>
        resolve({
          status: res.statusCode,
          body: Buffer.concat(chunks).toString("utf8"),
          retryAfter: res.headers["retry-after"] ?? null,
          ms: performance.now() - t0,
        }),
      );
      res.on("error", (e) => resolve({ status: 0, body: String(e), retryAfter: null, ms: performance.now() - t0 }));
    });
    r.on("timeout", () => r.destroy(new Error("timeout")));
    r.on("error", (e) => resolve({ status: 0, body: `${e.code ?? ""} ${e.message}`, retryAfter: null, ms: performance.now() - t0 }));
    r.end();
  });
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

const ops = {
  /** Sequential requests, each on a fresh connection. */
  async get({ socket, requests }) {
    const out = [];
    for (const q of requests) out.push(await request(socket, typeof q === "string" ? q : q.path, typeof q === "string" ? {} : q));
    return out;
  },

  /** One keep-alive connection, sequential requests over `paths` for `durationMs`: statuses and latencies. */
  async loop({ socket, paths, durationMs, pauseMs = 0 }) {
    const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
    const statuses = {};
    const latencies = [];
    const until = performance.now() + durationMs;
    for (let i = 0; performance.now() < until; i++) {
      const r = await request(socket, paths[i % paths.length], { agent });
      statuses[r.status] = (statuses[r.status] ?? 0) + 1;
      latencies.push(r.ms);
      if (pauseMs) await sleep(pauseMs);
    }
    agent.destroy();
    return { statuses, latencies };
  },

  /** `connections` keep-alive connections each requesting as fast as answers come, for `durationMs`. */
  async flood({ socket, path, connections, durationMs }) {
    const statuses = {};
    const samples = {};
    const until = performance.now() + durationMs;
    await Promise.all(
      Array.from({ length: connections }, async () => {
        const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
        while (performance.now() < until) {
          const r = await request(socket, path, { agent });
          statuses[r.status] = (statuses[r.status] ?? 0) + 1;
          samples[r.status] ??= { status: r.status, body: r.body.slice(0, 300), retryAfter: r.retryAfter, ms: r.ms };
          if (r.status === 0) await sleep(5);
        }
        agent.destroy();
      }),
    );
    return { statuses, samples };
  },

  /**
   * The hostile version: `connections` raw connections, each keeping `depth`
   * pipelined requests in flight regardless of the answers, reconnecting when closed.
   */
  async pipeflood({ socket, path, connections, depth, durationMs }) {
    const statuses = {};
    let connects = 0;
    const until = performance.now() + durationMs;
    const one = () =>
      new Promise((resolve) => {
        connects++;
        const s = net.connect(socket);
        let inFlight = 0;
        let tail = "";
        const req = `GET ${path} HTTP/1.1\r\nHost: sealcache\r\n\r\n`;
        const top = () => {
          if (performance.now() >= until) return s.destroy();
          const n = depth - inFlight;
          if (n > 0 && s.writable) {
            inFlight += n;
            s.write(req.repeat(n));
          }
        };
        s.on("connect", top);
        s.on("data", (c) => {
          const text = tail + c.toString("latin1");
          const re = /HTTP\/1\.1 (\d{3}) /g;
          let m;
          let last = 0;
          while ((m = re.exec(text))) {
            statuses[m[1]] = (statuses[m[1]] ?? 0) + 1;
            inFlight--;
            last = re.lastIndex;
          }
          tail = text.slice(Math.max(last, text.length - 16));
          top();
        });
        s.on("error", () => undefined);
        s.on("close", () => resolve());
      });
    await Promise.all(
      Array.from({ length: connections }, async () => {
        while (performance.now() < until) {
          await one();
          if (performance.now() < until) await sleep(1);
        }
      }),
    );
    return { statuses, connects };
  },

  /** One connection, every request of `paths` written at once (pipelined); the answers in the order they came. */
  async pipeline({ socket, paths }) {
    const s = net.connect(socket);
    let got = Buffer.alloc(0);
    const answers = [];
    await new Promise((resolve) => {
      s.on("connect", () => s.write(paths.map((p) => `GET ${p} HTTP/1.1\r\nHost: sealcache\r\n\r\n`).join("")));
      s.on("data", (c) => {
        got = Buffer.concat([got, c]);
        for (;;) {
          const head = got.indexOf("\r\n\r\n");
          if (head === -1) break;
          const h = got.subarray(0, head).toString("latin1");
          const len = Number(/content-length: (\d+)/i.exec(h)?.[1] ?? 0);
          if (got.length < head + 4 + len) break;
          answers.push({ status: Number(h.slice(9, 12)), body: got.subarray(head + 4, head + 4 + len).toString("utf8") });
          got = got.subarray(head + 4 + len);
        }
        if (answers.length >= paths.length) s.end();
      });
      s.on("error", () => undefined);
      s.on("close", resolve);
    });
    return answers;
  },

  /** Opens `count` idle connections, requests `path` on one more, holds them `holdMs`, then requests again without them. */
  async hold({ socket, count, path, holdMs = 0 }) {
    const held = await Promise.all(
      Array.from(
        { length: count },
        () =>
          new Promise((resolve) => {
            const s = net.connect(socket);
            s.on("connect", () => resolve(s));
            s.on("error", () => resolve(s));
          }),
      ),
    );
    await sleep(100);
    const alive = held.filter((s) => !s.destroyed).length;
    const probe = await request(socket, path);
    await sleep(holdMs);
    for (const s of held) s.destroy();
    // With the held connections gone, the same request goes through again.
    await sleep(200);
    const after = await request(socket, path);
    return { alive, probe, after };
  },

  /** `count` connections dribbling an endless header block; when each was closed and what it got. */
  async slowloris({ socket, count, durationMs }) {
    const t0 = performance.now();
    const results = await Promise.all(
      Array.from(
        { length: count },
        () =>
          new Promise((resolve) => {
            const s = net.connect(socket);
            let got = "";
            let iv;
            const stop = setTimeout(() => s.destroy(), durationMs);
            const done = () => {
              clearInterval(iv);
              clearTimeout(stop);
              resolve({ closedAfterMs: performance.now() - t0, got: got.slice(0, 200) });
            };
            s.on("connect", () => {
              s.write("GET /v1/health HTTP/1.1\r\nHost: sealcache\r\nX-Slow: ");
              iv = setInterval(() => s.writable && s.write("a"), 100);
            });
            s.on("data", (c) => (got += c.toString("latin1")));
            s.on("error", () => undefined);
            s.on("close", done);
          }),
      ),
    );
    return results;
  },

  /**
   * Connects, hands the connection to a child process (as its fd 4) and exits once
   * the child has used it once. The child prints what it got before and after.
   */
  async handoff({ socket, path }) {
    const s = net.connect(socket);
    await new Promise((resolve, reject) => {
      s.once("connect", resolve);
      s.once("error", reject);
    });
    const child = spawn(process.execPath, [fileURLToPath(import.meta.url), JSON.stringify({ op: "heir", path, parent: process.pid })], {
      stdio: ["ignore", "inherit", "inherit", "ipc", s],
    });
    // The child holds its own copy now; this process must not read from the connection.
    s.destroy();
    await new Promise((resolve) => child.once("message", resolve));
    child.disconnect();
    process.exit(0);
  },

  async heir({ path, parent }) {
    const conn = new net.Socket({ fd: 4, readable: true, writable: true });
    const exchange = () =>
      new Promise((resolve) => {
        let got = "";
        const onData = (c) => {
          got += c.toString("latin1");
          const head = got.indexOf("\r\n\r\n");
          const len = /content-length: (\d+)/i.exec(got)?.[1];
          if (head !== -1 && len !== undefined && got.length >= head + 4 + Number(len)) {
            conn.off("data", onData);
            resolve({ status: Number(got.slice(9, 12)), body: got.slice(head + 4) });
          }
        };
        conn.on("data", onData);
        conn.once("close", () => resolve({ status: 0, body: got }));
        conn.write(`GET ${path} HTTP/1.1\r\nHost: sealcache\r\n\r\n`);
      });
    const first = await exchange();
    process.send("used");
    process.disconnect();
    // Wait until the connecting process has exited and been reaped.
    const until = Date.now() + 10_000;
    for (;;) {
      try {
        process.kill(parent, 0);
      } catch {
        break;
      }
      if (Date.now() > until) break;
      await sleep(20);
    }
    const second = await exchange();
    conn.destroy();
    return { first, second, heirPid: process.pid };
  },
};

const out = await ops[job.op](job);
if (out !== undefined) process.stdout.write(JSON.stringify(out));
