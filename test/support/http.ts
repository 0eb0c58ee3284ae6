import http from "node:http";
import net from "node:net";

export interface Reply {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: string;
  json<T = any>(): T;
}

type RequestOptions = { method?: string; headers?: Record<string, string>; body?: string; agent?: http.Agent; timeoutMs?: number };

/** One HTTP request over a Unix socket (fresh connection unless an agent is given). */
export function req(socketPath: string, path: string, opts: RequestOptions = {}): Promise<Reply> {
  return startRequest(socketPath, path, { timeoutMs: 10_000, ...opts }).promise;
}

/** A request that may be abandoned midway (a long-poll watch, a client that goes away). */
export function startRequest(socketPath: string, path: string, opts: RequestOptions = {}) {
  let settled = false;
  let request!: http.ClientRequest;
  const promise = new Promise<Reply>((resolve, reject) => {
    request = http.request(
      { socketPath, path, method: opts.method ?? "GET", headers: opts.headers, agent: opts.agent ?? false, timeout: opts.timeoutMs ?? 30_000 },
      (res) => {
        const chunks: Buffer[] = [];
        res.on("data", (c: Buffer) => chunks.push(c));
        res.on("end", () => {
          const body = Buffer.concat(chunks).toString("utf8");
          resolve({ status: res.statusCode ?? 0, headers: res.headers, body, json: () => JSON.parse(body) });
        });
      },
    );
    request.on("timeout", () => request.destroy(new Error(`timeout on ${path}`)));
    request.on("error", reject);
    if (opts.body) request.write(opts.body);
    request.end();
  }).finally(() => {
    settled = true;
  });
  return {
    promise,
    get settled() {
      return settled;
    },
    /** Drops the connection without waiting for the answer. */
    abandon() {
      promise.catch(() => undefined);
      request.destroy();
    },
  };
}

/** Writes raw bytes on a new connection and collects what comes back until the server closes or `waitMs` passes. */
export function raw(socketPath: string, data: string | Buffer, waitMs = 2_000): Promise<string> {
  return new Promise((resolve) => {
    const s = net.connect(socketPath);
    const chunks: Buffer[] = [];
    const done = () => {
      clearTimeout(timer);
      s.destroy();
      resolve(Buffer.concat(chunks).toString("latin1"));
    };
    const timer = setTimeout(done, waitMs);
    s.on("data", (c) => chunks.push(c));
    s.on("end", done);
    s.on("close", done);
    s.on("error", done);
    s.on("connect", () => s.write(data));
  });
}
