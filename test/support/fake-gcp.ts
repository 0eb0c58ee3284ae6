import { generateKeyPairSync, randomBytes, verify, type KeyObject } from "node:crypto";
import fs from "node:fs";
import path from "node:path";
import * as grpc from "@grpc/grpc-js";
import * as protoLoader from "@grpc/proto-loader";
import { crc32c } from "../../src/providers/gcp-secret-manager/crc32c.js";
import { ROOT } from "./daemon.js";
import { planted } from "./planted.js";

/**
 * A local Secret Manager: the gRPC service built from the protos the SDK ships
 * (node_modules/@google-cloud/secret-manager/build/protos, with google-gax's for
 * google/api and google/iam), over TLS. Every call must carry a bearer token: a
 * self-signed JWT (RS256) from the test service account, checked against its
 * public key (kid, iss = sub = the account's email, aud = the service or the
 * cloud-platform scope, exp within an hour), or an access token the fake
 * metadata server or STS (fake-gcp-auth.ts) issued. AccessSecretVersion answers
 * as Secret Manager does: the version's full name (with the project number),
 * the payload and its CRC-32C; `latest` and aliases resolve to a number;
 * disabled and destroyed versions answer FAILED_PRECONDITION. Faults: a status
 * per secret, outages (the listener goes away), hung calls, garbage (bytes that
 * are not the response message), CRC mismatches, malformed answers, and
 * RESOURCE_EXHAUSTED throttling with RetryInfo; requests are counted.
 */
export const SERVICE_AUD = "https://secretmanager.googleapis.com/";
export const CLOUD_PLATFORM = "https://www.googleapis.com/auth/cloud-platform";
const PROTOS = path.join(ROOT, "node_modules/@google-cloud/secret-manager/build/protos");
const GAX_PROTOS = path.join(ROOT, "node_modules/google-gax/build/protos");

export type GcpFault = "unavailable" | "exhausted" | "deadline" | "hang" | "garbage" | "crc" | "malformed" | "unauthenticated" | "internal";
type State = "ENABLED" | "DISABLED" | "DESTROYED";
interface Version {
  data: Buffer;
  state: State;
}
interface Secret {
  versions: Version[];
  aliases: Map<string, number>;
}
/** What the server saw in each call's credentials. */
export interface SeenAuth {
  kind: "jwt" | "token";
  claims?: Record<string, unknown>;
  token?: string;
}
type Callback = grpc.sendUnaryData<unknown>;

/** A response the serializer turns into these raw bytes instead of the message. */
const RAW = Symbol("raw");

export class FakeGcp {
  readonly project = "fleet";
  readonly projectNumber = "240170053851";
  readonly counts = new Map<string, number>();
  /** When each AccessSecretVersion arrived (ms), for backoff checks. */
  readonly times: number[] = [];
  /** The client address and port of each call, in order: a new port is a new connection. */
  readonly peers: string[] = [];
  /** AccessSecretVersion calls per version name asked for (`projects/fleet/secrets/db/versions/latest`). */
  readonly byName = new Map<string, number>();
  readonly secrets = new Map<string, Secret>();
  /** Secret ids the caller may not access (PERMISSION_DENIED). */
  readonly denied = new Set<string>();
  /** A status answered for one secret id, as long as it is set. */
  readonly statusFor = new Map<string, { code: grpc.status; details: string }>();
  /** Access tokens the metadata server and STS issued (and the principal each stands for). */
  readonly accessTokens = new Map<string, string>();
  readonly seen: SeenAuth[] = [];
  /** The x-goog-api-client header of the last call (proves the SDK made it), and its routing header. */
  lastApiClient = "";
  lastRequestParams = "";
  /** Answers wait this long (ms), so that calls overlap; the most seen in flight at once. */
  delayMs = 0;
  maxInFlight = 0;
  #inFlight = 0;
  readonly sa: { email: string; keyId: string; privateKey: string; publicKey: KeyObject };
  port = 0;
  #server: grpc.Server | undefined;
  #service: grpc.ServiceDefinition;
  #creds: grpc.ServerCredentials;
  readonly #hung = new Set<Callback>();
  #fault: { kind: GcpFault; match: RegExp | undefined; times: number; retryAfter?: number } | undefined;

  constructor(tls: { cert: Buffer | string; key: Buffer | string }) {
    const pd = protoLoader.loadSync("google/cloud/secretmanager/v1/service.proto", {
      includeDirs: [PROTOS, GAX_PROTOS],
      keepCase: true,
      longs: String,
      defaults: false,
      oneofs: true,
    });
    const pkg = grpc.loadPackageDefinition(pd) as unknown as {
      google: { cloud: { secretmanager: { v1: { SecretManagerService: { service: grpc.ServiceDefinition } } } } };
    };
    const svc = pkg.google.cloud.secretmanager.v1.SecretManagerService.service;
    const access = svc.AccessSecretVersion!;
    const serialize = access.responseSerialize;
    // The same method, with a serializer that can also send bytes that are not an AccessSecretVersionResponse.
    this.#service = { ...svc, AccessSecretVersion: { ...access, responseSerialize: (v: unknown) => (v as { [RAW]?: Buffer })[RAW] ?? serialize(v) } };
    this.#creds = grpc.ServerCredentials.createSsl(null, [{ private_key: Buffer.from(tls.key), cert_chain: Buffer.from(tls.cert) }], false);
    const { privateKey, publicKey } = generateKeyPairSync("rsa", { modulusLength: 2048 });
    this.sa = {
      email: `edge-gateway@${this.project}.iam.gserviceaccount.com`,
      keyId: randomBytes(20).toString("hex"),
      privateKey: privateKey.export({ type: "pkcs8", format: "pem" }).toString(),
      publicKey,
    };
  }

  get endpoint(): string {
    return `127.0.0.1:${this.port}`;
  }

  async start(port = 0): Promise<this> {
    const s = new grpc.Server();
    s.addService(this.#service, { AccessSecretVersion: (call: grpc.ServerUnaryCall<any, any>, cb: Callback) => this.#access(call, cb) });
    this.port = await new Promise<number>((resolve, reject) => s.bindAsync(`127.0.0.1:${port}`, this.#creds, (e, p) => (e ? reject(e) : resolve(p))));
    this.#server = s;
    return this;
  }

  /** The listener goes away and every connection is cut: clients see UNAVAILABLE. */
  async goAway(): Promise<void> {
    this.#releaseHung();
    this.#server?.forceShutdown();
    this.#server = undefined;
  }

  async comeBack(): Promise<void> {
    await this.start(this.port);
  }

  async stop(): Promise<void> {
    await this.goAway();
  }

  /** A service-account key file for the test account (the private key in it is what must never leak). */
  writeServiceAccount(dir: string, name = "gcp-sa.json"): string {
    const file = path.join(dir, name);
    const key = {
      type: "service_account",
      project_id: this.project,
      private_key_id: this.sa.keyId,
      private_key: this.sa.privateKey,
      client_email: this.sa.email,
      client_id: "104857600000000000000",
      auth_uri: "https://accounts.google.com/o/oauth2/auth",
      token_uri: "https://oauth2.googleapis.com/token",
      universe_domain: "googleapis.com",
    };
    fs.writeFileSync(file, JSON.stringify(key, null, 2), { mode: 0o600 });
    return file;
  }

  /** The base64 lines of the private key: none may appear in any output. */
  keyLines(): string[] {
    return this.sa.privateKey.split("\n").filter((l) => l.length >= 40 && !l.startsWith("-----"));
  }

  /** Adds a version (ENABLED) and returns its number. */
  addVersion(secretId: string, value: string | Buffer): number {
    const s = this.secrets.get(secretId) ?? { versions: [], aliases: new Map<string, number>() };
    s.versions.push({ data: Buffer.from(value), state: "ENABLED" });
    this.secrets.set(secretId, s);
    return s.versions.length;
  }

  setAlias(secretId: string, alias: string, version: number): void {
    this.secrets.get(secretId)!.aliases.set(alias, version);
  }

  setState(secretId: string, version: number, state: State): void {
    const v = this.secrets.get(secretId)!.versions[version - 1]!;
    v.state = state;
    if (state === "DESTROYED") v.data = Buffer.alloc(0);
  }

  versionName(secretId: string, n: number): string {
    return `projects/${this.projectNumber}/secrets/${secretId}/versions/${n}`;
  }

  count(op = "AccessSecretVersion"): number {
    return this.counts.get(op) ?? 0;
  }

  resetCounts(): void {
    this.counts.clear();
    this.byName.clear();
    this.times.length = 0;
    this.seen.length = 0;
  }

  fail(kind: GcpFault, opts: { match?: RegExp; times?: number; retryAfter?: number } = {}): void {
    this.#fault = { kind, match: opts.match, times: opts.times ?? Infinity, retryAfter: opts.retryAfter };
  }

  heal(): void {
    this.#fault = undefined;
    this.#releaseHung();
  }

  #releaseHung(): void {
    for (const cb of this.#hung) cb({ code: grpc.status.UNAVAILABLE, details: "released" });
    this.#hung.clear();
  }

  #access(call: grpc.ServerUnaryCall<{ name?: string }, unknown>, done: Callback): void {
    if (this.delayMs > 0) {
      this.maxInFlight = Math.max(this.maxInFlight, ++this.#inFlight);
      const inner = done;
      done = (e, v) => {
        setTimeout(() => {
          this.#inFlight--;
          inner(e, v);
        }, this.delayMs);
      };
    }
    const cb = done;
    this.counts.set("AccessSecretVersion", this.count() + 1);
    this.times.push(Date.now());
    this.lastApiClient = String(call.metadata.get("x-goog-api-client")[0] ?? "");
    this.lastRequestParams = String(call.metadata.get("x-goog-request-params")[0] ?? "");
    const name = String(call.request.name ?? "");
    this.byName.set(name, (this.byName.get(name) ?? 0) + 1);
    this.peers.push(call.getPeer());
    const fail = (code: grpc.status, details: string, metadata?: grpc.Metadata) => cb({ code, details, ...(metadata ? { metadata } : {}) });

    const authError = this.#authenticate(call.metadata);
    if (authError)
      return fail(
        grpc.status.UNAUTHENTICATED,
        `Request had invalid authentication credentials. Expected OAuth 2 access token, login cookie or other valid authentication credential. (${authError})`,
      );

    const m = /^projects\/([^/]+)\/secrets\/([^/]+)\/versions\/([^/]+)$/.exec(name);
    const f = this.#fault;
    if (f && f.times > 0 && (!f.match || f.match.test(name))) {
      f.times--;
      switch (f.kind) {
        case "unavailable":
          return fail(grpc.status.UNAVAILABLE, "The service is currently unavailable.");
        case "exhausted":
          return fail(
            grpc.status.RESOURCE_EXHAUSTED,
            "Quota exceeded for quota metric 'Access requests' and limit 'Access requests per minute per project per region' of service 'secretmanager.googleapis.com'.",
            quotaDetails(f.retryAfter),
          );
        case "deadline":
          return fail(grpc.status.DEADLINE_EXCEEDED, "Deadline exceeded");
        case "unauthenticated":
          return fail(grpc.status.UNAUTHENTICATED, "Request had invalid authentication credentials.");
        case "internal":
          return fail(grpc.status.INTERNAL, "Internal error encountered.");
        case "hang":
          this.#hung.add(cb);
          call.on("cancelled", () => this.#hung.delete(cb));
          return;
        case "garbage":
          // An HTML page as the message bytes ('<' is field 7 with the invalid wire type 4): not a response.
          return cb(null, { [RAW]: Buffer.from(`<html>captive portal ${planted("gcp-garbage")}</html>`) });
        case "crc": {
          const data = Buffer.from(planted("gcp-corrupted"));
          return cb(null, { name: m ? this.versionName(m[2]!, 1) : name, payload: { data, data_crc32c: String((crc32c(data) ^ 0x5a5a) >>> 0) } });
        }
        case "malformed":
          return cb(null, { name: "projects/other/secrets/someone-else/versions/1", payload: { data: Buffer.from(planted("gcp-malformed")) } });
      }
    }

    if (!m || (m[1] !== this.project && m[1] !== this.projectNumber)) return fail(grpc.status.INVALID_ARGUMENT, `Invalid resource field value in the request.`);
    const [, , id, want] = m as unknown as [string, string, string, string];
    const st = this.statusFor.get(id);
    if (st) return fail(st.code, st.details);
    if (this.denied.has(id))
      return fail(grpc.status.PERMISSION_DENIED, `Permission 'secretmanager.versions.access' denied for resource '${name}' (or it may not exist).`);
    const s = this.secrets.get(id);
    if (!s || s.versions.length === 0)
      return fail(grpc.status.NOT_FOUND, `Secret [projects/${this.projectNumber}/secrets/${id}] not found or has no versions.`);
    const n = want === "latest" ? s.versions.length : /^\d+$/.test(want) ? Number(want) : s.aliases.get(want);
    const v = n === undefined ? undefined : s.versions[n - 1];
    if (n === undefined || !v) return fail(grpc.status.NOT_FOUND, `Secret Version [projects/${this.projectNumber}/secrets/${id}/versions/${want}] not found.`);
    if (v.state !== "ENABLED") return fail(grpc.status.FAILED_PRECONDITION, `Secret Version [${this.versionName(id, n)}] is in ${v.state} state.`);
    cb(null, { name: this.versionName(id, n), payload: { data: v.data, data_crc32c: String(crc32c(v.data)) } });
  }

  /** Undefined when the call's bearer token is valid; otherwise why not. */
  #authenticate(md: grpc.Metadata): string | undefined {
    const auth = String(md.get("authorization")[0] ?? "");
    const m = /^Bearer (\S+)$/.exec(auth);
    if (!m) return "no bearer token";
    const token = m[1]!;
    if (this.accessTokens.has(token)) {
      this.seen.push({ kind: "token", token });
      return undefined;
    }
    const parts = token.split(".");
    if (parts.length !== 3) return "not a JWT nor an issued token";
    let header: Record<string, unknown>;
    let claims: Record<string, unknown>;
    try {
      header = JSON.parse(Buffer.from(parts[0]!, "base64url").toString("utf8"));
      claims = JSON.parse(Buffer.from(parts[1]!, "base64url").toString("utf8"));
    } catch {
      return "JWT does not decode";
    }
    if (header.alg !== "RS256" || header.kid !== this.sa.keyId) return "unknown key";
    if (!verify("RSA-SHA256", Buffer.from(`${parts[0]}.${parts[1]}`), this.sa.publicKey, Buffer.from(parts[2]!, "base64url"))) return "bad signature";
    const now = Math.floor(Date.now() / 1000);
    if (claims.iss !== this.sa.email || claims.sub !== this.sa.email) return "iss/sub is not the service account";
    if (typeof claims.exp !== "number" || typeof claims.iat !== "number" || claims.exp <= now || claims.exp - claims.iat > 3600 || claims.iat > now + 300)
      return "expired or too long-lived";
    const scoped = typeof claims.scope === "string" && claims.scope.split(" ").includes(CLOUD_PLATFORM);
    if (claims.aud !== SERVICE_AUD && !scoped) return "audience is not Secret Manager";
    this.seen.push({ kind: "jwt", claims });
    return undefined;
  }
}

/** google.rpc.Status details of a quota error: ErrorInfo RATE_LIMIT_EXCEEDED and, if given, RetryInfo. */
function quotaDetails(retryAfter: number | undefined): grpc.Metadata {
  const any = (type: string, value: Buffer) => pb.bytes(3, Buffer.concat([pb.bytes(1, Buffer.from(`type.googleapis.com/${type}`)), pb.bytes(2, value)]));
  const errorInfo = Buffer.concat([pb.bytes(1, Buffer.from("RATE_LIMIT_EXCEEDED")), pb.bytes(2, Buffer.from("googleapis.com"))]);
  const parts = [pb.varint(1, grpc.status.RESOURCE_EXHAUSTED), pb.bytes(2, Buffer.from("Quota exceeded")), any("google.rpc.ErrorInfo", errorInfo)];
  if (retryAfter !== undefined) parts.push(any("google.rpc.RetryInfo", pb.bytes(1, pb.varint(1, retryAfter))));
  const md = new grpc.Metadata();
  md.set("grpc-status-details-bin", Buffer.concat(parts));
  return md;
}

/** The two protobuf wire types the status details need. */
const pb = {
  varint(field: number, n: number): Buffer {
    const out = [field << 3];
    do {
      let b = n & 0x7f;
      n = Math.floor(n / 128);
      if (n > 0) b |= 0x80;
      out.push(b);
    } while (n > 0);
    return Buffer.from(out);
  },
  bytes(field: number, b: Buffer): Buffer {
    const len: number[] = [];
    let n = b.length;
    do {
      let x = n & 0x7f;
      n >>= 7;
      if (n > 0) x |= 0x80;
      len.push(x);
    } while (n > 0);
    return Buffer.concat([Buffer.from([(field << 3) | 2, ...len]), b]);
  },
};
