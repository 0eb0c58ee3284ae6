import assert from "node:assert/strict";
import type http from "node:http";
import { describe, test } from "node:test";
import { signingKey, verifySigV4 } from "../../support/sigv4.js";

// The worked example of the AWS SigV4 documentation (IAM ListUsers, 2015-08-30).
const SECRET = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";
const AT = Date.parse("2015-08-30T12:36:00Z");
const SIG = "5d672d79c15b13162d9279b0855cfba6789a8edb4c82c400e06b5924a6f2b5d7";
function request(over: { url?: string; signature?: string; date?: string; headers?: Record<string, string> } = {}): http.IncomingMessage {
  return {
    method: "GET",
    url: over.url ?? "/?Action=ListUsers&Version=2010-05-08",
    headers: {
      "content-type": "application/x-www-form-urlencoded; charset=utf-8",
      host: "iam.amazonaws.com",
      "x-amz-date": over.date ?? "20150830T123600Z",
      authorization: `AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/iam/aws4_request, SignedHeaders=content-type;host;x-amz-date, Signature=${over.signature ?? SIG}`,
      ...over.headers,
    },
  } as unknown as http.IncomingMessage;
}
const lookup = (id: string) => (id === "AKIDEXAMPLE" ? { secretAccessKey: SECRET } : undefined);

describe("SigV4 verification used by the fake AWS servers", () => {
  test("the signing key and signature of the AWS documentation's example", () => {
    assert.equal(signingKey(SECRET, "20150830", "us-east-1", "iam").toString("hex"), "c4afb1cc5771d871763a393e44b703571b55cc28424d1a5e86da6ed3c154a4b9");
    assert.deepEqual(verifySigV4(request(), Buffer.alloc(0), lookup, AT), { ok: true, accessKeyId: "AKIDEXAMPLE", region: "us-east-1", service: "iam" });
  });

  test("any change to what was signed, an unknown key, or a stale date is refused", () => {
    const code = (r: ReturnType<typeof verifySigV4>) => (r.ok ? "ok" : r.code);
    assert.equal(code(verifySigV4(request({ url: "/?Action=ListUsers&Version=2010-05-09" }), Buffer.alloc(0), lookup, AT)), "InvalidSignatureException");
    assert.equal(code(verifySigV4(request({ headers: { host: "evil.example" } }), Buffer.alloc(0), lookup, AT)), "InvalidSignatureException");
    assert.equal(code(verifySigV4(request(), Buffer.from("body"), lookup, AT)), "InvalidSignatureException");
    assert.equal(code(verifySigV4(request({ signature: SIG.replace(/^5/, "6") }), Buffer.alloc(0), lookup, AT)), "InvalidSignatureException");
    assert.equal(code(verifySigV4(request(), Buffer.alloc(0), () => ({ secretAccessKey: SECRET + "x" }), AT)), "InvalidSignatureException");
    assert.equal(code(verifySigV4(request(), Buffer.alloc(0), () => undefined, AT)), "UnrecognizedClientException");
    assert.equal(code(verifySigV4(request(), Buffer.alloc(0), lookup, AT + 16 * 60_000)), "RequestExpired");
    const noAuth = request();
    delete (noAuth.headers as Record<string, unknown>).authorization;
    assert.equal(code(verifySigV4(noAuth, Buffer.alloc(0), lookup, AT)), "MissingAuthenticationToken");
    assert.equal(code(verifySigV4(request(), Buffer.alloc(0), () => ({ secretAccessKey: SECRET, sessionToken: "t" }), AT)), "UnrecognizedClientException");
  });
});
