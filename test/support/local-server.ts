import http from "node:http";
import type https from "node:https";
import type net from "node:net";

/**
 * What every local protocol server in test/ shares: listening on 127.0.0.1 (a
 * free port, or the same one again), tracking connections so an outage can cut
 * them, and holding "hung" requests that only a heal or an outage releases.
 */
export abstract class LocalServer {
  port = 0;
  #server: http.Server | https.Server | undefined;
  readonly #sockets = new Set<net.Socket>();
  /** Requests deliberately left unanswered (a "hang" fault). */
  protected readonly hung = new Set<http.ServerResponse>();

  /** Answers one request. */
  protected abstract handle(req: http.IncomingMessage, res: http.ServerResponse): Promise<void>;

  /** Plain HTTP unless a subclass serves TLS. */
  protected createServer(handler: http.RequestListener): http.Server | https.Server {
    return http.createServer(handler);
  }

  async start(port = 0): Promise<this> {
    const s = this.createServer((req, res) => void this.handle(req, res));
    const track = (sock: net.Socket) => {
      this.#sockets.add(sock);
      sock.on("close", () => this.#sockets.delete(sock));
    };
    s.on("connection", track);
    s.on("secureConnection", track);
    await new Promise<void>((resolve, reject) => {
      s.once("error", reject);
      s.listen(port, "127.0.0.1", () => resolve());
    });
    this.#server = s;
    this.port = (s.address() as net.AddressInfo).port;
    return this;
  }

  /** Stops listening and cuts every connection: clients see ECONNREFUSED / ECONNRESET. */
  async goAway(): Promise<void> {
    const s = this.#server;
    this.#server = undefined;
    this.releaseHung();
    for (const sock of this.#sockets) sock.destroy();
    if (s) await new Promise<void>((resolve) => s.close(() => resolve()));
  }

  /** Listens again on the same port. */
  async comeBack(): Promise<void> {
    await this.start(this.port);
  }

  async stop(): Promise<void> {
    await this.goAway();
  }

  protected releaseHung(): void {
    for (const r of this.hung) r.destroy();
    this.hung.clear();
  }
}
