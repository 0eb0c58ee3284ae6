import fs from "node:fs";
import http, { type IncomingMessage, type ServerResponse } from "node:http";
import type { Socket } from "node:net";
import type { ServerConfig } from "../config/schema.js";
import { SealcacheError, describeError, isSealcacheError } from "../errors.js";
import type { Logger } from "../log.js";
import type { Core } from "../core/core.js";
import type { AuditEntry } from "../store/audit.js";
import type { Metrics } from "./metrics.js";
import { connectRefusal } from "./connect-method.js";
import { Admission, type Conn, type Refusal } from "./connections.js";
import { FairTurns } from "./fairness.js";
import { overRateMessage, RateLimiter, Throttle } from "./limits.js";
import { PeerTracker } from "./peers.js";
import { listen } from "./listen.js";
import { createRoutes, type Noted, type RequestContext } from "./routes.js";
import { rawErrorResponse, sendError } from "./respond.js";
import { IMPORT_MAX_BYTES } from "../core/requests.js";

export const LIMITS = {
  /** Longest request URL; a name is at most 256 bytes, so this is generous. */
  maxUrlBytes: 2048,
  maxHeaderBytes: 8192,
  /** No route takes a body; a small allowance keeps odd clients working. */
  maxBodyBytes: 1024,
  headersTimeoutMs: 5_000,
  requestTimeoutMs: 10_000,
  // How long a kept-alive connection may sit idle between requests (the README says 15 s; a test holds it to that).
  keepAliveTimeoutMs: 15_000,
  idleTimeoutMs: 15_000,
} as const;

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

/** Routes whose every request is audited; any other request is audited when it is refused as forbidden. */
const AUDITED_ROUTES = new Set(["secret", "refresh", "rotate-kek", "revoke", "import"]);

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
  const routes = createRoutes(o);
  const audit = { record: (e: AuditEntry) => o.core.recordEntry(e) };
  const rate = new RateLimiter({ rps: limits.rate.per_uid_rps, burst: limits.rate.burst });
  const rateReports = new Throttle({ windowMs: 10_000 });
  const turns = new FairTurns({ onError: (e) => log.error({ err: describeError(e) }, "request failed") });
  /** 429s waiting out TARPIT_MS, per uid; beyond twice its connection cap, the connection is cut. */
  const tarpitted = new Map<number, number>();

  const server = http.createServer({
    maxHeaderSize: LIMITS.maxHeaderBytes,
    headersTimeout: LIMITS.headersTimeoutMs,
    requestTimeout: LIMITS.requestTimeoutMs,
    keepAliveTimeout: LIMITS.keepAliveTimeoutMs,
    connectionsCheckingInterval: 1_000,
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
    onRefused: (r: Refusal) => {
      o.metrics.refused(r.reason);
      if (r.held !== undefined) audit.record({ at: Date.now(), uid: r.cred?.uid ?? null, pid: r.cred?.pid ?? null, exe: null, unit: null, route: "connect", name: null, status: r.status, code: r.code, principal: "peer" });
    },
  });

  server.on("clientError", (err: NodeJS.ErrnoException, socket: Socket) => {
    if (!socket.writable || err.code === "ECONNRESET") return socket.destroy();
    const [status, reason, msg] =
      err.code === "HPE_HEADER_OVERFLOW"
        ? [431, "Request Header Fields Too Large", `request headers exceed ${LIMITS.maxHeaderBytes} bytes`]
        : err.code === "ERR_HTTP_REQUEST_TIMEOUT"
          ? [408, "Request Timeout", "request not received in time"]
          : [400, "Bad Request", "malformed HTTP request"];
    socket.end(rawErrorResponse(status, reason, msg));
  });

  // CONNECT never reaches 'request' (connect-method.ts). It is held to the uid's
  // request rate like any request, answered in its turn, and audited like any
  // request on its route.
  server.on("connect", (req: IncomingMessage, socket: Socket) => {
    socket.on("error", () => undefined);
    const conn = admission.of(socket);
    if (!conn || conn.cut) return void socket.destroy();
    const target = req.url ?? "";
    const at = classify(target);
    const answer = (status: number, code: string, raw: string, audited: boolean) => {
      if (socket.destroyed) return;
      o.metrics.request(at.route, status);
      if (audited) {
        const c = conn.peer.caller;
        audit.record({ at: Date.now(), uid: conn.cred?.uid ?? null, pid: conn.cred?.pid ?? null, exe: c?.exe ?? null, unit: c?.unit ?? null, route: at.route, name: at.name?.slice(0, 256) ?? null, status, code, principal: "peer" });
      }
      socket.end(raw);
    };
    const wait = conn.limited ? rate.take(conn.key) : 0;
    if (wait > 0) {
      // As refuseRate(): logged and audited once per uid per 10 s, answered after the tarpit.
      const held = rateReports.due(String(conn.key));
      if (held !== undefined) log.warn({ uid: conn.cred?.uid, pid: conn.cred?.pid, route: at.route, held_back: held }, "request refused: per-uid rate limit");
      const raw = rawErrorResponse(429, "Too Many Requests", overRateMessage(conn.cred?.uid, limits.rate, wait), "rate_limited", { "Retry-After": String(wait) });
      setTimeout(() => turns.run(conn.key, () => answer(429, "rate_limited", raw, held !== undefined)), TARPIT_MS).unref();
      return;
    }
    const refuse = () => answer(405, "bad_request", connectRefusal(at.route, target), AUDITED_ROUTES.has(at.route));
    if (conn.limited) turns.run(conn.key, refuse);
    else refuse();
  });

  server.on("request", (req: IncomingMessage, res: ServerResponse) => {
    const started = process.hrtime.bigint();
    const conn = admission.of(req.socket);
    // One request per uid per turn of the event loop (fairness.ts); the daemon's own
    // uid is not held to it, as it is not held to the other per-uid limits.
    if (conn?.limited) turns.run(conn.key, () => handle(req, res, conn, started));
    else handle(req, res, conn, started);
  });

  function handle(req: IncomingMessage, res: ServerResponse, conn: Conn | undefined, started: bigint): void {
    // Already parsed behind a request that cut the connection: no work, no answer.
    if (conn?.cut) return;
    const rawUrl = req.url ?? "/";
    const at: Noted = classify(rawUrl);
    res.on("finish", () => {
      o.metrics.request(at.route, res.statusCode);
      if (log.isLevelEnabled("debug")) log.debug({ route: at.route, status: res.statusCode, us: Number((process.hrtime.bigint() - started) / 1000n) }, "request");
    });
    res.on("close", () => {
      if (at.audit) audit.record(entry(conn, at, res));
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
        return sendError(res, e, status);
      }
      at.code = "internal";
      log.error({ route: at.route, err: describeError(e) }, "request failed");
      sendError(res, new SealcacheError("internal", "internal error; see the daemon log"));
    };
    at.audit = AUDITED_ROUTES.has(at.route);
    if (conn?.limited) {
      const wait = rate.take(conn.key);
      if (wait > 0) return refuseRate(conn, at, wait, req, res, fail);
    }
    const gone = conn?.peer.check();
    if (gone !== undefined || !conn) {
      res.shouldKeepAlive = false;
      return fail(new SealcacheError("forbidden", gone ?? "the connection's caller is unknown"));
    }
    if (Buffer.byteLength(rawUrl) > LIMITS.maxUrlBytes) {
      res.shouldKeepAlive = false;
      return fail(new SealcacheError("bad_request", `request URL exceeds ${LIMITS.maxUrlBytes} bytes`), 414);
    }
    // One route takes a body (PUT /v1/secrets/{name}: an imported value); any other
    // gets a small allowance for odd clients, read and dropped.
    const importing = req.method === "PUT" && at.route === "secret";
    const maxBody = importing ? IMPORT_MAX_BYTES : LIMITS.maxBodyBytes;
    const tooBig = () => new SealcacheError("bad_request", importing ? `request body exceeds ${maxBody} bytes: an imported secret is at most 64 KiB` : `request body exceeds ${maxBody} bytes; no route takes a body`);
    const declared = Number(req.headers["content-length"] ?? 0);
    if (declared > maxBody || (req.headers["transfer-encoding"] !== undefined && req.method !== "POST" && req.method !== "PUT")) {
      res.shouldKeepAlive = false;
      return fail(tooBig(), 413);
    }
    // Routed only once the body has been read, so an oversized chunked body is
    // refused with 413 before any route acts on the request.
    let rejected = false;
    let received = 0;
    const body: Buffer[] = [];
    req.on("data", (chunk: Buffer) => {
      received += chunk.length;
      if (importing && !rejected) body.push(chunk);
      if (received > maxBody && !rejected) {
        rejected = true;
        for (const c of body) c.fill(0);
        res.shouldKeepAlive = false;
        res.once("finish", () => req.socket.destroy());
        fail(tooBig(), 413);
      }
    });
    req.on("end", () => {
      if (!rejected) dispatch(req, res, rawUrl, conn, at, fail, body);
    });
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
    if (rateReports.due(`cut:${conn.key}`) !== undefined) log.warn({ uid: conn.cred?.uid, pid: conn.cred?.pid }, "connection dropped: it kept sending requests while refused (rate limit)");
    socket.pause();
    setTimeout(() => socket.destroy(), CUT_HOLD_MS).unref();
  }

  function dispatch(req: IncomingMessage, res: ServerResponse, rawUrl: string, conn: Conn, at: Noted, fail: Fail, body: Buffer[]): void {
    let url: URL;
    try {
      url = new URL(rawUrl, "http://sealcache");
    } catch {
      return fail(new SealcacheError("bad_request", "malformed request URL"));
    }
    const gone = new AbortController();
    // Only a client that left before its answer aborts: abort() builds a DOMException
    // with a stack, which on every finished response cost ~13% of lookup CPU.
    res.on("close", () => {
      if (!res.writableFinished) gone.abort();
    });
    // With an exe rule in the policy, the caller's program is checked again when a rule asks (reverify.ts).
    const caller = o.core.access.namesExe ? conn.peer.current() : conn.peer.caller;
    const ctx: RequestContext = { req, res, url, caller, gone: gone.signal, at };
    const method = req.method ?? "GET";
    const p = requestPath(rawUrl);
    const only = (...ms: string[]) => {
      if (ms.includes(method)) return;
      res.setHeader("Allow", ms.join(", "));
      throw Object.assign(new SealcacheError("bad_request", `${method} is not allowed on ${p}; use ${ms.join(" or ")}`), { status: 405 });
    };
    try {
      switch (at.route) {
        case "secret": {
          only("GET", "PUT");
          if (at.name === undefined) throw new SealcacheError("bad_request", "secret name is not valid percent-encoding");
          if (method === "GET") return routes.getSecret(ctx, at.name);
          at.route = "import";
          return routes.importSecret(ctx, at.name, body);
        }
        case "revoke":
          only("POST");
          return void routes.revoke(ctx).catch((e) => fail(e));
        case "list":
          only("GET");
          return routes.listSecrets(ctx);
        case "watch":
          only("GET");
          return void routes.watch(ctx).catch((e) => fail(e));
        case "refresh":
          only("POST");
          return routes.refresh(ctx);
        case "audit":
          only("GET");
          return routes.audit(ctx);
        case "rotate-kek":
          only("POST");
          return void routes.rotateKek(ctx).catch((e) => fail(e));
        case "health":
          only("GET");
          return routes.health(ctx);
        case "metrics":
          only("GET");
          return routes.metrics(ctx);
        default:
          throw new SealcacheError("not_found", `no endpoint ${method} ${p.slice(0, 64)}; see the socket API in README.md`);
      }
    } catch (e) {
      fail(e, (e as { status?: number }).status);
    }
  }

  await listen(server, o.socketPath);
  log.info({ socket: o.socketPath, limits }, "listening");
  return {
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
        admission.close();
        try {
          fs.unlinkSync(o.socketPath);
        } catch {
          /* already gone */
        }
      }),
  };
}

const ROUTES: Record<string, string> = {
  "/v1/secrets": "list",
  "/v1/watch": "watch",
  "/v1/refresh": "refresh",
  "/v1/audit": "audit",
  "/v1/rotate-kek": "rotate-kek",
  "/v1/revoke": "revoke",
  "/v1/health": "health",
  "/metrics": "metrics",
};

/**
 * The route of a request target, and the secret it names. Routed on the path as
 * sent: URL parsing would resolve `.`/`..` segments (also percent-encoded ones) and
 * read `\` as `/`, turning a bad name into another name.
 */
function classify(rawUrl: string): Noted {
  const p = requestPath(rawUrl);
  if (p.startsWith("/v1/secrets/")) {
    let name: string | undefined;
    try {
      name = decodeURIComponent(p.slice("/v1/secrets/".length));
    } catch {
      name = undefined;
    }
    return { route: "secret", name, code: undefined, audit: false };
  }
  return { route: ROUTES[p] ?? "other", name: undefined, code: undefined, audit: false };
}

/** The audit entry for a finished (or abandoned) request. Names only, never values. */
function entry(conn: Conn | undefined, at: Noted, res: ServerResponse): AuditEntry {
  const c = conn?.peer.caller;
  const code = !res.writableFinished ? "aborted" : at.code ?? (res.statusCode < 400 ? "ok" : `http_${res.statusCode}`);
  return {
    at: Date.now(),
    uid: conn?.cred?.uid ?? null,
    pid: conn?.cred?.pid ?? null,
    exe: c?.exe ?? null,
    unit: c?.unit ?? null,
    route: at.route,
    // Names are at most 256 bytes; anything longer was refused and is cut for the record.
    name: at.name === undefined ? null : at.name.slice(0, 256),
    status: res.statusCode,
    code,
    principal: "peer",
  };
}

/** The path of a request target (origin-form or absolute-form), without query, undecoded and unnormalised. */
function requestPath(target: string): string {
  const t = target.replace(/^[a-z][a-z0-9+.-]*:\/\/[^/?#]*/i, "");
  const end = t.search(/[?#]/);
  return end === -1 ? t : t.slice(0, end);
}
