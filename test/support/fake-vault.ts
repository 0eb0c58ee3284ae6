import fs from "node:fs";
import path from "node:path";
import { LocalServer } from "./local-server.js";
import { randomBytes } from "node:crypto";
import http from "node:http";
import https from "node:https";
import { planted } from "./planted.js";

/**
 * A local Vault that speaks the HTTP API the daemon uses (through node-vault):
 * AppRole / Kubernetes / JWT login, token lookup-self and renew-self with TTLs and
 * max TTLs, KV v1, KV v2 (data with ?version=, metadata current_version), dynamic
 * secrets with leases and sys/leases/renew and /revoke, X-Vault-Namespace, and Vault's JSON
 * error shape `{"errors": [...]}`. It can be told to throttle (429), fail (500),
 * be sealed (503), hang, answer garbage or a truncated body, or go away, and it
 * counts requests per operation.
 */
export type VaultOp = "login" | "lookup-self" | "renew-self" | "lease-renew" | "lease-revoke" | "kv2-data" | "kv2-metadata" | "read";
export type VaultFault = "throttle" | "error" | "sealed" | "hang" | "garbage" | "truncated" | "slow";

interface TokenInfo {
  ttl: number;
  maxTtl: number;
  renewable: boolean;
  created: number;
  expiresAt: number;
}
interface LeaseInfo {
  ttl: number;
  maxExpiresAt: number;
  expiresAt: number;
  renewable: boolean;
}
interface Dynamic {
  ttl: number;
  maxTtl: number;
  renewable: boolean;
  make: () => Record<string, unknown>;
}

export interface FakeVaultOptions {
  tls?: { key: Buffer | string; cert: Buffer | string; ca?: Buffer | string; requireClientCert?: boolean };
  /** Seconds; the token TTL and max TTL that logins issue. */
  tokenTtl?: number;
  tokenMaxTtl?: number;
  /** Requests must carry this X-Vault-Namespace (404 otherwise, as for a path in another namespace). */
  namespace?: string;
}

export class FakeVault extends LocalServer {
  readonly #o: FakeVaultOptions;
  readonly counts = new Map<string, number>();
  /** When each request arrived (ms), for backoff checks. */
  readonly times: number[] = [];
  readonly tokens = new Map<string, TokenInfo>();
  readonly leases = new Map<string, LeaseInfo>();
  readonly kv2 = new Map<string, { data: Record<string, unknown> | null }[]>();
  readonly kv1 = new Map<string, Record<string, unknown>>();
  readonly dynamic = new Map<string, Dynamic>();
  /** Paths (without /v1/) the policy denies. */
  readonly denied = new Set<string>();
  approle = { mount: "approle", roleId: "role-" + randomBytes(4).toString("hex"), secretId: planted("secret-id"), singleUse: false, used: false };
  k8s = { mount: "kubernetes", role: "edge", jwt: planted("k8s-jwt") };
  jwt = { mount: "jwt", role: "edge", jwt: planted("oidc-jwt") };
  tokenTtl: number;
  tokenMaxTtl: number;
  /** Whether renew-self / sys/leases/renew are refused (403 / 400). */
  refuseTokenRenewal = false;
  refuseLeaseRenewal = false;
  /** Whether the token's policy lacks `update` on sys/leases/revoke (403, as Vault answers). */
  refuseLeaseRevoke = false;
  /** Lease ids revoked through sys/leases/revoke, in order. */
  readonly revoked: string[] = [];
  /** Lease ids sys/leases/renew was asked to renew (granted or not), in order. */
  readonly renewed: string[] = [];
  /** Lease ids issued by dynamic-secret reads, in order. */
  readonly issued: string[] = [];
  readonly namespacesSeen = new Set<string>();
  #fault: { kind: VaultFault; match: RegExp | undefined; times: number } | undefined;

  constructor(o: FakeVaultOptions = {}) {
    super();
    this.#o = o;
    this.tokenTtl = o.tokenTtl ?? 3600;
    this.tokenMaxTtl = o.tokenMaxTtl ?? 24 * 3600;
  }

  get url(): string {
    return `${this.#o.tls ? "https" : "http"}://127.0.0.1:${this.port}`;
  }

  count(op: VaultOp): number {
    return this.counts.get(op) ?? 0;
  }

  total(): number {
    let n = 0;
    for (const v of this.counts.values()) n += v;
    return n;
  }

  resetCounts(): void {
    this.counts.clear();
    this.times.length = 0;
  }

  /** A token the daemon can use as-is (token auth). */
  issueToken(ttl = this.tokenTtl, renewable = true): string {
    const t = "hvs." + randomBytes(12).toString("base64url");
    const now = Date.now();
    this.tokens.set(t, { ttl, maxTtl: this.tokenMaxTtl, renewable, created: now, expiresAt: ttl > 0 ? now + ttl * 1000 : Infinity });
    return t;
  }

  revokeAllTokens(): void {
    this.tokens.clear();
  }

  /** Writes a new KV v2 version (creating the secret); returns the version number. */
  putKv2(path: string, data: Record<string, unknown>): number {
    const list = this.kv2.get(path) ?? [];
    list.push({ data });
    this.kv2.set(path, list);
    return list.length;
  }

  deleteKv2Latest(path: string): void {
    const list = this.kv2.get(path);
    if (list && list.length > 0) list[list.length - 1]!.data = null;
  }

  /** Makes the next `times` requests (matching `match` on the path, if given) fail as `kind`. */
  fail(kind: VaultFault, opts: { match?: RegExp; times?: number } = {}): void {
    this.#fault = { kind, match: opts.match, times: opts.times ?? Infinity };
  }

  heal(): void {
    this.#fault = undefined;
    this.releaseHung();
  }

  protected override createServer(handler: http.RequestListener): http.Server | https.Server {
    const t = this.#o.tls;
    return t
      ? https.createServer(
          { key: t.key, cert: t.cert, ca: t.ca, requestCert: t.requireClientCert ?? false, rejectUnauthorized: t.requireClientCert ?? false },
          handler,
        )
      : http.createServer(handler);
  }

  protected async handle(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const chunks: Buffer[] = [];
    for await (const c of req) chunks.push(c as Buffer);
    const url = new URL(req.url ?? "/", "http://x");
    const path = url.pathname.replace(/^\/v1\//, "");
    const op = this.#op(req.method ?? "GET", path);
    this.counts.set(op, (this.counts.get(op) ?? 0) + 1);
    this.times.push(Date.now());
    const ns = req.headers["x-vault-namespace"];
    if (typeof ns === "string") this.namespacesSeen.add(ns);

    const f = this.#fault;
    if (f && f.times > 0 && (!f.match || f.match.test(path))) {
      f.times--;
      switch (f.kind) {
        case "throttle":
          return send(res, 429, { errors: [`request path "${path}": rate limit quota exceeded`] }, { "retry-after": "1" });
        case "error":
          return send(res, 500, { errors: ["1 error occurred:\n\t* internal error\n\n"] });
        case "sealed":
          return send(res, 503, { errors: ["Vault is sealed"] });
        case "hang":
          this.hung.add(res);
          return;
        case "slow": {
          // A correct answer as of now, delivered a second late: the request stays in flight.
          const end = res.end.bind(res) as (...a: unknown[]) => void;
          (res as unknown as { end: (...a: unknown[]) => http.ServerResponse }).end = (...a: unknown[]) => {
            setTimeout(() => end(...a), 1_000);
            return res;
          };
          break;
        }
        case "garbage":
          res.writeHead(200, { "content-type": "application/json" });
          res.end("<html><body>Welcome to the captive portal " + planted("garbage") + "</body></html>");
          return;
        case "truncated": {
          const full = JSON.stringify({ data: { data: { password: planted("truncated") }, metadata: { version: 99 } } });
          res.writeHead(200, { "content-type": "application/json", "content-length": String(full.length) });
          // The first half reaches the client, then the connection drops.
          res.write(full.slice(0, Math.floor(full.length / 2)), () => setTimeout(() => res.socket?.destroy(), 20));
          return;
        }
      }
    }
    if (this.#o.namespace !== undefined && ns !== this.#o.namespace) return send(res, 404, { errors: [] });

    let body: Record<string, any> = {};
    if (chunks.length > 0) {
      try {
        body = JSON.parse(Buffer.concat(chunks).toString("utf8"));
      } catch {
        return send(res, 400, { errors: ["failed to parse JSON input"] });
      }
    }
    const m = req.method ?? "GET";
    // Logins need no token.
    const login = /^auth\/(.+)\/login$/.exec(path);
    if (login && (m === "POST" || m === "PUT")) return this.#login(res, login[1]!, body);

    const token = req.headers["x-vault-token"];
    const info = typeof token === "string" ? this.tokens.get(token) : undefined;
    if (!info || Date.now() >= info.expiresAt) return send(res, 403, { errors: ["permission denied"] });

    if (path === "auth/token/lookup-self" && m === "GET") {
      const ttl = info.expiresAt === Infinity ? 0 : Math.max(0, Math.floor((info.expiresAt - Date.now()) / 1000));
      return send(res, 200, { data: { ttl, renewable: info.renewable, creation_ttl: info.ttl, policies: ["default", "edge"] } });
    }
    if (path === "auth/token/renew-self" && (m === "POST" || m === "PUT")) {
      if (this.refuseTokenRenewal || !info.renewable) return send(res, 403, { errors: ["permission denied"] });
      const inc = typeof body.increment === "number" ? body.increment : info.ttl;
      const maxAt = info.created + info.maxTtl * 1000;
      const granted = Math.max(0, Math.min(inc, Math.floor((maxAt - Date.now()) / 1000)));
      info.expiresAt = Date.now() + granted * 1000;
      return send(res, 200, { auth: { client_token: token, lease_duration: granted, renewable: true, policies: ["default", "edge"] } });
    }
    if (path === "sys/leases/renew" && (m === "PUT" || m === "POST")) {
      if (typeof body.lease_id === "string") this.renewed.push(body.lease_id);
      const lease = typeof body.lease_id === "string" ? this.leases.get(body.lease_id) : undefined;
      if (this.refuseLeaseRenewal || !lease || !lease.renewable || Date.now() >= lease.expiresAt)
        return send(res, 400, { errors: ["lease not found or lease is not renewable"] });
      const inc = typeof body.increment === "number" ? body.increment : lease.ttl;
      const granted = Math.max(0, Math.min(inc, Math.floor((lease.maxExpiresAt - Date.now()) / 1000)));
      lease.expiresAt = Date.now() + granted * 1000;
      return send(res, 200, { lease_id: body.lease_id, renewable: true, lease_duration: granted, request_id: randomBytes(8).toString("hex") });
    }
    if (path === "sys/leases/revoke" && (m === "PUT" || m === "POST")) {
      if (this.refuseLeaseRevoke) return send(res, 403, { errors: ["1 error occurred:\n\t* permission denied\n\n"] });
      const id = typeof body.lease_id === "string" ? body.lease_id : "";
      if (id === "") return send(res, 400, { errors: ["lease_id must be specified"] });
      // Revoking a lease Vault no longer has (expired, already revoked) is not an error.
      if (this.leases.delete(id)) this.revoked.push(id);
      // sync defaults to true: the revocation is done when Vault answers 204; sync=false queues it (202).
      res.writeHead(body.sync === false ? 202 : 204);
      res.end();
      return;
    }
    if (m !== "GET") return send(res, 405, { errors: ["unsupported operation"] });
    for (const d of this.denied)
      if (path === d || path.startsWith(d + "/") || path.startsWith(d + "?"))
        return send(res, 403, { errors: ["1 error occurred:\n\t* permission denied\n\n"] });

    const kv = /^(.+?)\/(data|metadata)\/(.+)$/.exec(path);
    if (kv && this.kv2.has(`${kv[1]}/data/${kv[3]}`)) {
      const versions = this.kv2.get(`${kv[1]}/data/${kv[3]}`)!;
      const current = versions.length;
      if (kv[2] === "metadata") {
        const vs: Record<string, unknown> = {};
        for (const [i, v] of versions.entries())
          vs[String(i + 1)] = { created_time: new Date().toISOString(), deletion_time: v.data ? "" : new Date().toISOString(), destroyed: false };
        return send(res, 200, { data: { current_version: current, oldest_version: 1, max_versions: 0, versions: vs } });
      }
      const want = url.searchParams.has("version") ? Number(url.searchParams.get("version")) : current;
      const v = versions[want - 1];
      if (!v) return send(res, 404, { errors: [] });
      const metadata = {
        version: want,
        created_time: new Date().toISOString(),
        deletion_time: v.data ? "" : new Date().toISOString(),
        destroyed: false,
        custom_metadata: null,
      };
      if (!v.data) return send(res, 404, { data: { data: null, metadata } });
      return send(res, 200, {
        request_id: randomBytes(8).toString("hex"),
        lease_id: "",
        renewable: false,
        lease_duration: 0,
        data: { data: v.data, metadata },
      });
    }
    const v1 = this.kv1.get(path);
    if (v1) return send(res, 200, { request_id: randomBytes(8).toString("hex"), lease_id: "", renewable: false, lease_duration: 2764800, data: v1 });
    const dyn = this.dynamic.get(path);
    if (dyn) {
      const leaseId = `${path}/${randomBytes(8).toString("hex")}`;
      const now = Date.now();
      this.leases.set(leaseId, { ttl: dyn.ttl, renewable: dyn.renewable, expiresAt: now + dyn.ttl * 1000, maxExpiresAt: now + dyn.maxTtl * 1000 });
      this.issued.push(leaseId);
      return send(res, 200, {
        request_id: randomBytes(8).toString("hex"),
        lease_id: leaseId,
        renewable: dyn.renewable,
        lease_duration: dyn.ttl,
        data: dyn.make(),
      });
    }
    return send(res, 404, { errors: [] });
  }

  #login(res: http.ServerResponse, mount: string, body: Record<string, any>): void {
    let ok = false;
    if (mount === this.approle.mount) {
      ok = body.role_id === this.approle.roleId && body.secret_id === this.approle.secretId && !(this.approle.singleUse && this.approle.used);
      if (ok) this.approle.used = true;
      if (!ok) return send(res, 400, { errors: ["invalid role or secret ID"] });
    } else if (mount === this.k8s.mount) {
      ok = body.role === this.k8s.role && body.jwt === this.k8s.jwt;
    } else if (mount === this.jwt.mount) {
      ok = body.role === this.jwt.role && body.jwt === this.jwt.jwt;
    } else {
      return send(res, 404, { errors: [`no handler for route "auth/${mount}/login"`] });
    }
    if (!ok) return send(res, 403, { errors: ["permission denied"] });
    const token = this.issueToken(this.tokenTtl, true);
    send(res, 200, {
      auth: { client_token: token, accessor: randomBytes(8).toString("hex"), policies: ["default", "edge"], lease_duration: this.tokenTtl, renewable: true },
    });
  }

  #op(method: string, path: string): VaultOp {
    if (/^auth\/.+\/login$/.test(path)) return "login";
    if (path === "auth/token/lookup-self") return "lookup-self";
    if (path === "auth/token/renew-self") return "renew-self";
    if (path === "sys/leases/renew") return "lease-renew";
    if (path === "sys/leases/revoke") return "lease-revoke";
    if (/\/metadata\//.test(path)) return "kv2-metadata";
    if (/\/data\//.test(path)) return "kv2-data";
    void method;
    return "read";
  }
}

function send(res: http.ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  const s = JSON.stringify(body);
  res.writeHead(status, { "content-type": "application/json", "content-length": String(Buffer.byteLength(s)), ...headers });
  res.end(s);
}

/**
 * A daemon config in `dir` reading `secrets` from this fake Vault in namespace
 * `edge` through AppRole (role and secret id files written 0600), host-sealed,
 * with quick backoff; `sync` overrides the sync section's keys.
 */
export function approleDaemonConfig(dir: string, fv: FakeVault, secrets: Record<string, unknown>, sync: Record<string, unknown> = {}): Record<string, unknown> {
  fs.writeFileSync(path.join(dir, "role_id"), fv.approle.roleId, { mode: 0o600 });
  fs.writeFileSync(path.join(dir, "secret_id"), fv.approle.secretId, { mode: 0o600 });
  return {
    data_dir: path.join(dir, "data"),
    socket: path.join(dir, "s.sock"),
    seal: { type: "host" },
    sync: { interval: "30s", backoff_min: "200ms", backoff_max: "1s", timeout: "2s", ...sync },
    providers: {
      vault: {
        type: "vault",
        address: fv.url,
        namespace: "edge",
        auth: { method: "approle", role_id_file: path.join(dir, "role_id"), secret_id_file: path.join(dir, "secret_id") },
      },
    },
    secrets,
    log: { level: "debug" },
  };
}
