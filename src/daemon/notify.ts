// systemd readiness and watchdog (sd_notify), for the packaged Type=notify unit.
//
// Why: with Type=notify systemd counts the service as started only when READY=1
// arrives, so units ordered after sealcache start once the socket answers rather
// than when the process was forked; and with WatchdogSec= it restarts the service
// when WATCHDOG=1 pings stop. The pings come from a timer on the main event loop,
// at half of WATCHDOG_USEC, so a wedged loop (a hung synchronous call, a busy
// loop) stops them and systemd restarts the daemon; the timer is unref()ed so it
// never keeps a stopping process alive.
// READY=1 is also sent when the daemon comes up `sealed`: the socket answers (with
// `sealed` and the reason), so the service is up; STATUS says which it is.
// Everything fails soft: without NOTIFY_SOCKET (a terminal, a container, tests)
// this does nothing, and a socket that cannot be used costs one warning, never the
// service. NOTIFY_SOCKET and WATCHDOG_* are removed from process.env once read, as
// sd_notify(unset_environment=1) does, so child processes do not inherit them and
// cannot ping, or report readiness, on the daemon's behalf.
import type { Logger } from "../log.js";
import { closeSocket, ERRNO_EAGAIN, errnoName, notifyAddress, openDatagramSocket, sendDatagram } from "../../native/sd-notify.js";

/** Where messages go; `send` returns 0 or an errno. A seam so unit tests need no socket. */
export interface NotifyTransport {
  send(message: string): number;
  close(): void;
}

export interface NotifierOptions {
  logger: Logger;
  /** Read, then stripped of NOTIFY_SOCKET and WATCHDOG_*; default process.env. */
  env?: NodeJS.ProcessEnv;
  pid?: number;
  /** Opens the transport to NOTIFY_SOCKET, or says why it cannot; default: an AF_UNIX datagram socket. */
  connect?: (address: string) => NotifyTransport | string;
}

export interface NotifyEnv {
  readonly socket: string | undefined;
  /** Ping interval: half of WATCHDOG_USEC, when the watchdog is meant for this process. */
  readonly watchdogMs: number | undefined;
  /** Why WATCHDOG_USEC was ignored, when it was set but unusable. */
  readonly watchdogProblem: string | undefined;
}

const ENV_KEYS = ["NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID"] as const;
/** setInterval's limit; beyond it Node fires after 1 ms. */
const MAX_TIMER_MS = 2 ** 31 - 1;
const MAX_STATUS = 200;
/** READY=1 and STOPPING=1 are retried when systemd's queue is momentarily full; pings never are. */
const EAGAIN_RETRIES = 5;
const EAGAIN_RETRY_MS = 200;

/** Reads the sd_notify variables, as sd_watchdog_enabled(3) does, and removes them from `env`. */
export function takeNotifyEnv(env: NodeJS.ProcessEnv, pid: number): NotifyEnv {
  const [socket, usec, wpid] = ENV_KEYS.map((k) => env[k]);
  for (const k of ENV_KEYS) delete env[k];
  let watchdogMs: number | undefined;
  let watchdogProblem: string | undefined;
  if (usec !== undefined && usec !== "") {
    if (!/^[0-9]+$/.test(usec) || Number(usec) === 0) watchdogProblem = `WATCHDOG_USEC=${JSON.stringify(usec)} is not a positive number of microseconds`;
    else if (wpid === undefined || wpid === "" || (/^[0-9]+$/.test(wpid) && Number(wpid) === pid))
      watchdogMs = Math.min(MAX_TIMER_MS, Math.max(1, Math.floor(Number(usec) / 2000)));
    // else: WATCHDOG_PID names another process (we were started by a wrapper); not ours to ping.
  }
  return { socket: socket === "" ? undefined : socket, watchdogMs, watchdogProblem };
}

export function servingStatus(secrets: number): string {
  return `serving ${secrets} secret${secrets === 1 ? "" : "s"}`;
}

export function sealedStatus(reason: string): string {
  return `sealed: ${reason}`;
}

/** One line, bounded: a newline would start a new KEY=value assignment in the message. */
function oneLine(text: string): string {
  const t = text.replace(/[\r\n\0]+/g, " ").trim();
  return t.length > MAX_STATUS ? `${t.slice(0, MAX_STATUS - 3)}...` : t;
}

export class SystemdNotifier {
  readonly #log: Logger;
  readonly #socket: string | undefined;
  readonly #watchdogMs: number | undefined;
  #transport: NotifyTransport | undefined;
  #timer: NodeJS.Timeout | undefined;
  #lastStatus: string | undefined;
  #state: "starting" | "ready" | "stopping" = "starting";
  #warned = false;
  #failing = false;

  constructor(o: NotifierOptions) {
    this.#log = o.logger;
    const env = takeNotifyEnv(o.env ?? process.env, o.pid ?? process.pid);
    this.#socket = env.socket;
    if (env.socket === undefined) {
      this.#log.debug("NOTIFY_SOCKET is not set; not reporting readiness to systemd");
      return;
    }
    if (env.watchdogProblem) this.#log.warn(`${env.watchdogProblem}; the systemd watchdog will not be pinged`);
    this.#watchdogMs = env.watchdogMs;
    let t: NotifyTransport | string;
    try {
      t = (o.connect ?? connectDatagram)(env.socket);
    } catch (e) {
      t = e instanceof Error ? e.message : String(e);
    }
    if (typeof t === "string") this.#fail(t);
    else this.#transport = t;
  }

  /** Half of WATCHDOG_USEC when the watchdog is ours to ping and systemd can be reached. */
  get watchdogIntervalMs(): number | undefined {
    return this.#transport ? this.#watchdogMs : undefined;
  }

  /** The socket answers: READY=1 with a STATUS, and the watchdog pings start. */
  ready(status: string): void {
    if (this.#state !== "starting") return;
    this.#state = "ready";
    this.#lastStatus = oneLine(status);
    this.#send(`READY=1\nSTATUS=${this.#lastStatus}`, EAGAIN_RETRIES);
    const ms = this.watchdogIntervalMs;
    if (ms !== undefined && !this.#timer) {
      this.#timer = setInterval(() => this.#send("WATCHDOG=1", 0), ms).unref();
      this.#log.debug({ interval_ms: ms }, "pinging the systemd watchdog");
    }
  }

  /**
   * A meaningful state change (sealed ↔ serving) once ready; before that READY=1
   * carries the status, after stopping() nothing is sent. Repeats are not sent.
   */
  status(text: string): void {
    const s = oneLine(text);
    if (this.#state !== "ready" || s === this.#lastStatus) return;
    this.#lastStatus = s;
    this.#send(`STATUS=${s}`, 0);
  }

  stopping(): void {
    if (this.#state === "stopping") return;
    this.#state = "stopping";
    this.#stopTimer();
    this.#lastStatus = "stopping";
    this.#send("STOPPING=1\nSTATUS=stopping", EAGAIN_RETRIES);
  }

  close(): void {
    this.#stopTimer();
    this.#transport?.close();
    this.#transport = undefined;
  }

  #stopTimer(): void {
    clearInterval(this.#timer);
    this.#timer = undefined;
  }

  #send(message: string, retries: number): void {
    if (!this.#transport) return;
    let errno: number;
    try {
      errno = this.#transport.send(message);
    } catch (e) {
      this.#fail(e instanceof Error ? e.message : String(e));
      return;
    }
    if (errno === 0) {
      if (this.#failing) this.#log.info({ notify_socket: this.#socket }, "systemd's notification socket accepts messages again");
      this.#failing = false;
      return;
    }
    if (errno === ERRNO_EAGAIN && retries > 0) {
      setTimeout(() => this.#send(message, retries - 1), EAGAIN_RETRY_MS).unref();
      return;
    }
    this.#fail(`sendto: ${errnoName(errno)}`);
  }

  /** One warning for the life of the process; later trouble is a debug line once per outage. */
  #fail(reason: string): void {
    if (this.#failing) return;
    this.#failing = true;
    const fields = { notify_socket: this.#socket, err: reason };
    if (this.#warned) this.#log.debug(fields, "cannot notify systemd");
    else this.#log.warn(fields, "cannot notify systemd (readiness, status and watchdog are not reported); carrying on without");
    this.#warned = true;
  }
}

/** The default transport: one close-on-exec AF_UNIX datagram socket, kept for the daemon's life. */
function connectDatagram(address: string): NotifyTransport | string {
  const to = notifyAddress(address);
  if (typeof to === "string") return to;
  const s = openDatagramSocket();
  if ("errno" in s) return `socket: ${errnoName(s.errno)}`;
  return {
    send: (message) => sendDatagram(s.fd, to, Buffer.from(message, "utf8")),
    close: () => closeSocket(s.fd),
  };
}
