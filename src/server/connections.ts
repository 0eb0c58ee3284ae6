import type http from "node:http";
import type { Socket } from "node:net";
import type { PeerCred } from "../../native/libc.js";
import type { ServerConfig } from "../config/schema.js";
import type { ErrorCode } from "../errors.js";
import type { Logger } from "../log.js";
import type { FairTurns } from "./fairness.js";
import { ConnectionCounts, overRateMessage, type RateLimiter, Throttle } from "./limits.js";
import type { Peer, PeerTracker } from "./peers.js";
import { rawErrorResponse } from "./respond.js";

/** Refusals are answered after this delay, so a client reconnecting in a loop cannot spin (see TARPIT_MS in http.ts). */
const REFUSE_DELAY_MS = 250;

/** What the server knows about one admitted connection. */
export interface Conn {
  readonly cred: PeerCred | undefined;
  readonly peer: Peer;
  /** Subject to the per-uid limits (every uid but the daemon's own). */
  readonly limited: boolean;
  /** The uid the per-uid limits count against (-1: no credentials). */
  readonly key: number;
  /** Set when the connection is being dropped: nothing more on it is answered. */
  cut: boolean;
}

/** Why a connection was refused at accept: the overall cap, its uid's connection cap, or its uid's request rate. */
export type RefusedFor = "total" | "per_uid" | "rate";

export interface Refusal {
  readonly cred: PeerCred | undefined;
  readonly reason: RefusedFor;
  readonly status: number;
  readonly code: ErrorCode;
  /**
   * Set once per uid per 10 s (then logged, and to be audited): the refusals of the
   * same kind and uid held back since the last one reported. Undefined otherwise.
   */
  readonly held: number | undefined;
}

/** How long a refused connection may take to read its answer before it is dropped. */
const REFUSED_LINGER_MS = 1_000;
/** Refused connections still lingering beyond this many are dropped without an answer. */
const MAX_LINGERING = 64;

/**
 * Admits connections before node:http sees them: the overall cap, then the per-uid
 * cap (every uid but the daemon's own, which owns the cache and could stop the
 * daemon anyway), then the per-uid request rate, then identifies the caller. A
 * connection over a cap gets a JSON answer (`429 rate_limited` per uid, `503
 * unavailable` overall) and is closed. So does one from a uid whose request bucket
 * is empty: whatever it sends would be refused, and refusing it here costs no
 * identification, no parsing and no request objects, which is what keeps a uid
 * flooding in new connections from taking the event loop from the others.
 */
export class Admission {
  readonly #limits: ServerConfig;
  readonly #selfUid: number;
  readonly #peers: PeerTracker;
  readonly #rate: RateLimiter;
  readonly #turns: FairTurns;
  readonly #log: Logger;
  readonly #onRefused: (r: Refusal) => void;
  readonly #onAdmitted: (socket: Socket) => void;
  readonly #counts = new ConnectionCounts();
  readonly #conns = new WeakMap<Socket, Conn>();
  readonly #lingering = new Set<Socket>();
  readonly #throttle = new Throttle({ windowMs: 10_000 });

  constructor(o: {
    server: http.Server;
    limits: ServerConfig;
    selfUid: number;
    peers: PeerTracker;
    rate: RateLimiter;
    turns: FairTurns;
    logger: Logger;
    idleTimeoutMs: number;
    onRefused: (r: Refusal) => void;
    onAdmitted?: (socket: Socket) => void;
  }) {
    this.#limits = o.limits;
    this.#selfUid = o.selfUid;
    this.#peers = o.peers;
    this.#rate = o.rate;
    this.#turns = o.turns;
    this.#log = o.logger;
    this.#onRefused = o.onRefused;
    this.#onAdmitted = o.onAdmitted ?? (() => undefined);
    // node:http registers exactly one 'connection' listener, which hands the socket to
    // its parser; it is called here only for admitted connections, so a refused one
    // is never parsed and cannot occupy the server's request handling.
    const nodeListeners = o.server.listeners("connection");
    if (nodeListeners.length !== 1) throw new Error(`node:http has ${nodeListeners.length} connection listeners; expected 1`);
    const handOver = nodeListeners[0] as (s: Socket) => void;
    o.server.removeListener("connection", handOver);
    o.server.on("connection", (socket: Socket) => {
      if (!this.#admit(socket)) return;
      socket.setTimeout(o.idleTimeoutMs, () => socket.destroy());
      this.#onAdmitted(socket);
      handOver.call(o.server, socket);
    });
  }

  of(socket: Socket): Conn | undefined {
    return this.#conns.get(socket);
  }

  /** Drops refused connections still lingering (the server is closing). */
  close(): void {
    for (const s of this.#lingering) s.destroy();
  }

  #admit(socket: Socket): boolean {
    const fd = (socket as unknown as { _handle?: { fd?: number } })._handle?.fd;
    const cred = typeof fd === "number" && fd >= 0 ? this.#peers.credentials(fd) : undefined;
    if (this.#counts.total >= this.#limits.max_connections) {
      this.#refuse(
        socket,
        cred,
        "total",
        503,
        "Service Unavailable",
        "unavailable",
        `the daemon already has ${this.#limits.max_connections} connections open (server.max_connections); retry shortly`,
      );
      return false;
    }
    const limited = cred?.uid !== this.#selfUid;
    const key = cred?.uid ?? -1;
    if (limited && this.#counts.of(key) >= this.#limits.max_connections_per_uid) {
      const who = cred ? `uid ${cred.uid}` : "a caller without credentials";
      this.#refuse(
        socket,
        cred,
        "per_uid",
        429,
        "Too Many Requests",
        "rate_limited",
        `${who} already has ${this.#limits.max_connections_per_uid} connections open (server.max_connections_per_uid); reuse a keep-alive ` +
          `connection or close idle ones`,
      );
      return false;
    }
    const wait = limited ? this.#rate.wait(key) : 0;
    if (wait > 0) {
      this.#refuse(socket, cred, "rate", 429, "Too Many Requests", "rate_limited", overRateMessage(cred?.uid, this.#limits.rate, wait), wait);
      return false;
    }
    const peer = this.#peers.track(fd ?? -1, cred);
    if (peer.problem && this.#log.isLevelEnabled("debug")) this.#log.debug({ uid: cred?.uid, pid: cred?.pid, problem: peer.problem }, "caller not identified");
    const countAs = limited ? key : undefined;
    this.#counts.add(countAs);
    this.#conns.set(socket, { cred, peer, limited, key, cut: false });
    socket.once("close", () => {
      this.#counts.remove(countAs);
      peer.release();
    });
    return true;
  }

  #refuse(
    socket: Socket,
    cred: PeerCred | undefined,
    reason: RefusedFor,
    status: number,
    statusText: string,
    code: ErrorCode,
    message: string,
    retryAfter = 1,
  ): void {
    socket.on("error", () => undefined);
    if (this.#lingering.size >= MAX_LINGERING) {
      socket.destroy();
    } else {
      this.#lingering.add(socket);
      // Read (and drop) what the client sends, so its request write succeeds and it
      // reads the answer rather than a broken pipe.
      socket.resume();
      // Answered one per uid per loop turn (fairness.ts), like refused requests.
      const body = () => socket.end(rawErrorResponse(status, statusText, message, code, { "Retry-After": String(retryAfter) }));
      const answer = setTimeout(() => this.#turns.run(cred?.uid ?? -1, () => socket.destroyed || body()), REFUSE_DELAY_MS);
      const timer = setTimeout(() => socket.destroy(), REFUSE_DELAY_MS + REFUSED_LINGER_MS);
      socket.once("close", () => {
        clearTimeout(answer);
        clearTimeout(timer);
        this.#lingering.delete(socket);
      });
    }
    const held = this.#throttle.due(`${reason}:${cred?.uid ?? -1}`);
    if (held !== undefined) this.#log.warn({ uid: cred?.uid, pid: cred?.pid, status, held_back: held }, REFUSED_LOG[reason]);
    this.#onRefused({ cred, reason, status, code, held });
  }
}

const REFUSED_LOG: Record<RefusedFor, string> = {
  total: "connection refused: connection cap",
  per_uid: "connection refused: per-uid connection cap",
  rate: "connection refused: per-uid rate limit",
};
