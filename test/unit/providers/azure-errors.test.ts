import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { createHttpHeaders, createPipelineRequest, type PipelineResponse } from "@azure/core-rest-pipeline";
import { Exchanges, classifyVault, retryAfterSeconds, tokenFailure } from "../../../src/providers/azure-key-vault/errors.js";
import { assertNoLeaks, planted } from "../../support/planted.js";

const never = new AbortController().signal;
const VAULT = "fleet.vault.azure.net";

function answer(url: string, status: number, body: string, headers: Record<string, string> = {}): [ReturnType<typeof createPipelineRequest>, PipelineResponse] {
  const request = createPipelineRequest({ url });
  return [request, { request, status, headers: createHttpHeaders(headers), bodyAsText: body }];
}

describe("azure-key-vault error classification", () => {
  test("Retry-After: seconds, an HTTP date, nonsense; capped at an hour", () => {
    assert.equal(retryAfterSeconds("7"), 7);
    assert.equal(retryAfterSeconds("999999"), 3600);
    const d = retryAfterSeconds(new Date(Date.now() + 30_000).toUTCString())!;
    assert.ok(d >= 29 && d <= 31, String(d));
    assert.equal(retryAfterSeconds("soon"), undefined);
    assert.equal(retryAfterSeconds(undefined), undefined);
  });

  test("Exchanges keep only a token endpoint's status, OAuth error code, AADSTS number and Retry-After; never a 200 body, never the vault's answers", () => {
    const x = new Exchanges(VAULT);
    const m0 = x.mark();
    x.observe(...answer(`https://${VAULT}/secrets/a/?api-version=2025-07-01`, 401, '{"error":{"code":"Unauthorized"}}'), undefined);
    assert.equal(x.since(m0), undefined, "vault answers are not token exchanges");
    x.observe(
      ...answer("https://login.microsoftonline.com/t/oauth2/v2.0/token", 200, JSON.stringify({ error: "looks_like_an_error", access_token: planted("tok") })),
      undefined,
    );
    const ok = x.since(m0)!;
    assert.deepEqual([ok.status, ok.oauthError, ok.aadsts], [200, undefined, undefined], "a 200 body is not read");
    const m1 = x.mark();
    assert.equal(x.since(m1), undefined);
    x.observe(
      ...answer(
        "https://login.microsoftonline.com/t/oauth2/v2.0/token",
        401,
        JSON.stringify({ error: "invalid_client", error_description: planted("desc"), error_codes: [7000215] }),
        {
          "retry-after": "3",
        },
      ),
      undefined,
    );
    const bad = x.since(m1)!;
    assert.deepEqual(
      [bad.host, bad.status, bad.oauthError, bad.aadsts, bad.retryAfter, bad.basicChallenge],
      ["login.microsoftonline.com", 401, "invalid_client", 7000215, 3, false],
    );
    x.observe(...answer("https://login.microsoftonline.com/t/oauth2/v2.0/token", 400, JSON.stringify({ error: `bad ${planted("x")}` })), undefined);
    assert.equal(x.since(m1)!.oauthError, undefined, "an error field that is not an OAuth code is dropped");
    x.observe(
      ...answer("http://127.0.0.1:40342/metadata/identity/oauth2/token", 401, "", { "www-authenticate": "Basic realm=/var/opt/azcmagent/tokens/x.key" }),
      undefined,
    );
    assert.equal(x.since(m1)!.basicChallenge, true);
    x.observe(
      createPipelineRequest({ url: "https://login.microsoftonline.com/t/oauth2/v2.0/token" }),
      undefined,
      Object.assign(new Error("connect ECONNREFUSED"), { code: "ECONNREFUSED" }),
    );
    assert.equal(x.since(m1)!.network, "ECONNREFUSED");
  });

  test("token failures are explained by the last exchange, never by the SDK's message", () => {
    const sdk = new Error(`AADSTS7000215: ${planted("sdk-text")}`);
    const where = "azure-key-vault client_secret c in tenant t";
    const ex = (o: Partial<Parameters<typeof tokenFailure>[1] & object>) => ({
      seq: 1,
      host: "login.example",
      status: undefined,
      network: undefined,
      oauthError: undefined,
      aadsts: undefined,
      retryAfter: undefined,
      basicChallenge: false,
      ...o,
    });
    const cases: [ReturnType<typeof tokenFailure>, string, RegExp][] = [
      [tokenFailure(sdk, undefined, where), "auth", /no token could be requested \(Error\); check the auth block$/],
      [tokenFailure(Object.assign(new Error("x"), { name: "AbortError" }), undefined, where), "transient", /token request abandoned/],
      [tokenFailure(sdk, ex({ network: "ETIMEDOUT" }), where), "transient", /token endpoint login\.example unreachable or the connection broke \(ETIMEDOUT\)$/],
      [tokenFailure(sdk, ex({ network: "CERT_HAS_EXPIRED" }), where), "transient", /TLS certificate is not trusted \(CERT_HAS_EXPIRED\); check tls\.ca_file$/],
      [tokenFailure(sdk, ex({ status: 429, retryAfter: 12 }), where), "transient", /throttled the request \(HTTP 429\)/],
      [tokenFailure(sdk, ex({ status: 503 }), where), "transient", /answered HTTP 503$/],
      [tokenFailure(sdk, ex({ status: 401, basicChallenge: true }), where), "auth", /Arc agent's key-file challenge could not be answered/],
      [
        tokenFailure(sdk, ex({ status: 400, oauthError: "invalid_request", aadsts: 90002 }), where),
        "auth",
        /refused the credentials \(invalid_request, AADSTS90002, HTTP 400\)/,
      ],
      [tokenFailure(sdk, ex({ status: 403 }), where), "auth", /refused the credentials \(no error code, HTTP 403\)/],
      [tokenFailure(sdk, ex({ status: 200 }), where), "transient", /answered HTTP 200 with no usable token \(Error\); rejected$/],
    ];
    for (const [e, kind, re] of cases) {
      assert.equal(e.kind, kind, e.message);
      assert.match(e.message, re);
      assert.ok(e.message.startsWith(where));
      assertNoLeaks(e.message, "token failure");
    }
    assert.equal(cases[4]![0].retryAfter, 12);
  });

  test("Key Vault errors: codes are copied only when they are plain words; firewall, disabled, other 4xx; messages never quote the body", () => {
    const rest = (statusCode: number | undefined, code: string | undefined, inner?: string, headers: Record<string, string> = {}) =>
      Object.assign(new Error(planted("kv-message")), {
        name: "RestError",
        statusCode,
        code,
        details: { error: { code, innerError: inner ? { code: inner } : undefined } },
        response: { headers: createHttpHeaders(headers) },
      });
    const c = (e: unknown) => classifyVault(e, "azure-key-vault a", never);
    const fw = c(rest(403, "Forbidden", "ForbiddenByFirewall"));
    assert.deepEqual([fw.scope, fw.error.kind], ["secret", "permanent"]);
    assert.match(fw.error.message, /the vault's firewall refuses this gateway's address \(Forbidden\/ForbiddenByFirewall, HTTP 403\)/);
    const weird = c(rest(403, `Forbidden ${planted("code")}`));
    assert.equal(
      weird.error.message,
      "azure-key-vault a: access denied (Forbidden, HTTP 403); grant the identity get on secrets (role Key Vault Secrets User, or an access policy)",
    );
    const conflict = c(rest(409, "Conflict"));
    assert.deepEqual(
      [conflict.scope, conflict.error.kind, conflict.error.message],
      ["secret", "permanent", "azure-key-vault a: rejected (Conflict, HTTP 409)"],
    );
    const unauth = c(rest(401, "Unauthorized"));
    assert.equal(unauth.scope, "unauthorized");
    const throttled = c(rest(429, "Throttled", undefined, { "retry-after": "4" }));
    assert.deepEqual([throttled.scope, throttled.error.retryAfter], ["provider", 4]);
    const noHeader = c(rest(429, "Throttled"));
    assert.equal(noHeader.error.retryAfter, 1, "a 429 without Retry-After still waits");
    const parse = c(rest(undefined, "PARSE_ERROR"));
    assert.deepEqual([parse.scope, parse.error.kind], ["secret", "transient"]);
    assert.match(parse.error.message, /the answer could not be read \(RestError\); rejected/);
    const net = c(Object.assign(new Error(planted("net")), { name: "RestError", code: "ECONNRESET" }));
    assert.deepEqual([net.scope, net.error.kind], ["provider", "transient"]);
    const bundle = c(new TypeError(planted("typeerror")));
    assert.deepEqual(
      [bundle.scope, bundle.error.kind, bundle.error.message],
      ["secret", "transient", "azure-key-vault a: the answer could not be read (TypeError); rejected"],
    );
    for (const o of [fw, weird, conflict, unauth, throttled, parse, net, bundle]) assertNoLeaks(o.error.message, "vault error");
  });
});
