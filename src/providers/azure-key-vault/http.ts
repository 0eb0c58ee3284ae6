import fs from "node:fs";
import http from "node:http";
import https from "node:https";
import tls from "node:tls";
import { createDefaultHttpClient, type HttpClient, type PipelineRequest, type PipelineResponse } from "@azure/core-rest-pipeline";
import { ProviderError } from "../provider.js";

/** Sees every answer (or connection failure) before the SDK does; see Exchanges. */
export type Observer = (request: PipelineRequest, response: PipelineResponse | undefined, error: unknown) => void;

/** A request that has not been answered by then is abandoned (token calls get no AbortSignal from MSAL). */
export const REQUEST_TIMEOUT_MS = 30_000;

/**
 * The one HTTP layer under the SecretClient and the credential: the SDK's own
 * Node client, with our keep-alive agents put on every request. That is how
 * `tls.ca_file` reaches both the vault and the token endpoint (MSAL sends its
 * requests through the credential's pipeline, hence through this client too)
 * without touching process-wide TLS settings (NODE_EXTRA_CA_CERTS,
 * NODE_TLS_REJECT_UNAUTHORIZED), and how close() can drop every socket.
 * The CA file is trusted in addition to Node's bundled roots, not instead of
 * them: the vault may sit behind a private CA while Entra ID is the public one.
 * Plain-HTTP requests are only the machine-local managed identity endpoints.
 */
export class AgentHttpClient implements HttpClient {
  readonly #base = createDefaultHttpClient();
  readonly #http = new http.Agent({ keepAlive: false });
  readonly #caFile: string | undefined;
  readonly #observe: Observer | undefined;
  #https: https.Agent | undefined;

  constructor(opts: { caFile?: string | undefined; observe?: Observer }) {
    this.#caFile = opts.caFile;
    this.#observe = opts.observe;
  }

  /** Built at first use (and after close), so an unreadable CA file is a fetch error, not a failed start. */
  #httpsAgent(): https.Agent {
    this.#https ??= new https.Agent({
      keepAlive: true,
      maxSockets: 16,
      ca: this.#caFile === undefined ? undefined : [...tls.rootCertificates, readCa(this.#caFile)],
      rejectUnauthorized: true,
    });
    return this.#https;
  }

  async sendRequest(request: PipelineRequest): Promise<PipelineResponse> {
    request.agent = request.url.startsWith("https:") ? this.#httpsAgent() : this.#http;
    // Our own deadline rather than `request.timeout`: the SDK's client leaves that
    // timer running when a request fails, holding the process for its full length.
    const deadline = new AbortController();
    const outer = request.abortSignal;
    const onAbort = () => deadline.abort();
    if (outer?.aborted) deadline.abort();
    outer?.addEventListener("abort", onAbort, { once: true });
    const timer = request.timeout > 0 ? undefined : setTimeout(onAbort, REQUEST_TIMEOUT_MS);
    request.abortSignal = deadline.signal;
    let response: PipelineResponse;
    try {
      response = await this.#base.sendRequest(request);
    } catch (e) {
      this.#observe?.(request, undefined, e);
      throw e;
    } finally {
      clearTimeout(timer);
      outer?.removeEventListener("abort", onAbort);
      request.abortSignal = outer;
    }
    this.#observe?.(request, response, undefined);
    return response;
  }

  close(): void {
    this.#https?.destroy();
    this.#https = undefined;
    this.#http.destroy();
  }
}

function readCa(file: string): Buffer {
  try {
    return fs.readFileSync(file);
  } catch (e) {
    throw new ProviderError("auth", `azure-key-vault tls.ca_file ${file} cannot be read (${(e as NodeJS.ErrnoException).code ?? "error"})`);
  }
}
