import fs from "node:fs";
import http from "node:http";
import path from "node:path";
import { groupNameOf } from "../policy/accounts.js";
import { SealcacheError, type ErrorCode } from "../errors.js";

export interface Reply {
  readonly status: number;
  readonly headers: http.IncomingHttpHeaders;
  readonly body: Buffer;
}

/**
 * Where the daemon is: its socket, and what to add when the socket is absent (the
 * client fell back to the default socket because the default config is missing).
 */
export interface Target {
  readonly socket: string;
  readonly whenAbsent?: string | undefined;
}

/**
 * One request to the daemon's socket. A daemon that is not there is `unavailable`;
 * a socket this account may not open is `forbidden` (exit 4: a matter of group
 * membership, not of the daemon being down).
 */
export function request(target: string | Target, method: string, urlPath: string, timeoutMs = 15_000, signal?: AbortSignal, body?: Uint8Array): Promise<Reply> {
  const { socket: socketPath, whenAbsent } = typeof target === "string" ? { socket: target, whenAbsent: undefined } : target;
  return new Promise((resolve, reject) => {
    const req = http.request({ socketPath, method, path: urlPath, headers: { Host: "sealcache" }, timeout: timeoutMs, signal }, (res) => {
      const chunks: Buffer[] = [];
      res.on("data", (c: Buffer) => chunks.push(c));
      res.on("end", () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks) }));
      res.on("error", reject);
    });
    req.on("timeout", () => req.destroy(new SealcacheError("unavailable", `the daemon at ${socketPath} did not answer within ${timeoutMs / 1000} s`)));
    req.on("error", (e: NodeJS.ErrnoException) => {
      if (e instanceof SealcacheError || e.name === "AbortError") return reject(e);
      if (e.code === "EACCES" || e.code === "EPERM")
        return reject(new SealcacheError("forbidden", `this account may not open the socket ${socketPath} (${e.code}): ${joinHint(socketPath)}`));
      const hint =
        e.code === "ENOENT" && whenAbsent
          ? whenAbsent
          : e.code === "ENOENT" || e.code === "ECONNREFUSED"
            ? "is the daemon running? (systemctl status sealcache, or pass --socket)"
            : "";
      reject(new SealcacheError("unavailable", `cannot reach the daemon at ${socketPath} (${e.code ?? e.message})${hint ? `: ${hint}` : ""}`, { cause: e }));
    });
    if (body) req.setHeader("Content-Length", body.length);
    req.end(body);
  });
}

/**
 * Which group to join to reach the socket: the socket's own group, or, when this
 * account cannot even look into the socket's folder (0750), the folder's group.
 */
function joinHint(socketPath: string): string {
  const uid = process.getuid?.();
  const who = uid === undefined ? "this account" : `uid ${uid}`;
  for (const p of [socketPath, path.dirname(socketPath)]) {
    let gid: number;
    try {
      gid = fs.statSync(p).gid;
    } catch {
      continue;
    }
    const name = groupNameOf(gid);
    const group = name ?? `gid ${gid}`;
    const what = p === socketPath ? "the socket is open to its group" : `its folder ${p} is open to its group`;
    return `${what} ${group} only; add ${who} to it (usermod -aG ${name ?? gid} USER) and log in again, or run as an account in that group`;
  }
  return `${who} must be in the socket's group (the packaged daemon's is sealcache)`;
}

/** Turns an error reply into the typed error it carries. */
export function replyError(r: Reply): SealcacheError {
  try {
    const j = JSON.parse(r.body.toString("utf8")) as { error?: string; message?: string };
    const retry = Number(r.headers["retry-after"]);
    const retryAfter = Number.isFinite(retry) && retry > 0 ? retry : undefined;
    if (typeof j.error === "string") return new SealcacheError(j.error as ErrorCode, j.message ?? j.error, { retryAfter });
  } catch {
    /* fall through */
  }
  return new SealcacheError("internal", `the daemon answered HTTP ${r.status}`);
}

export async function getJson<T>(target: string | Target, urlPath: string): Promise<T> {
  const r = await request(target, "GET", urlPath);
  if (r.status >= 400 && r.status !== 503) throw replyError(r);
  const j = JSON.parse(r.body.toString("utf8")) as T & { error?: string };
  if (r.status === 503 && typeof j.error === "string") throw replyError(r);
  return j;
}

/** The daemon is not running (no socket, or nobody listening on it): what the commands that can work on the cache directly check for. */
export function daemonAbsent(e: unknown): boolean {
  const code = (e instanceof SealcacheError ? (e.cause as NodeJS.ErrnoException | undefined) : undefined)?.code;
  return code === "ENOENT" || code === "ECONNREFUSED";
}
