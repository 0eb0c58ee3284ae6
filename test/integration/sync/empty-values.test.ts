import assert from "node:assert/strict";
import fs from "node:fs";
import path from "node:path";
import { describe, test } from "node:test";
import { demoConfig, eventually, launch, sleep, type RunningDaemon } from "../../support/daemon.js";
import { planted } from "../../support/planted.js";
import { tmpDir } from "../../support/tmp.js";

interface Listed {
  name: string;
  state: string;
  error: string | null;
}

const listed = async (d: RunningDaemon): Promise<Map<string, Listed>> =>
  new Map((await d.get("/v1/secrets")).json<{ secrets: Listed[] }>().secrets.map((s) => [s.name, s]));
const EMPTY_ERROR = "provider demo returned an empty value; the cached value is kept (set allow_empty: true on the secret if empty is valid)";

describe("empty values and files rewritten in place (real daemon, file provider)", () => {
  test("a file truncated and rewritten in place (echo new > file) is never served empty", { timeout: 60_000 }, async (t) => {
    const dir = tmpDir(t);
    const values = [planted("v0"), planted("v1"), planted("v2")];
    const file = path.join(dir, "secrets", "rotating");
    const config = demoConfig(dir, { sync: { interval: "50ms", jitter: 0, backoff_min: "50ms", backoff_max: "200ms" } });
    fs.writeFileSync(path.join(dir, "secrets", "rotating"), `${values[0]}\n`);
    (config.secrets as Record<string, unknown>)["demo/rotating"] = { provider: "demo", path: "rotating" };
    const d = await launch(t, dir, config, { waitFor: "synced", extraSecrets: values });

    // The writer: truncate (the daemon may read here), a pause, then the new value.
    let writing = true;
    let rewrites = 0;
    const writer = (async () => {
      const until = Date.now() + 4_000;
      while (Date.now() < until) {
        const fd = fs.openSync(file, "w"); // O_TRUNC: empty from here...
        await sleep(15);
        fs.writeSync(fd, `${values[1 + (rewrites % 2)]}\n`); // ...to here
        fs.closeSync(fd);
        rewrites++;
        await sleep(15);
      }
      writing = false;
    })();
    let reads = 0;
    let sawEmptyError = false;
    while (writing) {
      const r = await d.get("/v1/secrets/demo/rotating?format=raw");
      assert.equal(r.status, 200);
      assert.notEqual(r.body, "", `an empty value was served after ${rewrites} rewrites and ${reads} reads`);
      assert.ok(values.includes(r.body), "the served value is one the writer wrote, whole");
      reads++;
      if (reads % 20 === 0) sawEmptyError ||= (await listed(d)).get("demo/rotating")?.error === EMPTY_ERROR;
    }
    await writer;
    assert.ok(rewrites > 50 && reads > 50, `${rewrites} rewrites, ${reads} reads`);
    // The reads did catch the file empty (and said so), so the race was real.
    assert.ok(sawEmptyError || /secret not refreshed: empty value; cached value kept/.test(d.output()), "the daemon never caught the file empty");
    // Once the writer stops, its last value is served, fresh, with no error.
    const last = values[1 + ((rewrites - 1) % 2)]!;
    await eventually(
      async () => (await d.get("/v1/secrets/demo/rotating?format=raw")).body === last && (await listed(d)).get("demo/rotating")?.error === null,
      5_000,
      "the last value",
    );
  });

  test("an empty value is an error for its secret unless it says allow_empty: true", async (t) => {
    const dir = tmpDir(t);
    const config = demoConfig(dir);
    fs.writeFileSync(path.join(dir, "secrets", "empty"), "");
    fs.writeFileSync(path.join(dir, "secrets", "newline-only"), "\n");
    const secrets = config.secrets as Record<string, unknown>;
    secrets["demo/empty"] = { provider: "demo", path: "empty" };
    secrets["demo/newline-only"] = { provider: "demo", path: "newline-only" };
    secrets["demo/empty-ok"] = { provider: "demo", path: "empty", allow_empty: true };
    const d = await launch(t, dir, config);
    const l = await eventually(
      async () => {
        const m = await listed(d);
        return m.get("demo/empty")?.error && m.get("demo/empty-ok")?.state === "ok" ? m : undefined;
      },
      10_000,
      "the first sync",
    );
    assert.equal(l.get("demo/empty")!.error, EMPTY_ERROR);
    assert.equal(l.get("demo/newline-only")!.error, EMPTY_ERROR);
    const refused = await d.get("/v1/secrets/demo/empty");
    assert.equal(refused.status, 503);
    assert.equal(refused.json().error, "not_synced");
    const ok = await d.get("/v1/secrets/demo/empty-ok?format=raw");
    assert.equal(ok.status, 200);
    assert.equal(ok.body, "");

    // A secret that had a value and then comes back empty keeps the value, stale, and says why.
    const tokenFile = path.join(dir, "secrets", "api-token");
    const before = (await d.get("/v1/secrets/demo/api-token?format=raw")).body;
    fs.writeFileSync(tokenFile, "");
    assert.equal((await d.get("/v1/refresh?name=demo/api-token", { method: "POST" })).status, 202);
    const after = await eventually(
      async () => {
        const s = (await listed(d)).get("demo/api-token");
        return s?.error === EMPTY_ERROR && s;
      },
      10_000,
      "the empty value refused",
    );
    assert.equal(after.state, "stale");
    const served = await d.get("/v1/secrets/demo/api-token");
    assert.equal(served.status, 200);
    assert.equal(served.json().value, before);
    assert.equal(served.json().stale, true);
  });
});
