import type { ServerResponse } from "node:http";
import type { SealcacheError, ErrorCode } from "../errors.js";

export const STATUS: Record<ErrorCode, number> = {
  not_found: 404,
  forbidden: 403,
  not_synced: 503,
  expired: 410,
  revoked: 410,
  bad_request: 400,
  sealed: 503,
  config: 500,
  unavailable: 503,
  rate_limited: 429,
  // Never answered on the socket (the daemon holding data_dir is the one answering); listed for completeness.
  locked: 503,
  // Never answered either: raised by the CLI (exec, render) about a value it was given.
  bad_value: 422,
  bad_template: 422,
  internal: 500,
};

/**
 * A JSON answer. The body ends with a newline, as a line of text does: `curl` then
 * leaves the shell prompt on its own line, and `jq`/`read` see a complete line.
 */
export function sendJson(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  const data = JSON.stringify(body) + "\n";
  res.writeHead(status, { "Content-Type": "application/json", "Content-Length": Buffer.byteLength(data), "Cache-Control": "no-store", ...headers });
  res.end(data);
}

/** `{error, message}` with the stable code; `status` overrides for HTTP-level limits (413, 414, 405). */
export function sendError(res: ServerResponse, e: SealcacheError, status = STATUS[e.code]): void {
  const headers: Record<string, string> = {};
  if (e.retryAfter !== undefined) headers["Retry-After"] = String(e.retryAfter);
  sendJson(res, status, { error: e.code, message: e.message }, headers);
}

/**
 * A complete `Connection: close` answer written straight to a socket: for the
 * parser-level errors node:http reports before a request object exists, and for
 * connections refused at accept.
 */
export function rawErrorResponse(
  status: number,
  reason: string,
  message: string,
  code: ErrorCode = "bad_request",
  headers: Record<string, string> = {},
): string {
  const body = JSON.stringify({ error: code, message }) + "\n";
  const extra = Object.entries(headers)
    .map(([k, v]) => `${k}: ${v}\r\n`)
    .join("");
  return (
    `HTTP/1.1 ${status} ${reason}\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\n` +
    `${extra}Connection: close\r\n\r\n${body}`
  );
}
