import type { ServerResponse } from "node:http";
import { SealcacheError, type ErrorCode } from "../errors.js";

export const STATUS: Record<ErrorCode, number> = {
  not_found: 404,
  forbidden: 403,
  not_synced: 503,
  expired: 410,
  bad_request: 400,
  sealed: 503,
  config: 500,
  unavailable: 503,
  internal: 500,
};

export function sendJson(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  const data = JSON.stringify(body);
  res.writeHead(status, { "Content-Type": "application/json", "Content-Length": Buffer.byteLength(data), "Cache-Control": "no-store", ...headers });
  res.end(data);
}

/** `{error, message}` with the stable code; `status` overrides for HTTP-level limits (413, 414, 405). */
export function sendError(res: ServerResponse, e: SealcacheError, status = STATUS[e.code]): void {
  const headers: Record<string, string> = {};
  if (e.retryAfter !== undefined) headers["Retry-After"] = String(e.retryAfter);
  sendJson(res, status, { error: e.code, message: e.message }, headers);
}

/** For the parser-level errors node:http reports before a request object exists. */
export function rawErrorResponse(status: number, reason: string, message: string): string {
  const body = JSON.stringify({ error: "bad_request", message });
  return `HTTP/1.1 ${status} ${reason}\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`;
}
