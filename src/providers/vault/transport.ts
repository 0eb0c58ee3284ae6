import fs from "node:fs";
import http from "node:http";
import https from "node:https";
import { ProviderError } from "../provider.js";

/**
 * The HTTP layer under node-vault, plugged in through its `request-promise`
 * option. node-vault's own layer (axios) is not used because:
 * - it does not pass an AbortSignal through, so a hung Vault would keep a
 *   socket (and a batch) open past sync.timeout;
 * - it turns TLS verification off whenever VAULT_SKIP_VERIFY is in the
 *   environment, which a daemon must not inherit silently;
 * - it needs the CA and client certificate as strings in every call's options,
 *   and it accepts any body (a proxy's HTML page becomes a string "response").
 * Here: one keep-alive agent per provider with the configured TLS, bodies capped
 * and parsed strictly, and failures classified without quoting the body (Vault
 * answers may carry secret values; error text never does).
 */
export interface TransportOptions {
  readonly address: string;
  readonly tls?:
    | {
        readonly ca_file?: string | undefined;
        readonly cert_file?: string | undefined;
        readonly key_file?: string | undefined;
        readonly server_name?: string | undefined;
      }
    | undefined;
  readonly maxBytes?: number;
  /** Counts requests per path (tests, debug logs). */
  readonly onRequest?: (method: string, path: string) => void;
}

/** What node-vault's request layer hands in. */
interface RpOptions {
  method: string;
  uri: string;
  headers?: Record<string, string>;
  json?: unknown;
  signal?: AbortSignal;
}

export interface RpResponse {
  statusCode: number;
  body: unknown;
  request: { path: string };
}

/** A 2xx answer that was not the JSON it should be (garbage, truncated, too large): never stored. */
export class AnswerRejected extends ProviderError {
  constructor(message: string) {
    super("transient", message);
    this.name = "AnswerRejected";
  }
}

export function isAnswerRejected(e: unknown): e is AnswerRejected {
  return e instanceof AnswerRejected;
}

export class VaultTransport {
  readonly #o: TransportOptions;
  readonly #url: URL;
  #agent: http.Agent | undefined;

  constructor(o: TransportOptions) {
    this.#o = o;
    this.#url = new URL(o.address);
  }

  /** The object node-vault expects as `request-promise`. */
  asRequestPromise(): { defaults: (d: unknown) => (o: RpOptions) => Promise<RpResponse> } {
    return { defaults: () => (o) => this.request(o) };
  }

  close(): void {
    this.#agent?.destroy();
    this.#agent = undefined;
  }

  /** Files are read at first use (and again after close), so a rotated client certificate is picked up on restart of the provider. */
  #getAgent(): http.Agent {
    if (this.#agent) return this.#agent;
    if (this.#url.protocol === "https:") {
      const t = this.#o.tls ?? {};
      const read = (f: string | undefined, what: string) => {
        if (f === undefined) return undefined;
        try {
          return fs.readFileSync(f);
        } catch (e) {
          throw new ProviderError("auth", `vault tls.${what} ${f} cannot be read (${(e as NodeJS.ErrnoException).code ?? "error"})`);
        }
      };
      this.#agent = new https.Agent({
        keepAlive: true,
        maxSockets: 16,
        ca: read(t.ca_file, "ca_file"),
        cert: read(t.cert_file, "cert_file"),
        key: read(t.key_file, "key_file"),
        servername: t.server_name,
        rejectUnauthorized: true,
      });
    } else {
      this.#agent = new http.Agent({ keepAlive: true, maxSockets: 16 });
    }
    return this.#agent;
  }

  request(o: RpOptions): Promise<RpResponse> {
    const url = new URL(o.uri);
    const where = `vault ${this.#url.host}`;
    const path = url.pathname;
    const body = o.json !== undefined && typeof o.json === "object" ? Buffer.from(JSON.stringify(o.json)) : undefined;
    const headers: Record<string, string> = { accept: "application/json", ...o.headers };
    if (body) {
      headers["content-type"] = "application/json";
      headers["content-length"] = String(body.length);
    }
    const maxBytes = this.#o.maxBytes ?? 4 * 1024 * 1024;
    const agent = this.#getAgent();
    this.#o.onRequest?.(o.method, path);
    return new Promise<RpResponse>((resolve, reject) => {
      const lib = url.protocol === "https:" ? https : http;
      const req = lib.request(url, { method: o.method, headers, agent, signal: o.signal }, (res) => {
        const status = res.statusCode ?? 0;
        const chunks: Buffer[] = [];
        let size = 0;
        let failed = false;
        res.on("data", (c: Buffer) => {
          size += c.length;
          if (size > maxBytes && !failed) {
            failed = true;
            res.destroy();
            reject(new AnswerRejected(`${where}: answer to ${o.method} ${path} is larger than ${maxBytes} bytes; rejected`));
            return;
          }
          chunks.push(c);
        });
        res.on("error", () => {
          if (failed) return;
          failed = true;
          reject(new AnswerRejected(`${where}: answer to ${o.method} ${path} was cut off (HTTP ${status}); rejected`));
        });
        res.on("aborted", () => {
          if (failed) return;
          failed = true;
          reject(new AnswerRejected(`${where}: answer to ${o.method} ${path} was cut off (HTTP ${status}); rejected`));
        });
        res.on("end", () => {
          if (failed) return;
          const raw = Buffer.concat(chunks);
          const declared = res.headers["content-length"];
          if (declared !== undefined && Number(declared) !== raw.length) {
            reject(new AnswerRejected(`${where}: answer to ${o.method} ${path} has ${raw.length} of ${declared} bytes (truncated); rejected`));
            return;
          }
          try {
            resolve({ statusCode: status, body: this.#interpret(status, raw, res.headers, o.method, path, where), request: { path } });
          } catch (e) {
            reject(e);
          } finally {
            raw.fill(0);
          }
        });
      });
      req.on("error", (e: NodeJS.ErrnoException) => {
        if (e.name === "AbortError" || o.signal?.aborted)
          reject(new ProviderError("transient", `${where}: ${o.method} ${path} abandoned (sync.timeout or shutdown)`));
        else reject(new ProviderError("transient", `${where} unreachable: ${o.method} ${path} failed (${e.code ?? e.name})`));
      });
      if (body) req.end(body);
      else req.end();
    });
  }

  /** Throws for answers that mean "back off" or "not valid"; returns the parsed body otherwise. */
  #interpret(status: number, raw: Buffer, headers: http.IncomingHttpHeaders, method: string, path: string, where: string): unknown {
    if (status === 429) {
      throw new ProviderError("transient", `${where}: ${method} ${path} throttled (HTTP 429, rate limit quota)`, {
        retryAfter: retryAfterSeconds(headers["retry-after"]) ?? 1,
      });
    }
    if (status === 503)
      throw new ProviderError("transient", `${where}: ${method} ${path} answered HTTP 503 (Vault sealed, standby or in maintenance)`, {
        retryAfter: retryAfterSeconds(headers["retry-after"]),
      });
    if (status >= 500 || status === 412) throw new ProviderError("transient", `${where}: ${method} ${path} answered HTTP ${status}`);
    if (raw.length === 0) {
      if (status === 204 || status >= 400) return status >= 400 ? { errors: [] } : null;
      throw new AnswerRejected(`${where}: answer to ${method} ${path} is empty (HTTP ${status}); rejected`);
    }
    try {
      const parsed: unknown = JSON.parse(raw.toString("utf8"));
      if (typeof parsed !== "object" || parsed === null || Array.isArray(parsed)) throw new Error("not an object");
      return parsed;
    } catch {
      // 4xx with a non-JSON body (a proxy's page) still carries its status.
      if (status >= 400) return { errors: [] };
      throw new AnswerRejected(`${where}: answer to ${method} ${path} is not a JSON object (HTTP ${status}); rejected`);
    }
  }
}

function retryAfterSeconds(v: string | string[] | undefined): number | undefined {
  const s = Array.isArray(v) ? v[0] : v;
  if (s === undefined) return undefined;
  const n = Number(s);
  if (Number.isFinite(n) && n >= 0) return Math.min(n, 3600);
  const at = Date.parse(s);
  return Number.isNaN(at) ? undefined : Math.max(0, Math.min(3600, Math.ceil((at - Date.now()) / 1000)));
}
