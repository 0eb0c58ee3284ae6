import { LocalServer } from "./local-server.js";
import { randomBytes, randomUUID } from "node:crypto";
import type http from "node:http";
import { planted } from "./planted.js";
import { verifySigV4, type SigV4Credentials } from "./sigv4.js";

/**
 * A local AWS endpoint for Secrets Manager and SSM Parameter Store (JSON 1.1 over
 * POST, the operation in X-Amz-Target) and STS (the query protocol, XML answers).
 * Every request's SigV4 signature is verified against the credentials the server
 * knows (the test's keys, and the temporary ones its AssumeRole issued); a bad
 * one gets the AWS error shape. It can throttle, fail (5xx), hang, answer garbage
 * or a truncated body, rotate secrets, deny, and go away, and counts requests per
 * operation ("secretsmanager.GetSecretValue", "ssm.GetParameters", "sts.AssumeRole"...).
 */
export const ACCOUNT = "123456789012";
export type AwsFault = "throttle" | "error" | "hang" | "garbage" | "truncated" | "badsig" | "malformed";

interface SmVersion {
  id: string;
  string?: string;
  binary?: Buffer;
  stages: Set<string>;
}
interface Param {
  type: "String" | "SecureString" | "StringList";
  versions: string[];
}

export class FakeAws extends LocalServer {
  readonly region: string;
  readonly counts = new Map<string, number>();
  /** When each request arrived (ms), for backoff checks. */
  readonly times: number[] = [];
  /** Credentials accepted for signing; the test's own are added by the constructor. */
  readonly credentials = new Map<string, SigV4Credentials>();
  readonly accessKeyId = "AKIA" + randomBytes(8).toString("hex").toUpperCase();
  readonly secretAccessKey = randomBytes(20).toString("base64");
  readonly secrets = new Map<string, { arn: string; versions: SmVersion[] }>();
  readonly params = new Map<string, Param>();
  /** Resource names (secret names, parameter names, role ARNs) that are denied. */
  readonly denied = new Set<string>();
  /** Operations denied as a whole (e.g. "secretsmanager.BatchGetSecretValue"). */
  readonly deniedOps = new Set<string>();
  /** Which access key signed each operation (role chaining checks). */
  readonly signedBy = new Map<string, Set<string>>();
  /** Roles AssumeRole may assume; anything else is AccessDenied. */
  readonly roles = new Set<string>();
  stsDefaultDuration = 3600;
  #fault: { kind: AwsFault; match: RegExp | undefined; times: number } | undefined;

  constructor(opts: { region?: string } = {}) {
    super();
    this.region = opts.region ?? "eu-west-1";
    this.credentials.set(this.accessKeyId, { secretAccessKey: this.secretAccessKey });
  }

  get url(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  /** Environment for a daemon (or SDK) that should sign with the test keys. */
  env(): NodeJS.ProcessEnv {
    return {
      AWS_ACCESS_KEY_ID: this.accessKeyId,
      AWS_SECRET_ACCESS_KEY: this.secretAccessKey,
      AWS_REGION: this.region,
      AWS_EC2_METADATA_DISABLED: "true",
      AWS_CONFIG_FILE: "/nonexistent",
      AWS_SHARED_CREDENTIALS_FILE: "/nonexistent",
    };
  }

  count(op: string): number {
    return this.counts.get(op) ?? 0;
  }

  total(prefix = ""): number {
    let n = 0;
    for (const [k, v] of this.counts) if (k.startsWith(prefix)) n += v;
    return n;
  }

  resetCounts(): void {
    this.counts.clear();
    this.times.length = 0;
  }

  arn(name: string): string {
    return `arn:aws:secretsmanager:${this.region}:${ACCOUNT}:secret:${name}-${Buffer.from(name).toString("hex").slice(0, 6).padEnd(6, "0")}`;
  }

  /** Creates or rotates a secret: the new value becomes AWSCURRENT, the old one AWSPREVIOUS. Returns the VersionId. */
  putSecret(name: string, value: string | Buffer): string {
    const s = this.secrets.get(name) ?? { arn: this.arn(name), versions: [] };
    for (const v of s.versions) {
      v.stages.delete("AWSPREVIOUS");
      if (v.stages.delete("AWSCURRENT")) v.stages.add("AWSPREVIOUS");
    }
    const id = randomUUID();
    s.versions.push({ id, ...(typeof value === "string" ? { string: value } : { binary: value }), stages: new Set(["AWSCURRENT"]) });
    this.secrets.set(name, s);
    return id;
  }

  /** Creates or updates a parameter; returns its new version number. */
  putParam(name: string, value: string, type: Param["type"] = "String"): number {
    const p = this.params.get(name) ?? { type, versions: [] };
    p.type = type;
    p.versions.push(value);
    this.params.set(name, p);
    return p.versions.length;
  }

  /** Deletes a parameter (DeleteParameter): later reads and walks no longer see it. */
  deleteParam(name: string): void {
    this.params.delete(name);
  }

  fail(kind: AwsFault, opts: { match?: RegExp; times?: number } = {}): void {
    this.#fault = { kind, match: opts.match, times: opts.times ?? Infinity };
  }

  heal(): void {
    this.#fault = undefined;
    this.releaseHung();
  }

  protected async handle(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const chunks: Buffer[] = [];
    for await (const c of req) chunks.push(c as Buffer);
    const body = Buffer.concat(chunks);
    const target = req.headers["x-amz-target"];
    const isJson = typeof target === "string";
    let op: string;
    let form: URLSearchParams | undefined;
    if (isJson) {
      const [prefix, name] = target.split(".");
      op = `${prefix === "AmazonSSM" ? "ssm" : prefix === "secretsmanager" ? "secretsmanager" : prefix}.${name}`;
    } else {
      form = new URLSearchParams(body.toString("utf8"));
      op = `sts.${form.get("Action") ?? "unknown"}`;
    }
    this.counts.set(op, (this.counts.get(op) ?? 0) + 1);
    this.times.push(Date.now());
    const err = (status: number, code: string, message: string) => (isJson ? jsonError(res, status, code, message) : xmlError(res, status, code, message));

    const f = this.#fault;
    if (f && f.times > 0 && (!f.match || f.match.test(op))) {
      f.times--;
      switch (f.kind) {
        case "throttle":
          return isJson ? jsonError(res, 400, "ThrottlingException", "Rate exceeded") : xmlError(res, 400, "Throttling", "Rate exceeded");
        case "error":
          return err(500, isJson ? "InternalServiceError" : "InternalFailure", "An internal error occurred");
        case "hang":
          this.hung.add(res);
          return;
        case "garbage":
          res.writeHead(200, { "content-type": isJson ? "application/x-amz-json-1.1" : "text/xml" });
          res.end("<html>captive portal " + planted("aws-garbage") + "</html>");
          return;
        case "truncated": {
          const full = JSON.stringify({ SecretValues: [{ Name: "x", SecretString: planted("aws-truncated"), VersionId: randomUUID() }], Errors: [] });
          res.writeHead(200, { "content-type": "application/x-amz-json-1.1", "content-length": String(full.length) });
          // The first half reaches the client, then the connection drops.
          res.write(full.slice(0, Math.floor(full.length / 2)), () => setTimeout(() => res.socket?.destroy(), 20));
          return;
        }
        case "malformed":
          // Well-formed JSON that is not what the API documents: a parameter without its Value.
          return sendJson(res, op === "ssm.GetParametersByPath" ? { Parameters: [{ Name: "/x/y", Type: "String", Version: 1 }] } : {});
        case "badsig":
          return isJson
            ? jsonError(res, 400, "InvalidSignatureException", "The request signature we calculated does not match the signature you provided.")
            : xmlError(res, 403, "SignatureDoesNotMatch", "The request signature we calculated does not match the signature you provided.");
      }
    }

    const v = verifySigV4(req, body, (akid) => this.credentials.get(akid));
    if (!v.ok) {
      if (isJson)
        return jsonError(
          res,
          v.code === "MissingAuthenticationToken" ? 403 : 400,
          v.code === "SignatureDoesNotMatch" ? "InvalidSignatureException" : v.code,
          v.message,
        );
      return xmlError(
        res,
        403,
        v.code === "InvalidSignatureException" ? "SignatureDoesNotMatch" : v.code === "UnrecognizedClientException" ? "InvalidClientTokenId" : v.code,
        v.message,
      );
    }
    const by = this.signedBy.get(op) ?? new Set<string>();
    by.add(v.accessKeyId);
    this.signedBy.set(op, by);
    if (this.deniedOps.has(op)) return err(isJson ? 400 : 403, isJson ? "AccessDeniedException" : "AccessDenied", `User is not authorized to perform: ${op}`);

    if (!isJson) return this.#sts(res, form!, v.accessKeyId);
    let input: Record<string, any>;
    try {
      input = JSON.parse(body.toString("utf8"));
    } catch {
      return jsonError(res, 400, "SerializationException", "Start of structure or map found where not expected.");
    }
    switch (op) {
      case "secretsmanager.GetSecretValue":
        return this.#getSecretValue(res, input);
      case "secretsmanager.BatchGetSecretValue":
        return this.#batchGetSecretValue(res, input);
      case "ssm.GetParameters":
        return this.#getParameters(res, input);
      case "ssm.GetParametersByPath":
        return this.#getParametersByPath(res, input);
      default:
        return jsonError(res, 400, "UnknownOperationException", `unknown operation ${op}`);
    }
  }

  #findSecret(id: unknown): [string, { arn: string; versions: SmVersion[] }] | undefined {
    if (typeof id !== "string") return undefined;
    for (const [name, s] of this.secrets) if (name === id || s.arn === id) return [name, s];
    return undefined;
  }

  #secretEntry(name: string, s: { arn: string }, v: SmVersion): Record<string, unknown> {
    return {
      ARN: s.arn,
      Name: name,
      VersionId: v.id,
      ...(v.string !== undefined ? { SecretString: v.string } : { SecretBinary: v.binary!.toString("base64") }),
      VersionStages: [...v.stages],
      CreatedDate: Math.floor(Date.now() / 1000),
    };
  }

  #getSecretValue(res: http.ServerResponse, input: Record<string, any>): void {
    const found = this.#findSecret(input.SecretId);
    if (!found) return jsonError(res, 400, "ResourceNotFoundException", "Secrets Manager can't find the specified secret.");
    const [name, s] = found;
    if (this.denied.has(name))
      return jsonError(res, 400, "AccessDeniedException", `User is not authorized to perform: secretsmanager:GetSecretValue on resource: ${name}`);
    let v: SmVersion | undefined;
    if (input.VersionId) v = s.versions.find((x) => x.id === input.VersionId);
    else v = s.versions.find((x) => x.stages.has(input.VersionStage ?? "AWSCURRENT"));
    if (!v) return jsonError(res, 400, "ResourceNotFoundException", "Secrets Manager can't find the specified secret value for the version or staging label.");
    sendJson(res, this.#secretEntry(name, s, v));
  }

  #batchGetSecretValue(res: http.ServerResponse, input: Record<string, any>): void {
    const ids = input.SecretIdList;
    if (!Array.isArray(ids) || ids.length === 0 || ids.length > 20) return jsonError(res, 400, "ValidationException", "SecretIdList must hold 1 to 20 ids");
    const SecretValues: unknown[] = [];
    const Errors: unknown[] = [];
    for (const id of ids) {
      const found = this.#findSecret(id);
      if (!found) {
        Errors.push({ SecretId: id, ErrorCode: "ResourceNotFoundException", Message: "Secrets Manager can't find the specified secret." });
        continue;
      }
      const [name, s] = found;
      if (this.denied.has(name)) {
        Errors.push({ SecretId: id, ErrorCode: "AccessDeniedException", Message: "User is not authorized to perform: secretsmanager:GetSecretValue" });
        continue;
      }
      SecretValues.push(this.#secretEntry(name, s, s.versions.find((x) => x.stages.has("AWSCURRENT"))!));
    }
    sendJson(res, { SecretValues, Errors });
  }

  #paramEntry(name: string, p: Param, version: number, decrypt: boolean, selector?: string): Record<string, unknown> {
    const value =
      p.type === "SecureString" && !decrypt
        ? "AQICAH" +
          Buffer.from(p.versions[version - 1]!)
            .toString("base64")
            .replace(/./g, "x")
        : p.versions[version - 1]!;
    return {
      Name: name,
      Type: p.type,
      Value: value,
      Version: version,
      ...(selector ? { Selector: selector } : {}),
      LastModifiedDate: Math.floor(Date.now() / 1000),
      ARN: `arn:aws:ssm:${this.region}:${ACCOUNT}:parameter${name.startsWith("/") ? "" : "/"}${name}`,
      DataType: "text",
    };
  }

  #getParameters(res: http.ServerResponse, input: Record<string, any>): void {
    const names = input.Names;
    if (!Array.isArray(names) || names.length === 0 || names.length > 10)
      return jsonError(
        res,
        400,
        "ValidationException",
        "1 validation error detected: Value at 'names' failed to satisfy constraint: Member must have length less than or equal to 10",
      );
    const Parameters: unknown[] = [];
    const InvalidParameters: string[] = [];
    for (const full of names as string[]) {
      const i = full.lastIndexOf(":");
      const [name, sel] = i > 0 ? [full.slice(0, i), full.slice(i)] : [full, undefined];
      const p = this.params.get(name);
      if (this.denied.has(name))
        return jsonError(res, 400, "AccessDeniedException", `User is not authorized to perform: ssm:GetParameters on resource: ${name}`);
      const version = sel ? Number(sel.slice(1)) : p?.versions.length;
      if (!p || !version || version > p.versions.length) {
        InvalidParameters.push(full);
        continue;
      }
      Parameters.push(this.#paramEntry(name, p, version, input.WithDecryption === true, sel));
    }
    sendJson(res, { Parameters, InvalidParameters });
  }

  #getParametersByPath(res: http.ServerResponse, input: Record<string, any>): void {
    const path = String(input.Path ?? "");
    const max = Math.min(Number(input.MaxResults ?? 10), 10);
    const prefix = path.endsWith("/") ? path : path + "/";
    if (this.denied.has(path))
      return jsonError(res, 400, "AccessDeniedException", `User is not authorized to perform: ssm:GetParametersByPath on resource: ${path}`);
    const all = [...this.params.keys()].filter((n) => n.startsWith(prefix) && (input.Recursive === true || !n.slice(prefix.length).includes("/"))).sort();
    const start = input.NextToken ? Number(Buffer.from(String(input.NextToken), "base64").toString()) : 0;
    const page = all.slice(start, start + max);
    const next = start + max < all.length ? Buffer.from(String(start + max)).toString("base64") : undefined;
    sendJson(res, {
      Parameters: page.map((n) => this.#paramEntry(n, this.params.get(n)!, this.params.get(n)!.versions.length, input.WithDecryption === true)),
      ...(next ? { NextToken: next } : {}),
    });
  }

  #sts(res: http.ServerResponse, form: URLSearchParams, caller: string): void {
    if (form.get("Action") !== "AssumeRole" || form.get("Version") !== "2011-06-15") return xmlError(res, 400, "InvalidAction", "Could not find operation");
    const role = form.get("RoleArn") ?? "";
    const session = form.get("RoleSessionName") ?? "";
    if (!/^[\w+=,.@-]{2,64}$/.test(session))
      return xmlError(res, 400, "ValidationError", "1 validation error detected: Value at 'roleSessionName' failed to satisfy constraint");
    if (!this.roles.has(role) || this.denied.has(role))
      return xmlError(res, 403, "AccessDenied", `User: ${caller} is not authorized to perform: sts:AssumeRole on resource: ${role}`);
    const duration = Number(form.get("DurationSeconds") ?? this.stsDefaultDuration);
    const akid = "ASIA" + randomBytes(8).toString("hex").toUpperCase();
    const secret = planted("sts-secret");
    const token = planted("sts-token") + randomBytes(24).toString("base64");
    this.credentials.set(akid, { secretAccessKey: secret, sessionToken: token });
    const exp = new Date(Date.now() + duration * 1000).toISOString().replace(/\.\d{3}Z$/, "Z");
    const name = role.split("/").pop();
    res.writeHead(200, { "content-type": "text/xml", "x-amzn-requestid": randomUUID() });
    res.end(`<AssumeRoleResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/">
  <AssumeRoleResult>
    <AssumedRoleUser>
      <AssumedRoleId>AROA${randomBytes(8).toString("hex").toUpperCase()}:${session}</AssumedRoleId>
      <Arn>arn:aws:sts::${ACCOUNT}:assumed-role/${name}/${session}</Arn>
    </AssumedRoleUser>
    <Credentials>
      <AccessKeyId>${akid}</AccessKeyId>
      <SecretAccessKey>${secret}</SecretAccessKey>
      <SessionToken>${token}</SessionToken>
      <Expiration>${exp}</Expiration>
    </Credentials>
  </AssumeRoleResult>
  <ResponseMetadata>
    <RequestId>${randomUUID()}</RequestId>
  </ResponseMetadata>
</AssumeRoleResponse>`);
  }
}

function sendJson(res: http.ServerResponse, body: unknown): void {
  const s = JSON.stringify(body);
  res.writeHead(200, { "content-type": "application/x-amz-json-1.1", "content-length": String(Buffer.byteLength(s)), "x-amzn-requestid": randomUUID() });
  res.end(s);
}

/** AWS JSON 1.1 errors: the code in `__type` and in x-amzn-ErrorType. */
function jsonError(res: http.ServerResponse, status: number, code: string, message: string): void {
  const s = JSON.stringify({ __type: code, message });
  res.writeHead(status, {
    "content-type": "application/x-amz-json-1.1",
    "x-amzn-errortype": code,
    "x-amzn-requestid": randomUUID(),
    "content-length": String(Buffer.byteLength(s)),
  });
  res.end(s);
}

/** STS (query protocol) errors: an ErrorResponse document. */
function xmlError(res: http.ServerResponse, status: number, code: string, message: string): void {
  res.writeHead(status, { "content-type": "text/xml", "x-amzn-requestid": randomUUID() });
  res.end(`<ErrorResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/">
  <Error>
    <Type>${status >= 500 ? "Receiver" : "Sender"}</Type>
    <Code>${code}</Code>
    <Message>${message.replace(/&/g, "&amp;").replace(/</g, "&lt;")}</Message>
  </Error>
  <RequestId>${randomUUID()}</RequestId>
</ErrorResponse>`);
}
