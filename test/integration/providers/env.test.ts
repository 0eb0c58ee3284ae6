import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { createLogger } from "../../../src/log.js";
import { create } from "../../../src/providers/env/provider.js";
import { isProviderError } from "../../../src/providers/provider.js";
import { assertNoLeaks, planted } from "../../support/planted.js";

const dec = new TextDecoder();

describe("env provider", () => {
  test("reads PREFIX+path from the process environment, exactly; keys from JSON/.env values; missing is permanent", async (t) => {
    const token = planted("envtok");
    const pw = planted("envpw");
    const set: Record<string, string> = {
      SCTEST_API_TOKEN: `${token}\n`,
      SCTEST_DB: JSON.stringify({ password: pw }),
      SCTEST_PIPE: `KAFKA_USER=u\nKAFKA_PASSWORD=${pw}`,
      SCTEST_NOKEY: JSON.stringify({ other: planted("other") }),
    };
    Object.assign(process.env, set);
    t.after(() => {
      for (const k of Object.keys(set)) delete process.env[k];
    });
    const p = create({ name: "environment", options: { type: "env", prefix: "SCTEST_" }, logger: createLogger({ level: "silent" }) });
    const results = await p.fetch(
      [
        { name: "api/token", path: "API_TOKEN" },
        { name: "db/password", path: "DB", key: "password" },
        { name: "kafka/password", path: "PIPE", key: "KAFKA_PASSWORD" },
        { name: "missing", path: "NOT_THERE" },
        { name: "nokey", path: "NOKEY", key: "password" },
      ],
      new AbortController().signal,
    );
    const by = new Map(results.map((r) => [r.name, r]));
    const ok = (n: string) => {
      const r = by.get(n)!;
      assert.ok(r.ok, n);
      return dec.decode(r.value);
    };
    // No newline stripping here: an environment value is taken as set.
    assert.equal(ok("api/token"), `${token}\n`);
    assert.equal(ok("db/password"), pw);
    assert.equal(ok("kafka/password"), pw);
    const missing = by.get("missing")!;
    assert.ok(!missing.ok && isProviderError(missing.error) && missing.error.kind === "permanent");
    assert.equal(missing.error.message, "environment variable SCTEST_NOT_THERE is not set");
    const nokey = by.get("nokey")!;
    assert.ok(!nokey.ok && nokey.error.kind === "permanent");
    assert.equal(nokey.error.message, 'environment variable SCTEST_NOKEY: JSON object has no key "password"');
    assertNoLeaks(missing.error.message + nokey.error.message, "env provider errors");
  });
});
