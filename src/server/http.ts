import fs from "node:fs";
import http, { type IncomingMessage, type ServerResponse } from "node:http";
import type { Socket } from "node:net";
import type { ServerConfig } from "../config/schema.js";
import { SealcacheError, describeError, isSealcacheError } from "../errors.js";
import type { Logger } from "../log.js";
import type { Core } from "../core/core.js";
import type { AuditEntry } from "../store/audit.js";
import type { Metrics } from "./metrics.js";
import { connectHandler } from "./connect-method.js";
import { auditEntry } from "./request-audit.js";
import { LIMITS, checkBounds, readBody } from "./bounds.js";
import { RequestDeadlines } from "./deadlines.js";
import { Admission, type Conn, type Refusal } from "./connections.js";
import { FairTurns } from "./fairness.js";
import { overRateMessage, RateLimiter, Throttle } from "./limits.js";
import { PeerTracker } from "./peers.js";
import { listen } from "./listen.js";
import { Routes, SECRET_PATH, routeTable, type Route, type Target } from "./route-table.js";
import { createRoutes, type Noted, type RequestContext } from "./routes.js";
import { rawErrorResponse, sendError } from "./respond.js";

export { LIMITS };

export const DEFAULT_SERVER_LIMITS: ServerConfig = { max_connections: 256, max_connections_per_uid: 10, rate: { per_uid_rps: 100, burst: 200 } };

export interface ServerOptions {
  readonly socketPath: string;
  readonly logger: Logger;
  /** The operations every route calls. */
  readonly core: Core;
  readonly metrics: Metrics;
  /** `metrics.secret_names`: lookups counted per name. */
  readonly metricNames: boolean;
  /** Connection caps and the per-uid request rate (config `server`). */
  readonly limits?: ServerConfig;
  /** The daemon's own uid: not subject to the per-uid limits. */
  readonly selfUid: number;
  readonly peers?: PeerTracker;
}

type Fail = (e: unknown, status?: number) => void;

export interface SocketServer {
  close(): Promise<void>;
}

/**
 * A 429 is answered after this delay: a client that honours Retry-After never
 * notices, and one that ignores it cannot spin through refusals as fast as the
 * daemon can write them (each of its connections gets a few per second).
 */
export const TARPIT_MS = 250;
/**
 * A connection that keeps sending while its refusals are still waiting out the
 * tarpit (pipelining through 429s) is no longer read or answered, and is closed
 * after this long; meanwhile it still counts against its uid's connection cap.
 */
const CUT_HOLD_MS = 1_000;

/**
 * HTTP/1.1 on a Unix socket, mode 0660 in a 0750 folder. Every connection's caller
 * is identified from the kernel at accept (connections.ts, peers.ts); a request is
 * answered only after its caller is known and still the process that connected,
 * and limits on size, time, connections and rate keep one bad client from holding
 * the daemon. Reads, denials and admin actions go to the audit trail.
 */
export async function startServer(o: ServerOptions): Promise<SocketServer> {
  const log = o.logger;
  const limits = o.limits ?? DEFAULT_SERVER_LIMITS;
  const routes = new Routes(routeTable(createRoutes(o)));
  const audit = { record: (e: AuditEntry) => o.core.recordEntry(e) };
  const rate = new RateLimiter({ rps: limits.rate.per_uid_rps, burst: limits.rate.burst });
  const rateReports = new Throttle({ windowMs: 10_000 });
  const turns = new FairTurns({ onError: (e) => log.error({ err: describeError(e) }, "request failed") });
  /** 429s waiting out TARPIT_MS, per uid; beyond twice its connection cap, the connection is cut. */
  const tarpitted = new Map<number, number>();

  const deadlines = new RequestDeadlines({
    headersMs: LIMITS.headersTimeoutMs,
    requestMs: LIMITS.requestTimeoutMs,
    nextMs: LIMITS.keepAliveTimeoutMs + LIMITS.headersTimeoutMs,
    onExpired: (socket, inFlight) => {
      // Raw bytes only where no answer is being written (one request, and it is the slow one).
      if (inFlight <= 1 && socket.writable) socket.end(rawErrorResponse(408, "Request Timeout", "request not received in time"));
      else socket.destroy();
    },
  });
  const server = http.createServer({
    maxHeaderSize: LIMITS.maxHeaderBytes,
    keepAliveTimeout: LIMITS.keepAliveTimeoutMs,
    // The header and request timeouts are RequestDeadlines' (deadlines.ts): node's
    // own check is an interval firing every connectionsCheckingInterval for the
    // server's whole life, the only wakeup an idle daemon had. Turned off, and its
    // interval pushed to the longest a timer can wait.
    headersTimeout: 0,
    requestTimeout: 0,
    connectionsCheckingInterval: 2 ** 31 - 1,
    // A Unix socket has no virtual hosts; without this, node answers a Host-less
    // HTTP/1.1 request with a bare 400 instead of the API's JSON error.
    requireHostHeader: false,
  });
  const admission = new Admission({
    server,
    limits,
    selfUid: o.selfUid,
    peers: o.peers ?? new PeerTracker(),
    rate,
    turns,
    logger: log,
    idleTimeoutMs: LIMITS.idleTimeoutMs,
    onAdmitted: (socket) => {
      deadlines.connected(socket);
      socket.once("close", () => deadlines.closed(socket));
    },
    onRefused: (r: Refusal) => {
      o.metrics.refused(r.reason);
      if (r.held !== undefined)
        audit.record({
          at: Date.now(),
          uid: r.cred?.uid ?? null,
          pid: r.cred?.pid ?? null,
          exe: null,
          unit: null,
          route: "connect",
          name: null,
          status: r.status,
          code: r.code,
          principal: "peer",
        });
    },
  });

  server.on("clientError", (err: NodeJS.ErrnoException, socket: Socket) => {
    if (!socket.writable || err.code === "ECONNRESET") return socket.destroy();
    const [status, reason, msg] =
      err.code === "HPE_HEADER_OVERFLOW"
        ? [431, "Request Header Fields Too Large", `request headers exceed ${LIMITS.maxHeaderBytes} bytes`]
        : [400, "Bad Request", "malformed HTTP request"];
    socket.end(rawErrorResponse(status, reason, msg));
  });

  // CONNECT never reaches 'request' (connect-method.ts).
  server.on(
    "connect",
    connectHandler({ admission, routes, rate, rateReports, turns, log, metrics: o.metrics, audit, rateSettings: limits.rate, tarpitMs: TARPIT_MS }),
  );

  server.on("request", (req: IncomingMessage, res: ServerResponse) => {
    const started = process.hrtime.bigint();
    const socket = req.socket;
    deadlines.request(socket);
    res.once("close", () => deadlines.answered(socket));
    const conn = admission.of(req.socket);
    // One request per uid per turn of the event loop (fairness.ts); the daemon's own
    // uid is not held to it, as it is not held to the other per-uid limits.
    if (conn?.limited) turns.run(conn.key, () => handle(req, res, conn, started));
    else handle(req, res, conn, started);
  });

  /**
   * One request, as a linear chain of stages — rate, identify, bounds, body, route —
   * each refusing with the typed error; `fail` is the one place an error becomes an
   * answer, and the audit record is built once, from the outcome, when the response
   * closes.
   */
  function handle(req: IncomingMessage, res: ServerResponse, conn: Conn | undefined, started: bigint): void {
    // Already parsed behind a request that cut the connection: no work, no answer.
    if (conn?.cut) return;
    const rawUrl = req.url ?? "/";
    const method = req.method ?? "GET";
    const target = routes.target(rawUrl);
    const route = routes.route(target, method);
    const at: Noted = { route: routes.label(target, method), name: target.name, code: undefined, audit: routes.audited(target) };
    res.on("finish", () => {
      o.metrics.request(at.route, res.statusCode);
      if (log.isLevelEnabled("debug"))
        log.debug({ route: at.route, status: res.statusCode, us: Number((process.hrtime.bigint() - started) / 1000n) }, "request");
    });
    res.on("close", () => {
      if (at.audit) audit.record(auditEntry(conn, at, res.statusCode, !res.writableFinished ? "aborted" : undefined));
    });
    const fail: Fail = (e, status) => {
      if (isSealcacheError(e)) {
        at.code = e.code;
        at.name ??= e.subject;
      }
      if (res.headersSent) return void res.destroy();
      if (isSealcacheError(e)) {
        if (e.code === "forbidden") {
          at.audit = true;
          log.warn({ route: at.route, uid: conn?.cred?.uid, pid: conn?.cred?.pid, err: e.message }, "request denied");
        }
        return sendError(res, e, status ?? (e as { status?: number }).status);
      }
      at.code = "internal";
      log.error({ route: at.route, err: describeError(e) }, "request failed");
      sendError(res, new SealcacheError("internal", "internal error; see the daemon log"));
    };
    if (conn?.limited) {
      const wait = rate.take(conn.key);
      if (wait > 0) return refuseRate(conn, at, wait, req, res, fail);
    }
    try {
      identify(conn, res);
      checkBounds(req, res, rawUrl, route);
    } catch (e) {
      return fail(e);
    }
    readBody(req, res, route, {
      fail,
      received: () => deadlines.received(req.socket),
      route: (body) => {
        try {
          const ctx = context(req, res, rawUrl, conn!, at, target, body);
          const done = dispatch(ctx, target, route, method);
          if (done) void done.catch((e: unknown) => fail(e));
        } catch (e) {
          fail(e);
        }
      },
    });
  }

  /** identify: the connection still speaks for the live process that opened it. */
  function identify(conn: Conn | undefined, res: ServerResponse): void {
    const gone = conn?.peer.check();
    if (gone === undefined && conn) return;
    res.shouldKeepAlive = false;
    throw new SealcacheError("forbidden", gone ?? "the connection's caller is unknown");
  }

  function context(req: IncomingMessage, res: ServerResponse, rawUrl: string, conn: Conn, at: Noted, target: Target, body: Buffer[]): RequestContext {
    let url: URL;
    try {
      url = new URL(rawUrl, "http://sealcache");
    } catch {
      throw new SealcacheError("bad_request", "malformed request URL");
    }
    // With an exe rule in the policy, the caller's program is checked again when a rule asks (reverify.ts).
    const caller = o.core.access.namesExe ? conn.peer.current() : conn.peer.caller;
    let gone: AbortController | undefined;
    return {
      req,
      res,
      url,
      caller,
      at,
      name: target.name ?? "",
      body,
      // Made on first use (only a long poll waits on it): an AbortController and a
      // close listener per lookup were ~2% of its CPU. Only a client that left before
      // its answer aborts: abort() builds a DOMException with a stack.
      get gone() {
        if (!gone) {
          const c = new AbortController();
          gone = c;
          if (res.closed) c.abort();
          else
            res.on("close", () => {
              if (!res.writableFinished) c.abort();
            });
        }
        return gone.signal;
      },
    };
  }

  /**
   * A 429 for a uid over its request rate, answered after TARPIT_MS; logged and
   * audited once per uid per 10 s. A uid with more refusals waiting than twice its
   * connection cap is pipelining through them: that connection is cut instead.
   */
  function refuseRate(conn: Conn, at: Noted, wait: number, req: IncomingMessage, res: ServerResponse, fail: Fail): void {
    const held = rateReports.due(String(conn.key));
    at.audit = held !== undefined;
    if (held !== undefined) log.warn({ uid: conn.cred?.uid, pid: conn.cred?.pid, route: at.route, held_back: held }, "request refused: per-uid rate limit");
    const pending = tarpitted.get(conn.key) ?? 0;
    // (req.socket: a pipelined response has no socket until its turn comes.)
    if (pending >= 2 * limits.max_connections_per_uid) return cut(conn, req.socket);
    const err = new SealcacheError("rate_limited", overRateMessage(conn.cred?.uid, limits.rate, wait), { retryAfter: wait });
    tarpitted.set(conn.key, pending + 1);
    setTimeout(() => {
      const left = (tarpitted.get(conn.key) ?? 1) - 1;
      if (left > 0) tarpitted.set(conn.key, left);
      else tarpitted.delete(conn.key);
      // Refusals that waited out the tarpit together are answered one per turn, too.
      turns.run(conn.key, () => {
        if (!res.destroyed) fail(err);
      });
    }, TARPIT_MS).unref();
  }

  function cut(conn: Conn, socket: Socket): void {
    conn.cut = true;
    o.metrics.refused("cut");
    if (rateReports.due(`cut:${conn.key}`) !== undefined)
      log.warn({ uid: conn.cred?.uid, pid: conn.cred?.pid }, "connection dropped: it kept sending requests while refused (rate limit)");
    socket.pause();
    setTimeout(() => socket.destroy(), CUT_HOLD_MS).unref();
  }

  /** route: the table's handler for the method, 405 with Allow for another method, 404 for a path the API does not have. */
  function dispatch(ctx: RequestContext, target: Target, route: Route | undefined, method: string): Promise<void> | undefined {
    if (!route) {
      if (target.routes.length === 0)
        throw new SealcacheError("not_found", `no endpoint ${method} ${target.path.slice(0, 64)}; see the socket API in README.md`);
      const allow = routes.allow(target);
      ctx.res.setHeader("Allow", allow);
      throw Object.assign(new SealcacheError("bad_request", `${method} is not allowed on ${target.path.slice(0, 64)}; use ${allow.replace(", ", " or ")}`), {
        status: 405,
      });
    }
    if (route.path === SECRET_PATH && target.name === undefined) throw new SealcacheError("bad_request", "secret name is not valid percent-encoding");
    const r = route.handler(ctx);
    return r instanceof Promise ? r : undefined;
  }

  await listen(server, o.socketPath);
  log.info({ socket: o.socketPath, limits }, "listening");
  return {
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
        admission.close();
        deadlines.close();
        try {
          fs.unlinkSync(o.socketPath);
        } catch {
          /* already gone */
        }
      }),
  };
}
