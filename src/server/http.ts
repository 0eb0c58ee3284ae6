import fs from "node:fs";
import http, { type IncomingMessage, type ServerResponse } from "node:http";
import net from "node:net";
import path from "node:path";
import type { Socket } from "node:net";
import { SealcacheError, describeError, isSealcacheError } from "../errors.js";
import type { Logger } from "../log.js";
import { peerCred } from "../../native/libc.js";
import { processGroups } from "../policy/accounts.js";
import type { Caller } from "../policy/policy.js";
import { createRoutes, type RequestContext, type RouteDeps } from "./routes.js";
import { rawErrorResponse, sendError } from "./respond.js";

export const LIMITS = {
  /** Longest request URL; a name is at most 256 bytes, so this is generous. */
  maxUrlBytes: 2048,
  maxHeaderBytes: 8192,
  /** No route takes a body; a small allowance keeps odd clients working. */
  maxBodyBytes: 1024,
  headersTimeoutMs: 5_000,
  requestTimeoutMs: 10_000,
  keepAliveTimeoutMs: 5_000,
  idleTimeoutMs: 15_000,
  maxConnections: 256,
} as const;

export interface ServerOptions extends RouteDeps {
  readonly socketPath: string;
  readonly logger: Logger;
}

type Fail = (e: unknown, status?: number) => void;

export interface SocketServer {
  close(): Promise<void>;
}

/**
 * HTTP/1.1 on a Unix socket, mode 0660 in a 0750 folder. Every connection's peer
 * credentials are read from the kernel at accept; a request is answered only
 * after its caller is known, and limits on size and time keep one bad client
 * from holding the daemon.
 */
export async function startServer(o: ServerOptions): Promise<SocketServer> {
  const log = o.logger;
  const routes = createRoutes(o);
  const callers = new WeakMap<Socket, Caller | undefined>();

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
  server.maxConnections = LIMITS.maxConnections;

  server.on("connection", (socket: Socket) => {
    socket.setTimeout(LIMITS.idleTimeoutMs, () => socket.destroy());
    callers.set(socket, identify(socket));
  });

  server.on("clientError", (err: NodeJS.ErrnoException, socket: Socket) => {
    if (!socket.writable || (err.code === "ECONNRESET")) return socket.destroy();
    const [status, reason, msg] =
      err.code === "HPE_HEADER_OVERFLOW"
        ? [431, "Request Header Fields Too Large", `request headers exceed ${LIMITS.maxHeaderBytes} bytes`]
        : err.code === "ERR_HTTP_REQUEST_TIMEOUT"
          ? [408, "Request Timeout", "request not received in time"]
          : [400, "Bad Request", "malformed HTTP request"];
    socket.end(rawErrorResponse(status, reason, msg));
  });

  server.on("request", (req: IncomingMessage, res: ServerResponse) => {
    const started = process.hrtime.bigint();
    const at = { route: "other" };
    res.on("finish", () => {
      o.metrics.request(at.route, res.statusCode);
      if (log.isLevelEnabled("debug")) log.debug({ route: at.route, status: res.statusCode, us: Number((process.hrtime.bigint() - started) / 1000n) }, "request");
    });
    const fail: Fail = (e, status) => {
      if (res.headersSent) return void res.destroy();
      if (isSealcacheError(e)) {
        if (e.code === "forbidden") log.warn({ route: at.route, err: e.message }, "request denied");
        return sendError(res, e, status);
      }
      log.error({ route: at.route, err: describeError(e) }, "request failed");
      sendError(res, new SealcacheError("internal", "internal error; see the daemon log"));
    };
    const rawUrl = req.url ?? "/";
    if (Buffer.byteLength(rawUrl) > LIMITS.maxUrlBytes) {
      res.shouldKeepAlive = false;
      return fail(new SealcacheError("bad_request", `request URL exceeds ${LIMITS.maxUrlBytes} bytes`), 414);
    }
    const declared = Number(req.headers["content-length"] ?? 0);
    if (declared > LIMITS.maxBodyBytes || (req.headers["transfer-encoding"] !== undefined && req.method !== "POST")) {
      res.shouldKeepAlive = false;
      return fail(new SealcacheError("bad_request", `request body exceeds ${LIMITS.maxBodyBytes} bytes; no route takes a body`), 413);
    }
    // No route takes a body: route only once the (small) body has been read, so an
    // oversized chunked body is refused with 413 before any route acts on the request.
    let rejected = false;
    let received = 0;
    req.on("data", (chunk: Buffer) => {
      received += chunk.length;
      if (received > LIMITS.maxBodyBytes && !rejected) {
        rejected = true;
        res.shouldKeepAlive = false;
        res.once("finish", () => req.socket.destroy());
        fail(new SealcacheError("bad_request", `request body exceeds ${LIMITS.maxBodyBytes} bytes`), 413);
      }
    });
    req.on("end", () => {
      if (!rejected) dispatch(req, res, rawUrl, at, fail);
    });
  });

  function dispatch(req: IncomingMessage, res: ServerResponse, rawUrl: string, at: { route: string }, fail: Fail): void {
    let url: URL;
    try {
      url = new URL(rawUrl, "http://sealcache");
    } catch {
      return fail(new SealcacheError("bad_request", "malformed request URL"));
    }
    const gone = new AbortController();
    res.on("close", () => gone.abort());
    const ctx: RequestContext = { req, res, url, caller: callers.get(req.socket), gone: gone.signal };
    // Routed on the path as sent: URL parsing would resolve `.`/`..` segments (also
    // percent-encoded ones) and read `\` as `/`, turning a bad name into another name.
    const p = requestPath(rawUrl);
    const method = req.method ?? "GET";
    const only = (m: string) => {
      if (method === m) return;
      res.setHeader("Allow", m);
      throw Object.assign(new SealcacheError("bad_request", `${method} is not allowed on ${p}; use ${m}`), { status: 405 });
    };
    try {
      if (p.startsWith("/v1/secrets/")) {
        at.route = "secret";
        only("GET");
        let name: string;
        try {
          name = decodeURIComponent(p.slice("/v1/secrets/".length));
        } catch {
          throw new SealcacheError("bad_request", "secret name is not valid percent-encoding");
        }
        return routes.getSecret(ctx, name);
      }
      switch (p) {
        case "/v1/secrets":
          at.route = "list";
          only("GET");
          return routes.listSecrets(ctx);
        case "/v1/watch":
          at.route = "watch";
          only("GET");
          return void routes.watch(ctx).catch((e) => fail(e));
        case "/v1/refresh":
          at.route = "refresh";
          only("POST");
          return routes.refresh(ctx);
        case "/v1/health":
          at.route = "health";
          only("GET");
          return routes.health(ctx);
        case "/metrics":
          at.route = "metrics";
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
  log.info({ socket: o.socketPath }, "listening");
  return {
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
        try {
          fs.unlinkSync(o.socketPath);
        } catch {
          /* already gone */
        }
      }),
  };
}

/** The path of a request target (origin-form or absolute-form), without query, undecoded and unnormalised. */
function requestPath(target: string): string {
  const t = target.replace(/^[a-z][a-z0-9+.-]*:\/\/[^/?#]*/i, "");
  const end = t.search(/[?#]/);
  return end === -1 ? t : t.slice(0, end);
}

function identify(socket: Socket): Caller | undefined {
  const fd = (socket as unknown as { _handle?: { fd?: number } })._handle?.fd;
  if (typeof fd !== "number" || fd < 0) return undefined;
  const cred = peerCred(fd);
  if (!cred) return undefined;
  return { ...cred, groups: processGroups(cred.pid) };
}

/** Prepares the socket's folder, clears a stale socket left by a crash, listens, sets 0660. */
async function listen(server: http.Server, socketPath: string): Promise<void> {
  if (Buffer.byteLength(socketPath) > 107) {
    throw new SealcacheError("config", `socket path ${socketPath} is longer than the 107 bytes a Unix socket path may have; choose a shorter socket path`);
  }
  const dir = path.dirname(socketPath);
  if (!fs.existsSync(dir)) {
    fs.mkdirSync(dir, { recursive: true, mode: 0o750 });
    fs.chmodSync(dir, 0o750);
  }
  if (fs.existsSync(socketPath)) {
    if (await answers(socketPath)) {
      throw new SealcacheError("unavailable", `another process is already serving on ${socketPath}; stop it or choose another socket path`);
    }
    fs.unlinkSync(socketPath);
  }
  // Create the socket file already restricted, then set the exact mode.
  const old = process.umask(0o117);
  try {
    await new Promise<void>((resolve, reject) => {
      server.once("error", reject);
      server.listen(socketPath, () => {
        server.off("error", reject);
        resolve();
      });
    });
  } finally {
    process.umask(old);
  }
  fs.chmodSync(socketPath, 0o660);
}

function answers(socketPath: string): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.connect(socketPath);
    s.once("connect", () => {
      s.destroy();
      resolve(true);
    });
    s.once("error", () => resolve(false));
  });
}
