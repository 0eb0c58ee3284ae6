// Helpers shared by the socket-API tests in this folder (not a test file itself).
import assert from "node:assert/strict";
import net from "node:net";
import type { Reply } from "../../support/http.js";
import { assertNoLeaks, DEMO_VALUES } from "../../support/planted.js";
import type { RunningDaemon } from "../../support/daemon.js";

export const [API_TOKEN, DB_PASSWORD, KAFKA_PASSWORD] = DEMO_VALUES;

/** The stable error codes of the socket API (README). */
export const ERROR_CODES = ["not_found", "forbidden", "not_synced", "expired", "bad_request", "sealed"] as const;

/**
 * Asserts a socket API error answer: the status, a JSON body of exactly
 * `{error, message}` with the code, a non-empty message, and no secret value anywhere.
 */
export function assertApiError(r: Reply, status: number, code: string, extraSecrets: readonly string[] = []): { error: string; message: string } {
  assert.equal(r.status, status, `expected ${status} ${code}, got ${r.status}: ${r.body.slice(0, 300)}`);
  assert.match(String(r.headers["content-type"]), /^application\/json/, "error bodies are JSON");
  const j = r.json<{ error: string; message: string }>();
  assert.deepEqual(Object.keys(j).sort(), ["error", "message"], `error body shape: ${r.body}`);
  assert.equal(j.error, code);
  assert.equal(typeof j.message, "string");
  assert.ok(j.message.length > 0, "message is not empty");
  assertNoLeaks(r.body, `error body of a ${status} ${code}`, extraSecrets);
  assertNoLeaks(JSON.stringify(r.headers), `headers of a ${status} ${code}`, extraSecrets);
  return j;
}

/** The daemon is still running and a normal lookup answers correctly within `ms`. */
export async function assertServing(d: RunningDaemon, ms = 2_000): Promise<void> {
  assert.equal(d.child.exitCode, null, "daemon process is still running");
  assert.equal(d.child.signalCode, null, "daemon process was not killed by a signal");
  const t0 = Date.now();
  const r = await d.get("/v1/secrets/demo/api-token?format=raw", { timeoutMs: ms });
  assert.equal(r.status, 200);
  assert.equal(r.body, API_TOKEN);
  assert.ok(Date.now() - t0 < ms, `lookup answered within ${ms} ms`);
}

export interface RawResponse {
  status: number;
  reason: string;
  headers: Record<string, string>;
  body: string;
}

/**
 * Parses as many complete HTTP/1.1 responses as `data` holds (Content-Length or
 * chunked framing; `heads[i]` marks answers to HEAD, which carry no body).
 */
export function parseResponses(data: string, heads: readonly boolean[] = []): { responses: RawResponse[]; rest: string } {
  const responses: RawResponse[] = [];
  let rest = data;
  for (;;) {
    const end = rest.indexOf("\r\n\r\n");
    if (end === -1) break;
    const lines = rest.slice(0, end).split("\r\n");
    const m = /^HTTP\/1\.[01] (\d{3}) ?(.*)$/.exec(lines[0]!);
    if (!m) throw new Error(`not an HTTP response: ${JSON.stringify(rest.slice(0, 120))}`);
    const headers: Record<string, string> = {};
    for (const l of lines.slice(1)) {
      const i = l.indexOf(":");
      headers[l.slice(0, i).trim().toLowerCase()] = l.slice(i + 1).trim();
    }
    const status = Number(m[1]);
    let after = rest.slice(end + 4);
    let body = "";
    const noBody = heads[responses.length] === true || status === 304 || status === 204 || status < 200;
    if (!noBody && headers["transfer-encoding"]?.includes("chunked")) {
      let complete = false;
      for (;;) {
        const nl = after.indexOf("\r\n");
        if (nl === -1) break;
        const size = parseInt(after.slice(0, nl), 16);
        if (Number.isNaN(size) || after.length < nl + 2 + size + 2) break;
        body += after.slice(nl + 2, nl + 2 + size);
        after = after.slice(nl + 2 + size + 2);
        if (size === 0) {
          complete = true;
          break;
        }
      }
      if (!complete) break;
    } else if (!noBody) {
      const len = Number(headers["content-length"] ?? 0);
      if (after.length < len) break;
      body = after.slice(0, len);
      after = after.slice(len);
    }
    // Interim answers (100 Continue) precede the final one; they are not responses of their own.
    if (status >= 200) responses.push({ status, reason: m[2]!, headers, body });
    rest = after;
  }
  return { responses, rest };
}

export interface Exchange {
  responses: RawResponse[];
  /** The server closed the connection (rather than our timeout ending it). */
  closed: boolean;
  timedOut: boolean;
  raw: string;
  ms: number;
}

/**
 * Writes `data` on a fresh connection and collects responses until `expect` of
 * them are complete (or, with `untilClose`, until the server closes), or `timeoutMs` passes.
 */
export function exchange(
  socketPath: string,
  data: string | Buffer,
  opts: {
    expect?: number;
    /** Wait for the server to close the connection rather than for `expect` responses. */
    untilClose?: boolean;
    timeoutMs?: number;
    heads?: readonly boolean[];
    /** Write in pieces of this many bytes. */
    pieceBytes?: number;
  } = {},
): Promise<Exchange> {
  const expect = opts.untilClose ? Infinity : (opts.expect ?? 1);
  return new Promise((resolve) => {
    const t0 = Date.now();
    const s = net.connect(socketPath);
    let raw = "";
    let settled = false;
    const finish = (closed: boolean, timedOut: boolean) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      s.destroy();
      let responses: RawResponse[] = [];
      try {
        responses = parseResponses(raw, opts.heads).responses;
      } catch {
        /* left to the caller through raw */
      }
      resolve({ responses, closed, timedOut, raw, ms: Date.now() - t0 });
    };
    const timer = setTimeout(() => finish(false, true), opts.timeoutMs ?? 5_000);
    s.on("data", (c: Buffer) => {
      raw += c.toString("latin1");
      try {
        if (parseResponses(raw, opts.heads).responses.length >= expect) finish(false, false);
      } catch {
        /* garbage: wait for close */
      }
    });
    s.on("end", () => finish(true, false));
    s.on("close", () => finish(true, false));
    s.on("error", () => finish(true, false));
    s.on("connect", async () => {
      const buf = typeof data === "string" ? Buffer.from(data, "latin1") : data;
      const step = opts.pieceBytes ?? buf.length;
      for (let i = 0; i < buf.length && !s.destroyed; i += step) {
        s.write(buf.subarray(i, i + step));
        if (step < buf.length) await new Promise((r) => setTimeout(r, 1));
      }
    });
  });
}

/** Asserts a raw response is a socket API JSON error with `status` and `code`. */
export function assertRawError(r: RawResponse | undefined, status: number, code: string): void {
  assert.ok(r, "a response was received");
  assert.equal(r.status, status, `expected ${status}, got ${r.status} ${r.body.slice(0, 200)}`);
  assert.match(r.headers["content-type"] ?? "", /^application\/json/);
  const j = JSON.parse(r.body) as { error: string; message: string };
  assert.deepEqual(Object.keys(j).sort(), ["error", "message"]);
  assert.equal(j.error, code);
  assert.ok(j.message.length > 0);
  assertNoLeaks(r.body, `raw ${status} answer`);
}

/** Deterministic PRNG (mulberry32) for the fuzz loops. */
export function seeded(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
