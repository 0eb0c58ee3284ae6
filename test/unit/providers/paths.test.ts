import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { classifyAws } from "../../../src/providers/aws/errors.js";
import { hierarchyOf } from "../../../src/providers/aws-ssm/provider.js";
import { parsePath } from "../../../src/providers/vault/secrets.js";
import { chunks, mapPool } from "../../../src/providers/pool.js";

describe("provider helpers", () => {
  test("Vault paths: MOUNT/data/REST is KV v2, anything else a plain read", () => {
    assert.deepEqual(parsePath("secret/data/expanso/pipeline"), { kind: "kv2", mount: "secret", rest: "expanso/pipeline" });
    assert.deepEqual(parsePath("/v1/team/kv/data/a"), { kind: "kv2", mount: "team/kv", rest: "a" });
    assert.deepEqual(parsePath("kv/legacy"), { kind: "read", path: "kv/legacy" });
    assert.deepEqual(parsePath("database/creds/edge"), { kind: "read", path: "database/creds/edge" });
  });

  test("SSM hierarchies: /* one level, /** recursive, anything else a parameter name", () => {
    assert.deepEqual(hierarchyOf("/app/prod/*"), { prefix: "/app/prod/", recursive: false });
    assert.deepEqual(hierarchyOf("/app/prod/**"), { prefix: "/app/prod/", recursive: true });
    assert.equal(hierarchyOf("/app/prod/db"), undefined);
  });

  test("AWS errors: throttling and outages are provider-wide and transient; denials and not-found are per secret; bad credentials are auth; messages carry no SDK text", () => {
    const c = (e: object) => {
      const r = classifyAws(e, "sm x");
      return `${r.scope}/${r.error.kind}`;
    };
    const leaky = { message: "PLANTED-echoed-body" };
    assert.equal(c({ ...leaky, name: "ThrottlingException", $metadata: { httpStatusCode: 400 } }), "provider/transient");
    assert.equal(c({ ...leaky, name: "Whatever", $metadata: { httpStatusCode: 429 } }), "provider/transient");
    assert.equal(c({ ...leaky, name: "InternalServiceError", $metadata: { httpStatusCode: 500 } }), "provider/transient");
    assert.equal(c({ ...leaky, name: "Error", code: "ECONNREFUSED" }), "provider/transient");
    assert.equal(c({ ...leaky, name: "AbortError" }), "provider/transient");
    assert.equal(c({ ...leaky, name: "AccessDeniedException", $metadata: { httpStatusCode: 400 } }), "secret/permanent");
    assert.equal(c({ ...leaky, name: "ResourceNotFoundException", $metadata: { httpStatusCode: 400 } }), "secret/permanent");
    assert.equal(c({ ...leaky, name: "InvalidSignatureException", $metadata: { httpStatusCode: 400 } }), "provider/auth");
    assert.equal(c({ ...leaky, name: "CredentialsProviderError" }), "provider/auth");
    assert.equal(c({ ...leaky, name: "SyntaxError", $metadata: { httpStatusCode: 200 } }), "secret/transient");
    assert.doesNotMatch(classifyAws({ ...leaky, name: "AccessDeniedException" }, "sm x").error.message, /PLANTED/);
  });

  test("mapPool keeps order, bounds concurrency, and waits for calls in flight before rethrowing", async () => {
    let inFlight = 0;
    let peak = 0;
    const out = await mapPool([1, 2, 3, 4, 5, 6, 7], 3, async (n) => {
      peak = Math.max(peak, ++inFlight);
      await new Promise((r) => setTimeout(r, 5));
      inFlight--;
      return n * 2;
    });
    assert.deepEqual(out, [2, 4, 6, 8, 10, 12, 14]);
    assert.equal(peak, 3);
    let started = 0;
    await assert.rejects(
      mapPool([1, 2, 3, 4, 5, 6], 2, async (n) => {
        started++;
        if (n === 2) throw new Error("boom");
        await new Promise((r) => setTimeout(r, 5));
      }),
      /boom/,
    );
    assert.ok(started <= 3, `no new call after the failure (started ${started})`);
    assert.deepEqual(chunks([1, 2, 3, 4, 5], 2), [[1, 2], [3, 4], [5]]);
  });
});
