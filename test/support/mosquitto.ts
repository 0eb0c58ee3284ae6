import { execFileSync, spawn, type ChildProcess } from "node:child_process";
import fs from "node:fs";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import { makeCerts, issueClientCert, type TestCerts } from "./certs.js";

/** The topic prefix the test broker's ACL is written for. */
export const PREFIX = "sealcache";

/**
 * Who may do what on the test broker, as an operator would write it (README
 * "Fleet channel (MQTT)"). `use_username_as_clientid` makes the broker replace
 * each client's id by its username, so `%c` is as trustworthy as `%u`: a
 * gateway cannot pick another's client id to read its commands or write its status.
 */
export function fleetAcl(prefix = PREFIX): string {
  return [
    "# operators: publish commands, read every status and result",
    "user ops",
    `topic write ${prefix}/+/cmd`,
    `topic read ${prefix}/+/status`,
    `topic read ${prefix}/+/result`,
    "",
    "# the capture of the whole bus in tests",
    "user admin",
    "topic read #",
    "",
    "# every gateway: its own command topic and the fleet's; its own status and results",
    `pattern read ${prefix}/%u/cmd`,
    `pattern read ${prefix}/fleet/cmd`,
    `pattern write ${prefix}/%c/status`,
    `pattern write ${prefix}/%c/result`,
    "",
  ].join("\n");
}

export interface BrokerUser {
  readonly username: string;
  readonly password: string;
  readonly cert: string;
  readonly key: string;
}

/**
 * A real mosquitto (Debian package `mosquitto`) for tests: TLS only, on a free
 * 127.0.0.1 port, client certificates required (a test CA), a password file made
 * with mosquitto_passwd, and the fleet ACL. Persistence on, like a production
 * broker, so sessions and retained messages survive stop()/start() on the same
 * port (the broker-restart tests).
 */
export class Mosquitto {
  readonly dir: string;
  readonly certs: TestCerts;
  port = 0;
  readonly #users = new Map<string, BrokerUser>();
  #child: ChildProcess | undefined;
  #log = "";

  readonly #secure: boolean;
  /** Called with each mosquitto process started (the bench registers it for cleanup). */
  onSpawn: ((child: ChildProcess) => void) | undefined;

  private constructor(dir: string, certs: TestCerts, secure = true) {
    this.dir = dir;
    this.certs = certs;
    this.#secure = secure;
  }

  /**
   * A broker without TLS, passwords or ACL (mqtt://, anonymous), for the bench's
   * thousand clients: a certificate and a password each would be most of its set-up.
   */
  static async startAnonymous(t: { after(fn: () => void | Promise<void>): void }, dir: string): Promise<Mosquitto> {
    fs.mkdirSync(path.join(dir, "data"), { recursive: true, mode: 0o700 });
    const m = new Mosquitto(dir, undefined as unknown as TestCerts, false);
    m.port = await freePort();
    t.after(() => m.stop());
    await m.start();
    return m;
  }

  /** Starts a broker in `dir` with these users (each gets a password and a client certificate). */
  static async start(t: { after(fn: () => void | Promise<void>): void }, dir: string, usernames: readonly string[], acl = fleetAcl()): Promise<Mosquitto> {
    fs.mkdirSync(path.join(dir, "data"), { recursive: true, mode: 0o700 });
    const m = new Mosquitto(dir, makeCerts(path.join(dir, "certs")));
    const passwd = path.join(dir, "passwd");
    for (const [i, username] of usernames.entries()) {
      const password = `pw-${username}-${Math.random().toString(36).slice(2, 10)}`;
      execFileSync("mosquitto_passwd", [...(i === 0 ? ["-c"] : []), "-b", passwd, username, password], { stdio: ["ignore", "ignore", "pipe"] });
      m.#users.set(username, { username, password, ...issueClientCert(m.certs, username) });
    }
    fs.chmodSync(passwd, 0o600);
    fs.writeFileSync(path.join(dir, "acl"), acl, { mode: 0o600 });
    m.port = await freePort();
    t.after(() => m.stop());
    await m.start();
    return m;
  }

  get url(): string {
    return `${this.#secure ? "mqtts" : "mqtt"}://127.0.0.1:${this.port}`;
  }

  user(name: string): BrokerUser {
    const u = this.#users.get(name);
    if (!u) throw new Error(`no broker user ${name}`);
    return u;
  }

  /** mqtt.js options for a test client logging in as `name` (MQTT 5, its certificate, no reconnects). */
  clientOptions(name: string) {
    const u = this.user(name);
    return {
      protocolVersion: 5 as const,
      clientId: name,
      username: u.username,
      password: u.password,
      ca: fs.readFileSync(this.certs.caFile),
      cert: fs.readFileSync(u.cert),
      key: fs.readFileSync(u.key),
      reconnectPeriod: 0,
      connectTimeout: 5_000,
    };
  }

  /** Everything the broker logged. */
  log(): string {
    return this.#log;
  }

  /** Starts (again) on the same port; resolves once it accepts connections. */
  async start(): Promise<void> {
    if (this.#child) return;
    const conf = path.join(this.dir, "mosquitto.conf");
    const auth = this.#secure
      ? ["allow_anonymous false", `password_file ${path.join(this.dir, "passwd")}`, `acl_file ${path.join(this.dir, "acl")}`]
      : ["allow_anonymous true"];
    const tls = this.#secure
      ? [
          `cafile ${this.certs.caFile}`,
          `certfile ${this.certs.serverCert}`,
          `keyfile ${this.certs.serverKey}`,
          "require_certificate true",
          "use_username_as_clientid true",
        ]
      : [];
    fs.writeFileSync(
      conf,
      [
        `user ${os.userInfo().username}`,
        "per_listener_settings false",
        ...auth,
        // The capture of the whole bus reads every command and every result of a 1,000-command flood.
        "max_queued_messages 10000",
        "persistence true",
        `persistence_location ${path.join(this.dir, "data")}/`,
        "log_dest stderr",
        "log_type error",
        "log_type warning",
        "log_type notice",
        "log_type information",
        "connection_messages true",
        // Listener options after the listener line: before it they would open mosquitto's default listener on 1883.
        `listener ${this.port} 127.0.0.1`,
        ...tls,
        "",
      ].join("\n"),
    );
    const child = spawn("mosquitto", ["-c", conf], { stdio: ["ignore", "ignore", "pipe"] });
    this.#child = child;
    this.onSpawn?.(child);
    child.stderr!.on("data", (c: Buffer) => (this.#log += c.toString()));
    child.once("exit", () => {
      if (this.#child === child) this.#child = undefined;
    });
    const until = Date.now() + 10_000;
    while (!(await accepts(this.port))) {
      if (this.#child !== child) throw new Error(`mosquitto exited at start:\n${this.#log.slice(-2000)}`);
      if (Date.now() > until) throw new Error(`mosquitto did not listen on ${this.port} within 10 s:\n${this.#log.slice(-2000)}`);
      await new Promise((r) => setTimeout(r, 25));
    }
  }

  /** SIGTERM (it saves sessions and retained messages) and waits for it to exit. */
  async stop(): Promise<void> {
    await this.#end("SIGTERM");
  }

  /** SIGKILL: a crash, nothing saved since the last save. */
  async kill(): Promise<void> {
    await this.#end("SIGKILL");
  }

  async #end(signal: NodeJS.Signals): Promise<void> {
    const child = this.#child;
    if (!child || child.exitCode !== null) return;
    const exited = new Promise((r) => child.once("exit", r));
    child.kill(signal);
    await exited;
    this.#child = undefined;
  }
}

async function freePort(): Promise<number> {
  const s = net.createServer();
  await new Promise<void>((resolve, reject) => {
    s.once("error", reject);
    s.listen(0, "127.0.0.1", () => resolve());
  });
  const port = (s.address() as net.AddressInfo).port;
  await new Promise((r) => s.close(r));
  return port;
}

function accepts(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const sock = net.connect({ port, host: "127.0.0.1" });
    sock.once("connect", () => {
      sock.destroy();
      resolve(true);
    });
    sock.once("error", () => resolve(false));
  });
}
