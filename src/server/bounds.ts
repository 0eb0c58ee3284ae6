import type { IncomingMessage, ServerResponse } from "node:http";
import { SealcacheError } from "../errors.js";
import type { Route } from "./route-table.js";

/** What one request may be: sizes and times (the README's socket API section states them). */
export const LIMITS = {
  /** Longest request URL; a name is at most 256 bytes, so this is generous. */
  maxUrlBytes: 2048,
  maxHeaderBytes: 8192,
  /** The body allowance of a route that takes none: a small one keeps odd clients working. */
  maxBodyBytes: 1024,
  headersTimeoutMs: 5_000,
  requestTimeoutMs: 10_000,
  // How long a kept-alive connection may sit idle between requests (the README says 15 s; a test holds it to that).
  keepAliveTimeoutMs: 15_000,
  idleTimeoutMs: 15_000,
} as const;

/**
 * The bounds stage: the URL's length, and the body the route takes (declared size,
 * and chunked only where a body is taken). Throws the answer (414, 413); the
 * connection is not kept after either.
 */
export function checkBounds(req: IncomingMessage, res: ServerResponse, rawUrl: string, route: Route | undefined): void {
  if (Buffer.byteLength(rawUrl) > LIMITS.maxUrlBytes) {
    res.shouldKeepAlive = false;
    throw Object.assign(new SealcacheError("bad_request", `request URL exceeds ${LIMITS.maxUrlBytes} bytes`), { status: 414 });
  }
  const declared = Number(req.headers["content-length"] ?? 0);
  if (declared > bodyLimit(route) || (req.headers["transfer-encoding"] !== undefined && req.method !== "POST" && req.method !== "PUT")) {
    res.shouldKeepAlive = false;
    throw tooBig(route);
  }
}

/**
 * The body stage: read to its end before routing, so an oversized (chunked) body is
 * refused with 413 before any route acts on the request. Kept only for a route
 * that takes one; the handler zeroes it (an imported value). `received` is told
 * when the request is in whole.
 */
export function readBody(
  req: IncomingMessage,
  res: ServerResponse,
  route: Route | undefined,
  o: { fail: (e: unknown) => void; received: () => void; route: (body: Buffer[]) => void },
): void {
  const max = bodyLimit(route);
  const keep = route?.body !== undefined;
  let rejected = false;
  let received = 0;
  const body: Buffer[] = [];
  req.on("data", (chunk: Buffer) => {
    received += chunk.length;
    if (keep && !rejected) body.push(chunk);
    if (received > max && !rejected) {
      rejected = true;
      for (const c of body) c.fill(0);
      res.shouldKeepAlive = false;
      res.once("finish", () => req.socket.destroy());
      o.fail(tooBig(route));
    }
  });
  req.on("end", () => {
    o.received();
    if (!rejected) o.route(body);
  });
}

function bodyLimit(route: Route | undefined): number {
  return route?.body ?? LIMITS.maxBodyBytes;
}

function tooBig(route: Route | undefined): SealcacheError {
  const max = bodyLimit(route);
  const msg =
    route?.body !== undefined
      ? `request body exceeds ${max} bytes: ${route.name === "import" ? "an imported secret is at most 64 KiB" : "the most this route takes"}`
      : `request body exceeds ${max} bytes; no route takes a body`;
  return Object.assign(new SealcacheError("bad_request", msg), { status: 413 });
}
