import { isUtf8 } from "node:buffer";
import type { IncomingMessage, ServerResponse } from "node:http";
import type { Core } from "../core/core.js";
import { peer } from "../core/principal.js";
import { parseAudit, parseWatch } from "../core/requests.js";
import { SealcacheError } from "../errors.js";
import type { Caller } from "../policy/policy.js";
import type { Metrics } from "./metrics.js";
import { sendJson } from "./respond.js";

export interface RouteDeps {
  readonly core: Core;
  readonly metrics: Metrics;
  readonly metricNames: boolean;
}

export interface RequestContext {
  readonly req: IncomingMessage;
  readonly res: ServerResponse;
  readonly url: URL;
  readonly caller: Caller | undefined;
  /** Aborted when the client goes away. */
  readonly gone: AbortSignal;
  /** For `/v1/secrets/{name}`: the decoded name. */
  readonly name: string;
  /** The body, for the one route that takes one (import); zeroed by it. */
  readonly body: readonly Buffer[];
  /** What the audit trail and metrics record about this request; routes fill in the name. */
  readonly at: Noted;
}

/** The route a request took, the secret it named, the error code answered, and whether it is audited. */
export interface Noted {
  route: string;
  name: string | undefined;
  code: string | undefined;
  audit: boolean;
}

/**
 * The socket API's routes: each parses its request, calls one operation of the
 * core with the connection's peer as principal, and writes the answer. The rules
 * (policy, name checks, bounds) are the core's; errors are thrown to the server,
 * which answers them.
 */
export function createRoutes(d: RouteDeps) {
  const { core } = d;
  return {
    getSecret(ctx: RequestContext): void {
      const name = ctx.name;
      const format = ctx.url.searchParams.get("format");
      if (format !== null && format !== "json" && format !== "raw") {
        throw new SealcacheError("bad_request", `format must be json or raw, got ${JSON.stringify(format.slice(0, 16))}`);
      }
      const found = core.get(peer(ctx.caller), name);
      const { meta, value, stale, ageS } = found;
      try {
        const headers: Record<string, string> = {
          "Sealcache-Stale": String(stale),
          "Sealcache-Version": String(meta.version),
          "Cache-Control": "no-store",
        };
        // No Age when it cannot be known (a clock that is behind): absent, rather than a wrong 0.
        if (ageS !== null) headers.Age = String(ageS);
        if (format === "raw") {
          ctx.res.writeHead(200, { ...headers, "Content-Type": "application/octet-stream", "Content-Length": value.length });
          ctx.res.end(Buffer.from(value));
        } else {
          const buf = Buffer.from(value.buffer, value.byteOffset, value.length);
          const utf8 = isUtf8(buf);
          sendJson(
            ctx.res,
            200,
            {
              name,
              value: utf8 ? buf.toString("utf8") : buf.toString("base64"),
              ...(utf8 ? {} : { encoding: "base64" }),
              version: meta.version,
              source_version: meta.sourceVersion,
              fetched_at: new Date(found.fetchedAt).toISOString(),
              stale,
              age_s: ageS,
            },
            headers,
          );
        }
        d.metrics.lookup(stale ? "stale" : "ok", d.metricNames ? name : undefined);
      } finally {
        value.fill(0);
      }
    },

    listSecrets(ctx: RequestContext): void {
      sendJson(ctx.res, 200, { secrets: core.list(peer(ctx.caller), ctx.url.searchParams.get("prefix") ?? "") });
    },

    async watch(ctx: RequestContext): Promise<void> {
      const q = parseWatch((k) => ctx.url.searchParams.get(k));
      ctx.req.socket.setTimeout(q.timeoutMs + 10_000);
      const r = await core.watch(peer(ctx.caller), q, ctx.gone);
      if (ctx.gone.aborted) return;
      if (r) return sendJson(ctx.res, 200, r);
      ctx.res.writeHead(304, { "Cache-Control": "no-store" });
      ctx.res.end();
    },

    refresh(ctx: RequestContext): void {
      const name = ctx.url.searchParams.get("name");
      if (name !== null) ctx.at.name = name;
      sendJson(ctx.res, 202, core.refresh(peer(ctx.caller), name === null ? "all" : [name]));
    },

    /** PUT /v1/secrets/{name}: the body is the value (at most 64 KiB); zeroed once stored. */
    importSecret(ctx: RequestContext): void {
      const value = Buffer.concat(ctx.body);
      try {
        sendJson(ctx.res, 201, core.importSecret(peer(ctx.caller), ctx.name, value));
      } finally {
        value.fill(0);
        for (const c of ctx.body) c.fill(0);
      }
    },

    /** POST /v1/revoke?name=N[&name=M] or ?all=true */
    async revoke(ctx: RequestContext): Promise<void> {
      const q = ctx.url.searchParams;
      const names = q.getAll("name");
      const all = q.get("all");
      if (all !== null && all !== "true") throw new SealcacheError("bad_request", `all must be true, got ${JSON.stringify(all.slice(0, 16))}`);
      if ((all === null) === (names.length === 0)) throw new SealcacheError("bad_request", "revoke takes ?name=NAME (repeatable) or ?all=true, not both");
      if (names.length === 1) ctx.at.name = names[0];
      sendJson(ctx.res, 200, await core.revoke(peer(ctx.caller), all === "true" ? "all" : names));
    },

    async rotateKek(ctx: RequestContext): Promise<void> {
      sendJson(ctx.res, 200, await core.rotateKek(peer(ctx.caller)));
    },

    audit(ctx: RequestContext): void {
      const q = parseAudit((k) => ctx.url.searchParams.get(k), Date.now());
      sendJson(ctx.res, 200, { entries: core.audit(peer(ctx.caller), q) });
    },

    health(ctx: RequestContext): void {
      const h = core.health();
      sendJson(ctx.res, h.ok ? 200 : 503, h.body);
    },

    metrics(ctx: RequestContext): void {
      const body = d.metrics.render(core.gauges());
      ctx.res.writeHead(200, { "Content-Type": "text/plain; version=0.0.4", "Content-Length": Buffer.byteLength(body) });
      ctx.res.end(body);
    },
  };
}
