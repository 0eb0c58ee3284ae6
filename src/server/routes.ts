import { isUtf8 } from "node:buffer";
import type { IncomingMessage, ServerResponse } from "node:http";
import { nameProblem } from "../config/names.js";
import { parseDuration } from "../config/duration.js";
import { SealcacheError } from "../errors.js";
import type { Caller, Policy } from "../policy/policy.js";
import type { SecretStore } from "../store/store.js";
import type { SyncEngine } from "../sync/engine.js";
import type { Metrics } from "./metrics.js";
import type { SecretReader } from "./reader.js";
import { sendJson } from "./respond.js";
import type { WatchHub } from "./watch.js";

/** What exists once the cache key is unsealed. */
export interface Core {
  readonly reader: SecretReader;
  readonly sync: SyncEngine;
  readonly store: SecretStore;
  readonly watch: WatchHub;
}

export interface RouteDeps {
  readonly policy: Policy;
  readonly metrics: Metrics;
  readonly metricNames: boolean;
  core(): Core | undefined;
  sealedReason(): string;
  health(): { ok: boolean; body: unknown };
  gauges(): Parameters<Metrics["render"]>[0];
  /** rotate-kek on the open cache; resolves with what was re-wrapped. */
  rotateKek(): Promise<{ rewrapped: number; seal: string }>;
}

export interface RequestContext {
  readonly req: IncomingMessage;
  readonly res: ServerResponse;
  readonly url: URL;
  readonly caller: Caller | undefined;
  /** Aborted when the client goes away. */
  readonly gone: AbortSignal;
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

const WATCH_DEFAULT_MS = 30_000;
export const WATCH_MAX_MS = 300_000;
const AUDIT_DEFAULT_LIMIT = 100;
export const AUDIT_MAX_LIMIT = 10_000;

export function createRoutes(d: RouteDeps) {
  function core(): Core {
    const c = d.core();
    if (!c) throw new SealcacheError("sealed", `the cache is sealed: ${d.sealedReason()}`, { retryAfter: 30 });
    return c;
  }

  function checkName(name: string): void {
    const problem = nameProblem(name);
    if (problem) throw new SealcacheError("bad_request", `secret name ${JSON.stringify(name.slice(0, 64))} ${problem}`);
  }

  function mayRead(caller: Caller | undefined, name: string): void {
    if (!caller || !d.policy.canRead(caller, name)) {
      throw new SealcacheError("forbidden", `${describeCaller(caller)} may not read ${JSON.stringify(name)}; see the policy section of the config`);
    }
  }

  return {
    getSecret(ctx: RequestContext, name: string): void {
      checkName(name);
      // Checked before the lookup, so a request that will be refused never decrypts the value.
      const format = ctx.url.searchParams.get("format");
      if (format !== null && format !== "json" && format !== "raw") {
        throw new SealcacheError("bad_request", `format must be json or raw, got ${JSON.stringify(format.slice(0, 16))}`);
      }
      mayRead(ctx.caller, name);
      const reader = core().reader;
      const found = reader.lookup(name, reader.now());
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
      const prefix = ctx.url.searchParams.get("prefix") ?? "";
      if (prefix.length > 256) throw new SealcacheError("bad_request", "prefix is longer than 256 bytes");
      const c = core();
      const now = c.reader.now();
      const caller = ctx.caller;
      const may = (n: string) => caller !== undefined && d.policy.canRead(caller, n);
      // A hierarchy's own row (its state and errors, never a value) is shown to a caller
      // allowed its name, anything directly under it (app/prod/* or app/prod/**: the
      // globs are tested against "app/prod/"), or one of the parameters it holds.
      const visible = (n: string) => may(n) || (c.reader.hierarchyOf(n) === n && (may(n + "/") || [...c.reader.membersOf(n)].some(may)));
      const secrets = c.reader
        .configuredNames()
        .filter((n) => n.startsWith(prefix) && visible(n))
        .map((n) => c.reader.status(n, now));
      sendJson(ctx.res, 200, { secrets });
    },

    async watch(ctx: RequestContext): Promise<void> {
      const p = ctx.url.searchParams;
      const names = (p.get("names") ?? "").split(",").filter(Boolean);
      if (names.length === 0) throw new SealcacheError("bad_request", "names is required: /v1/watch?names=a,b&since=REV");
      if (names.length > 256) throw new SealcacheError("bad_request", "at most 256 names per watch");
      for (const n of names) {
        checkName(n);
        ctx.at.name = n;
        mayRead(ctx.caller, n);
      }
      ctx.at.name = undefined;
      const timeout = p.has("timeout") ? parseDuration(p.get("timeout")!) : WATCH_DEFAULT_MS;
      if (timeout === undefined || timeout > WATCH_MAX_MS) throw new SealcacheError("bad_request", `timeout must be a duration up to ${WATCH_MAX_MS / 1000}s`);
      const sinceRaw = p.get("since");
      const since = sinceRaw === null ? undefined : Number(sinceRaw);
      if (since !== undefined && (!Number.isSafeInteger(since) || since < 0)) throw new SealcacheError("bad_request", "since must be a revision number from an earlier answer");
      const c = core();
      for (const n of names) {
        if (c.reader.hierarchyOf(n) === n) throw new SealcacheError("not_found", `${JSON.stringify(n)} is a hierarchy, not a secret: watch the parameters under it by name (${n}/NAME)`);
        if (!c.reader.isConfigured(n)) throw new SealcacheError("not_found", `no secret named ${JSON.stringify(n)} is configured`);
      }
      const answer = (changed: string[]) => sendJson(ctx.res, 200, { revision: c.store.revision, changed });
      if (since === undefined) return answer([]);
      // A revision from the future means the store was reset (quarantined): everything changed.
      if (since > c.store.revision) return answer(names);
      const already = names.filter((n) => (c.store.meta(n)?.changedRev ?? 0) > since);
      if (already.length > 0) return answer(already);
      ctx.req.socket.setTimeout(timeout + 10_000);
      const changed = await c.watch.wait(new Set(names), timeout, ctx.gone);
      if (ctx.gone.aborted) return;
      if (changed.length > 0) return answer(changed);
      ctx.res.writeHead(304, { "Cache-Control": "no-store" });
      ctx.res.end();
    },

    refresh(ctx: RequestContext): void {
      if (ctx.url.searchParams.has("name")) ctx.at.name = ctx.url.searchParams.get("name")!;
      if (!ctx.caller || !d.policy.isAdmin(ctx.caller)) {
        throw new SealcacheError("forbidden", `${describeCaller(ctx.caller)} may not trigger a refresh; it needs a policy rule with admin: true`);
      }
      const name = ctx.url.searchParams.get("name");
      const c = core();
      if (name !== null) {
        checkName(name);
        // A hierarchy, or any name under one (a parameter may have been created since
        // the last walk), refreshes the whole hierarchy.
        if (!c.reader.isRefreshable(name)) throw new SealcacheError("not_found", `no secret named ${JSON.stringify(name)} is configured`);
      }
      const queued = c.sync.trigger(name === null ? [] : [name]);
      sendJson(ctx.res, 202, { queued });
    },

    /** POST /v1/rotate-kek: admin only; the daemon owns the open cache, so rotation happens here. */
    async rotateKek(ctx: RequestContext): Promise<void> {
      if (!ctx.caller || !d.policy.isAdmin(ctx.caller)) {
        throw new SealcacheError("forbidden", `${describeCaller(ctx.caller)} may not rotate the cache key; it needs a policy rule with admin: true`);
      }
      core();
      sendJson(ctx.res, 200, await d.rotateKek());
    },

    /** GET /v1/audit?since=ISO|duration&name=N&limit=L: admin only; never values, there are none to give. */
    audit(ctx: RequestContext): void {
      if (!ctx.caller || !d.policy.isAdmin(ctx.caller)) {
        throw new SealcacheError("forbidden", `${describeCaller(ctx.caller)} may not read the audit trail; it needs a policy rule with admin: true`);
      }
      const p = ctx.url.searchParams;
      const since = parseSince(p.get("since"), Date.now());
      const name = p.get("name") ?? undefined;
      if (name !== undefined) checkName(name);
      const limitRaw = p.get("limit");
      const limit = limitRaw === null ? AUDIT_DEFAULT_LIMIT : Number(limitRaw);
      if (!Number.isSafeInteger(limit) || limit < 1 || limit > AUDIT_MAX_LIMIT) throw new SealcacheError("bad_request", `limit must be a whole number from 1 to ${AUDIT_MAX_LIMIT}`);
      const entries = core()
        .store.audit.query({ since, name, limit })
        .map((e) => ({ ...e, at: new Date(e.at).toISOString() }));
      sendJson(ctx.res, 200, { entries });
    },

    health(ctx: RequestContext): void {
      const h = d.health();
      sendJson(ctx.res, h.ok ? 200 : 503, h.body);
    },

    metrics(ctx: RequestContext): void {
      const body = d.metrics.render(d.gauges());
      ctx.res.writeHead(200, { "Content-Type": "text/plain; version=0.0.4", "Content-Length": Buffer.byteLength(body) });
      ctx.res.end(body);
    },
  };
}

/** `since` as an ISO 8601 time or a duration back from now ("1h", "30m", "90" seconds). */
export function parseSince(raw: string | null, now: number): number | undefined {
  if (raw === null || raw === "") return undefined;
  const ms = parseDuration(raw);
  if (ms !== undefined) return now - ms;
  const t = /^\d{4}-\d{2}-\d{2}/.test(raw) ? Date.parse(raw) : NaN;
  if (Number.isNaN(t)) throw new SealcacheError("bad_request", `since must be an ISO 8601 time or a duration such as 1h, got ${JSON.stringify(raw.slice(0, 40))}`);
  return t;
}

export function describeCaller(c: Caller | undefined): string {
  if (!c) return "a caller whose identity could not be read";
  const changed = c.current?.changed;
  return changed === undefined ? `caller uid ${c.uid} (pid ${c.pid})` : `caller uid ${c.uid} (pid ${c.pid}; ${changed})`;
}
