import type { IncomingMessage } from "node:http";
import type { Socket } from "node:net";
import type { ServerConfig } from "../config/schema.js";
import type { Logger } from "../log.js";
import type { AuditEntry } from "../store/audit.js";
import type { Admission } from "./connections.js";
import type { FairTurns } from "./fairness.js";
import { overRateMessage, type RateLimiter, type Throttle } from "./limits.js";
import type { Metrics } from "./metrics.js";
import { auditEntry } from "./request-audit.js";
import { rawErrorResponse } from "./respond.js";
import type { Routes } from "./route-table.js";
import type { Noted } from "./routes.js";

/**
 * The answer to a CONNECT request. node:http hands CONNECT to a 'connect' listener
 * with the socket already taken off its parser — and without a listener closes the
 * connection with no answer at all. The socket API has no tunnels, so CONNECT gets
 * what any method a route does not take gets: 405 with the JSON error body and an
 * Allow header. The connection is closed after it: its parser is gone, so it cannot
 * carry another request. `allow` comes from the route table; `target` is the
 * request target as sent (origin-form path, `host:443` authority-form, or absolute-form).
 */
export function connectRefusal(allow: string, target: string): string {
  const shown = JSON.stringify(target.slice(0, 64));
  const message =
    `CONNECT is not allowed on ${shown}: this socket serves the sealcache API and tunnels nothing; ` + `use ${allow} (see the socket API in README.md)`;
  return rawErrorResponse(405, "Method Not Allowed", message, "bad_request", { Allow: allow });
}

export interface ConnectDeps {
  readonly admission: Admission;
  readonly routes: Routes;
  readonly rate: RateLimiter;
  readonly rateReports: Throttle;
  readonly turns: FairTurns;
  readonly log: Logger;
  readonly metrics: Metrics;
  readonly audit: { record(e: AuditEntry): void };
  readonly rateSettings: ServerConfig["rate"];
  readonly tarpitMs: number;
}

/**
 * The server's 'connect' listener: a CONNECT is held to the uid's request rate
 * like any request (429 after the tarpit, logged and audited once per uid per
 * 10 s), answered in its uid's turn, and audited like any request on its route.
 */
export function connectHandler(d: ConnectDeps): (req: IncomingMessage, socket: Socket) => void {
  return (req, socket) => {
    socket.on("error", () => undefined);
    const conn = d.admission.of(socket);
    if (!conn || conn.cut) return void socket.destroy();
    const target = d.routes.target(req.url ?? "");
    const at: Noted = { route: d.routes.label(target, "CONNECT"), name: target.name, code: undefined, audit: d.routes.audited(target) };
    const answer = (status: number, code: string, raw: string, audited: boolean) => {
      if (socket.destroyed) return;
      d.metrics.request(at.route, status);
      if (audited) d.audit.record(auditEntry(conn, at, status, code));
      socket.end(raw);
    };
    const wait = conn.limited ? d.rate.take(conn.key) : 0;
    if (wait > 0) {
      const held = d.rateReports.due(String(conn.key));
      if (held !== undefined) d.log.warn({ uid: conn.cred?.uid, pid: conn.cred?.pid, route: at.route, held_back: held }, "request refused: per-uid rate limit");
      const raw = rawErrorResponse(429, "Too Many Requests", overRateMessage(conn.cred?.uid, d.rateSettings, wait), "rate_limited", {
        "Retry-After": String(wait),
      });
      setTimeout(() => d.turns.run(conn.key, () => answer(429, "rate_limited", raw, held !== undefined)), d.tarpitMs).unref();
      return;
    }
    const refuse = () => answer(405, "bad_request", connectRefusal(d.routes.allow(target), req.url ?? ""), at.audit);
    if (conn.limited) d.turns.run(conn.key, refuse);
    else refuse();
  };
}
