import { IMPORT_MAX_BYTES } from "../core/requests.js";
import type { RequestContext } from "./routes.js";

/** One endpoint of the socket API. */
export interface Route {
  readonly method: "GET" | "POST" | "PUT";
  /** An exact path, or `/v1/secrets/{name}`. */
  readonly path: string;
  /** For metrics and the audit trail. */
  readonly name: string;
  /** Every request on it is audited (any other request is audited when it is refused as forbidden). */
  readonly audited: boolean;
  /** The largest body it takes; absent: none (a small allowance is read and dropped). */
  readonly body?: number;
  readonly handler: (ctx: RequestContext) => void | Promise<void>;
}

type Handlers = Record<
  "getSecret" | "importSecret" | "listSecrets" | "watch" | "refresh" | "revoke" | "rotateKek" | "audit" | "health" | "metrics",
  (ctx: RequestContext) => void | Promise<void>
>;

export const SECRET_PATH = "/v1/secrets/{name}";

/**
 * The socket API, one line an endpoint: adding a route is adding a line here and
 * its handler in routes.ts. Dispatch, the Allow header of a 405 (CONNECT's too)
 * and the audit trail all read it.
 */
export function routeTable(h: Handlers): readonly Route[] {
  return [
    { method: "GET", path: SECRET_PATH, name: "secret", audited: true, handler: h.getSecret },
    { method: "PUT", path: SECRET_PATH, name: "import", audited: true, body: IMPORT_MAX_BYTES, handler: h.importSecret },
    { method: "GET", path: "/v1/secrets", name: "list", audited: false, handler: h.listSecrets },
    { method: "GET", path: "/v1/watch", name: "watch", audited: false, handler: h.watch },
    { method: "POST", path: "/v1/refresh", name: "refresh", audited: true, handler: h.refresh },
    { method: "POST", path: "/v1/revoke", name: "revoke", audited: true, handler: h.revoke },
    { method: "POST", path: "/v1/rotate-kek", name: "rotate-kek", audited: true, handler: h.rotateKek },
    { method: "GET", path: "/v1/audit", name: "audit", audited: false, handler: h.audit },
    { method: "GET", path: "/v1/health", name: "health", audited: false, handler: h.health },
    { method: "GET", path: "/metrics", name: "metrics", audited: false, handler: h.metrics },
  ];
}

/** Where a request target leads: the routes at its path (by method), and the secret it names. */
export interface Target {
  /** The path as sent (no query), undecoded. */
  readonly path: string;
  /** The routes at that path; empty for an unknown path. */
  readonly routes: readonly Route[];
  /** For `/v1/secrets/{name}`: the decoded name, or undefined when it is not valid percent-encoding. */
  readonly name: string | undefined;
}

export class Routes {
  readonly #byPath = new Map<string, Route[]>();

  constructor(table: readonly Route[]) {
    for (const r of table) this.#byPath.set(r.path, [...(this.#byPath.get(r.path) ?? []), r]);
  }

  /**
   * Routed on the path as sent: URL parsing would resolve `.`/`..` segments (also
   * percent-encoded ones) and read `\` as `/`, turning a bad name into another name.
   */
  target(rawUrl: string): Target {
    const path = requestPath(rawUrl);
    if (path.startsWith("/v1/secrets/")) {
      let name: string | undefined;
      try {
        name = decodeURIComponent(path.slice("/v1/secrets/".length));
      } catch {
        name = undefined;
      }
      return { path, routes: this.#byPath.get(SECRET_PATH)!, name };
    }
    return { path, routes: this.#byPath.get(path) ?? [], name: undefined };
  }

  /** The route for a method at a target; undefined: the target's path has none for it (405, or 404 when it has none at all). */
  route(t: Target, method: string): Route | undefined {
    return t.routes.find((r) => r.method === method);
  }

  /** The name metrics and the audit trail give a request before (or without) its method matching. */
  label(t: Target, method: string): string {
    return (this.route(t, method) ?? t.routes[0])?.name ?? "other";
  }

  /** What the Allow header of a 405 says for a path: its routes' methods, or every method the API has for an unknown path. */
  allow(t: Target): string {
    return t.routes.length > 0 ? t.routes.map((r) => r.method).join(", ") : "GET, POST";
  }

  audited(t: Target): boolean {
    return t.routes.some((r) => r.audited);
  }
}

/** The path of a request target (origin-form or absolute-form), without query, undecoded and unnormalised. */
export function requestPath(target: string): string {
  const t = target.replace(/^[a-z][a-z0-9+.-]*:\/\/[^/?#]*/i, "");
  const end = t.search(/[?#]/);
  return end === -1 ? t : t.slice(0, end);
}
