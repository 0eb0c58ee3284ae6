import http from "node:http";
import { SealcacheError, type ErrorCode } from "../errors.js";

export interface Reply {
  readonly status: number;
  readonly headers: http.IncomingHttpHeaders;
  readonly body: Buffer;
}

/** One request to the daemon's socket. A daemon that is not there is `unavailable`. */
export function request(socketPath: string, method: string, path: string, timeoutMs = 15_000): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const req = http.request({ socketPath, method, path, headers: { Host: "sealcache" }, timeout: timeoutMs }, (res) => {
      const chunks: Buffer[] = [];
      res.on("data", (c: Buffer) => chunks.push(c));
      res.on("end", () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks) }));
      res.on("error", reject);
    });
    req.on("timeout", () => req.destroy(new SealcacheError("unavailable", `the daemon at ${socketPath} did not answer within ${timeoutMs / 1000} s`)));
    req.on("error", (e: NodeJS.ErrnoException) => {
      if (e instanceof SealcacheError) return reject(e);
      const hint =
        e.code === "ENOENT" || e.code === "ECONNREFUSED"
          ? "is the daemon running? (systemctl status sealcache, or pass --socket)"
          : e.code === "EACCES"
            ? "this account may not open the socket; it must be in the socket's group"
            : "";
      reject(new SealcacheError("unavailable", `cannot reach the daemon at ${socketPath} (${e.code ?? e.message})${hint ? `: ${hint}` : ""}`));
    });
    req.end();
  });
}

/** Turns an error reply into the typed error it carries. */
export function replyError(r: Reply): SealcacheError {
  try {
    const j = JSON.parse(r.body.toString("utf8")) as { error?: string; message?: string };
    if (typeof j.error === "string") return new SealcacheError(j.error as ErrorCode, j.message ?? j.error);
  } catch {
    /* fall through */
  }
  return new SealcacheError("internal", `the daemon answered HTTP ${r.status}`);
}

export async function getJson<T>(socketPath: string, path: string): Promise<T> {
  const r = await request(socketPath, "GET", path);
  if (r.status >= 400 && r.status !== 503) throw replyError(r);
  const j = JSON.parse(r.body.toString("utf8")) as T & { error?: string };
  if (r.status === 503 && typeof j.error === "string") throw replyError(r);
  return j;
}
