import assert from "node:assert/strict";
import { generateKeyPairSync, verify } from "node:crypto";
import fs from "node:fs";
import https from "node:https";
import path from "node:path";
import { describe, test } from "node:test";
import { GcpCredentials } from "../../../src/providers/gcp-secret-manager/credentials.js";
import { tmpDir } from "../../support/tmp.js";
import { crc32c } from "../../../src/providers/gcp-secret-manager/crc32c.js";
import { splitEndpoint } from "../../../src/providers/gcp-secret-manager/client.js";
import { classifyGrpc, Code } from "../../../src/providers/gcp-secret-manager/errors.js";
import { answered, targetOf } from "../../../src/providers/gcp-secret-manager/names.js";

describe("gcp-secret-manager pieces", () => {
  test("CRC-32C: the RFC 3720 check values", () => {
    assert.equal(crc32c(new TextEncoder().encode("123456789")), 0xe3069283);
    assert.equal(crc32c(new Uint8Array(32)), 0x8a9136aa);
    assert.equal(crc32c(new Uint8Array(32).fill(0xff)), 0x62a8ab43);
    assert.equal(crc32c(new Uint8Array(0)), 0);
  });

  test("a secret's version resource: path forms, numbers, aliases, latest", () => {
    assert.deepEqual(targetOf({ name: "a", path: "projects/p/secrets/db" }, undefined), {
      name: "projects/p/secrets/db/versions/latest",
      secretId: "db",
      pinned: undefined,
    });
    assert.deepEqual(targetOf({ name: "a", path: "projects/p/secrets/db", version: "12" }, undefined), {
      name: "projects/p/secrets/db/versions/12",
      secretId: "db",
      pinned: "12",
    });
    assert.deepEqual(targetOf({ name: "a", path: "db", version: "stable" }, "fleet"), {
      name: "projects/fleet/secrets/db/versions/stable",
      secretId: "db",
      pinned: undefined,
    });
    assert.deepEqual(
      targetOf({ name: "a", path: "projects/p/locations/europe-west1/secrets/db" }, undefined),
      { name: "projects/p/locations/europe-west1/secrets/db/versions/latest", secretId: "db", pinned: undefined },
      "a regional secret",
    );
    for (const [path, version] of [
      ["projects/p/secrets/db/versions/1", undefined],
      ["projects/p/secret/db", undefined],
      ["projects/p/secrets/d b", undefined],
      ["projects/p/secrets/db", "01"],
      ["projects/p/secrets/db", "-x"],
    ] as const) {
      assert.equal(typeof targetOf({ name: "a", path, version }, undefined), "string", `${path} ${version}`);
    }
    assert.deepEqual(answered("projects/240170053851/secrets/db/versions/7"), { secretId: "db", number: "7" });
    assert.equal(answered("projects/240170053851/secrets/db/versions/latest"), undefined, "an answer always names the number");
    assert.equal(answered(undefined), undefined);
  });

  test("endpoints: host, host:port, [v6]:port; the default port is 443", () => {
    assert.deepEqual(splitEndpoint(undefined), { host: "secretmanager.googleapis.com", port: 443 });
    assert.deepEqual(splitEndpoint("secretmanager.europe-west1.rep.googleapis.com"), { host: "secretmanager.europe-west1.rep.googleapis.com", port: 443 });
    assert.deepEqual(splitEndpoint("10.1.2.3:8443"), { host: "10.1.2.3", port: 8443 });
    assert.deepEqual(splitEndpoint("[::1]:9443"), { host: "[::1]", port: 9443 });
  });

  test("gRPC statuses: per secret or the whole provider, by kind; the server's details are not copied", () => {
    const c = (code: number, details = "") => classifyGrpc({ code, details }, "gcp x", "service account a@b");
    const row = (code: number, details?: string) => {
      const r = c(code, details);
      return [r.scope, r.error.kind, r.reconnect === true];
    };
    assert.deepEqual(row(Code.NOT_FOUND), ["secret", "permanent", false]);
    assert.deepEqual(row(Code.PERMISSION_DENIED), ["secret", "permanent", false]);
    assert.deepEqual(row(Code.FAILED_PRECONDITION), ["secret", "permanent", false]);
    assert.deepEqual(row(Code.INVALID_ARGUMENT), ["secret", "permanent", false]);
    assert.deepEqual(row(Code.RESOURCE_EXHAUSTED), ["provider", "transient", false]);
    assert.deepEqual(row(Code.UNAVAILABLE), ["provider", "transient", true]);
    assert.deepEqual(row(Code.DEADLINE_EXCEEDED), ["provider", "transient", true]);
    assert.deepEqual(row(Code.CANCELLED), ["provider", "transient", true], "abandoned at sync.timeout: the connection may be dead");
    assert.deepEqual(row(Code.UNAUTHENTICATED), ["provider", "auth", false]);
    assert.deepEqual(row(Code.INTERNAL), ["secret", "transient", false]);
    assert.match(
      c(Code.FAILED_PRECONDITION, "Secret Version [projects/1/secrets/x/versions/2] is in DESTROYED state.").error.message,
      /the version is destroyed/,
    );
    assert.doesNotMatch(c(Code.FAILED_PRECONDITION, "Secret Version [projects/1/secrets/x/versions/2] is in DESTROYED state.").error.message, /projects\/1/);
    assert.match(
      c(Code.UNAVAILABLE, "No connection established. Last error: Error: self-signed certificate in certificate chain").error.message,
      /TLS handshake with the endpoint failed/,
    );
    const retry = classifyGrpc(
      { code: Code.RESOURCE_EXHAUSTED, statusDetails: [{ reason: "RATE_LIMIT_EXCEEDED" }, { retryDelay: { seconds: "12", nanos: 500_000_000 } }] },
      "gcp x",
      "a",
    );
    assert.equal(retry.error.retryAfter, 13);
    assert.deepEqual([c(99).scope, c(99).error.kind], ["secret", "transient"], "an unknown code rejects the answer, it is not a value");
  });

  test("a service-account key signs the SDK's self-signed JWT locally: aud Secret Manager on the default endpoint, the cloud-platform scope on another", async (t) => {
    const dir = tmpDir(t);
    const { privateKey, publicKey } = generateKeyPairSync("rsa", { modulusLength: 2048 });
    const file = path.join(dir, "sa.json");
    const email = "gw@fleet.iam.gserviceaccount.com";
    fs.writeFileSync(
      file,
      JSON.stringify({ type: "service_account", client_email: email, private_key_id: "k1", private_key: privateKey.export({ type: "pkcs8", format: "pem" }) }),
    );
    const jwtOf = async (customEndpoint: boolean) => {
      const h = await new GcpCredentials({ credentialsFile: file, customEndpoint, agent: new https.Agent() }).headers();
      const [head, body, sig] = /^Bearer (.+)$/.exec(h.get("authorization")!)![1]!.split(".") as [string, string, string];
      assert.ok(verify("RSA-SHA256", Buffer.from(`${head}.${body}`), publicKey, Buffer.from(sig, "base64url")), "signed with the key");
      return { header: JSON.parse(Buffer.from(head, "base64url").toString()), claims: JSON.parse(Buffer.from(body, "base64url").toString()) };
    };
    const def = await jwtOf(false);
    assert.deepEqual(def.header, { alg: "RS256", typ: "JWT", kid: "k1" });
    assert.equal(def.claims.aud, "https://secretmanager.googleapis.com/");
    assert.equal(def.claims.scope, undefined);
    assert.deepEqual([def.claims.iss, def.claims.sub, def.claims.exp - def.claims.iat], [email, email, 3600]);
    const custom = await jwtOf(true);
    assert.equal(custom.claims.scope, "https://www.googleapis.com/auth/cloud-platform");
    assert.equal(custom.claims.aud, undefined);
  });
});
