// An SSM hierarchy (`path: /app/prod/**`) synced as many names, through a real
// daemon and the official SDK against the SigV4-verifying fake: what get, list,
// policy, watch, health and the CLI say about the parameters under it, what
// happens when one is added, rotated or deleted in the backend, before the first
// walk, across a restart while SSM is down, and when the hierarchy comes back empty.
import assert from "node:assert/strict";
import path from "node:path";
import { describe, test, type TestContext } from "node:test";
import { cli, eventually, launch, type RunningDaemon } from "../../support/daemon.js";
import { FakeAws } from "../../support/fake-aws.js";
import { startRequest } from "../../support/http.js";
import { planted } from "../../support/planted.js";
import { tmpDir } from "../../support/tmp.js";

const ME = process.getuid?.() ?? 0;

interface Listed {
  name: string;
  state: string;
  kind: string;
  parent: string | null;
  members: number | null;
  version: number | null;
  source_version: string | null;
  stale: boolean;
  error: string | null;
}

const value = async (d: RunningDaemon, name: string) => {
  const r = await d.get(`/v1/secrets/${name}`);
  assert.equal(r.status, 200, `${name}: ${r.body}`);
  return r.json<{ value: string; version: number; stale: boolean; source_version: string }>();
};
const listed = async (d: RunningDaemon, prefix = "") =>
  new Map((await d.get(`/v1/secrets?prefix=${prefix}`)).json<{ secrets: Listed[] }>().secrets.map((s) => [s.name, s]));
const errorOf = async (d: RunningDaemon, name: string) => {
  const r = await d.get(`/v1/secrets/${name}`);
  return { status: r.status, code: r.json().error as string, message: r.json().message as string, retryAfter: r.headers["retry-after"] };
};

function config(dir: string, fa: FakeAws, secrets: Record<string, unknown>, extra: Record<string, unknown> = {}) {
  return {
    data_dir: path.join(dir, "data"),
    socket: path.join(dir, "s.sock"),
    seal: { type: "host" },
    sync: { interval: "30s", backoff_min: "200ms", backoff_max: "1s", timeout: "2s" },
    providers: { ssm: { type: "aws-ssm", region: fa.region, endpoint: fa.url } },
    secrets,
    log: { level: "debug" },
    ...extra,
  };
}

async function fake(t: TestContext): Promise<FakeAws> {
  const fa = await new FakeAws().start();
  t.after(() => fa.stop());
  return fa;
}

describe("an SSM hierarchy is synced as many names", () => {
  test("each parameter is its own secret: get, list, policy globs, watch on rotation within one refresh, a new parameter appears, a deleted one stops being served", async (t) => {
    const fa = await fake(t);
    const pw1 = planted("ssm-db1");
    const key = planted("ssm-api");
    fa.putParam("/app/prod/db/password", pw1, "SecureString");
    fa.putParam("/app/prod/api-key", key, "SecureString");
    fa.putParam("/app/prod/Region", "eu-west-1");
    fa.putParam("/app/other/x", planted("outside"));
    const dir = tmpDir(t);
    // The policy reads everything under the hierarchy except its region: globs apply to each parameter's name.
    const policy = [{ match: { uid: ME }, allow: ["app/prod", "app/prod/db/**", "app/prod/api-key", "app/prod/new-*", "app/prod/nope"], admin: true }];
    const d = await launch(t, dir, config(dir, fa, { "app/prod": { provider: "ssm", path: "/app/prod/**", refresh: "1s" } }, { policy }), {
      waitFor: "synced",
      env: fa.env(),
    });

    const db = await value(d, "app/prod/db/password");
    assert.equal(db.value, pw1);
    assert.equal(db.source_version, "1");
    assert.equal(db.stale, false);
    assert.equal((await value(d, "app/prod/api-key")).value, key);
    const region = await errorOf(d, "app/prod/region");
    assert.deepEqual([region.status, region.code], [403, "forbidden"], "a parameter's name (lower-cased) is matched like any secret name");
    const parent = await errorOf(d, "app/prod");
    assert.deepEqual([parent.status, parent.code], [404, "not_found"]);
    assert.match(parent.message, /is a hierarchy, not a secret.*app\/prod\/NAME/);
    const none = await errorOf(d, "app/prod/nope");
    assert.deepEqual([none.status, none.code], [404, "not_found"], "the hierarchy was walked: an unknown name under it does not exist");
    assert.match(none.message, /hierarchy app\/prod holds no parameter of that name/);

    let l = await listed(d);
    assert.deepEqual(
      [...l.keys()],
      ["app/prod", "app/prod/api-key", "app/prod/db/password"],
      "the region is hidden from this caller; nothing outside the prefix",
    );
    const h = l.get("app/prod")!;
    assert.deepEqual([h.kind, h.state, h.members, h.version, h.error, h.parent], ["hierarchy", "ok", 3, null, null, null]);
    assert.deepEqual(
      [l.get("app/prod/db/password")!.kind, l.get("app/prod/db/password")!.parent, l.get("app/prod/db/password")!.version],
      ["secret", "app/prod", 1],
    );
    const health = (await d.get("/v1/health")).json();
    assert.deepEqual(health.secrets, { total: 4, ok: 4, stale: 0, expired: 0, not_synced: 0, revoked: 0, errors: 0, hierarchies: 1 });
    const cl = await cli(["list", "--config", d.configFile]);
    assert.match(cl.stdout, /^app\/prod\s+ok\s+\S+\s+3 params\s+ssm/m, cl.stdout);
    assert.match(cl.stdout, /^app\/prod\/db\/password\s+ok\s+\S+\s+1\s+ssm/m);

    // Rotation in SSM reaches the cache within one refresh interval and wakes a watch on the parameter's name.
    const rev = (await d.get("/v1/watch?names=app/prod/db/password")).json().revision as number;
    const w = startRequest(d.socket, `/v1/watch?names=app/prod/db/password,app/prod/api-key&since=${rev}&timeout=10s`, { timeoutMs: 15_000 });
    const pw2 = planted("ssm-db2");
    const at = Date.now();
    fa.putParam("/app/prod/db/password", pw2, "SecureString");
    const woke = await w.promise;
    assert.equal(woke.status, 200);
    assert.deepEqual(woke.json().changed, ["app/prod/db/password"]);
    assert.ok(Date.now() - at <= 1_200 + 1_000, `took ${Date.now() - at} ms with refresh 1s`);
    const db2 = await value(d, "app/prod/db/password");
    assert.deepEqual([db2.value, db2.version, db2.source_version], [pw2, 2, "2"]);

    // A parameter created in SSM is served at the next walk.
    const fresh = planted("ssm-new");
    fa.putParam("/app/prod/new-token", fresh, "SecureString");
    assert.equal(
      (await eventually(async () => (await d.get("/v1/secrets/app/prod/new-token")).status === 200 && value(d, "app/prod/new-token"), 4_000, "new parameter"))
        .value,
      fresh,
    );

    // A parameter deleted in SSM (which answered fine) stops being served, and a watch on it wakes.
    const rev2 = (await d.get("/v1/watch?names=app/prod/api-key")).json().revision as number;
    const w2 = startRequest(d.socket, `/v1/watch?names=app/prod/api-key&since=${rev2}&timeout=10s`, { timeoutMs: 15_000 });
    fa.deleteParam("/app/prod/api-key");
    const gone = await w2.promise;
    assert.equal(gone.status, 200);
    assert.deepEqual(gone.json().changed, ["app/prod/api-key"]);
    const after = await errorOf(d, "app/prod/api-key");
    assert.deepEqual([after.status, after.code], [404, "not_found"]);
    l = await listed(d);
    assert.ok(!l.has("app/prod/api-key"), "no longer listed");
    assert.equal(l.get("app/prod")!.members, 3, "db/password, new-token and region");
    await d.waitForLog(/"removed":\["app\/prod\/api-key"\].*no longer served/);
    // The other parameters are untouched.
    assert.equal((await value(d, "app/prod/db/password")).version, 2);
    // A refresh of any name under the hierarchy (it may have been created since) walks the hierarchy.
    const q = await d.get("/v1/refresh?name=app/prod/not-yet", { method: "POST" });
    assert.deepEqual([q.status, q.json().queued], [202, ["app/prod"]]);
    assert.equal((await d.get("/v1/refresh?name=app/elsewhere", { method: "POST" })).status, 404);
  });

  test("before the first walk names under the hierarchy are not_synced (503, Retry-After); parameters whose names cannot be served are skipped and reported; key on a hierarchy is refused", async (t) => {
    const fa = await fake(t);
    const pw = planted("ssm-pw");
    fa.putParam("/app/prod/db/password", pw, "SecureString");
    fa.putParam("/app/prod/" + "x".repeat(300), planted("long"));
    fa.putParam("/app/prod/Token", planted("t-upper"));
    fa.putParam("/app/prod/token", planted("t-lower"));
    fa.putParam("/app/prod/override", planted("shadowed"));
    fa.putParam("/app/single", "one");
    await fa.goAway();
    const dir = tmpDir(t);
    const d = await launch(
      t,
      dir,
      config(dir, fa, {
        "app/prod": { provider: "ssm", path: "/app/prod/**" },
        "app/prod/override": { provider: "ssm", path: "/app/single" },
        "app/keyed": { provider: "ssm", path: "/app/prod/*", key: "token" },
      }),
      { waitFor: "socket", env: fa.env() },
    );
    await eventually(async () => (await d.get("/v1/health")).json().providers[0].failures >= 1, 5_000, "ssm offline");
    const pending = await errorOf(d, "app/prod/db/password");
    assert.deepEqual([pending.status, pending.code], [503, "not_synced"]);
    // SSM is down: ask again at its next attempt (backoff_max 1s here), not after a fixed 5 s.
    assert.ok(["1", "2"].includes(String(pending.retryAfter)), `Retry-After ${pending.retryAfter}`);
    assert.match(pending.message, /under the hierarchy app\/prod, which has not been read yet; provider ssm is offline: no fetch has succeeded yet \(/);
    assert.equal((await errorOf(d, "app/prod/anything/at/all")).code, "not_synced", "any name under it: the walk will tell");
    assert.equal((await errorOf(d, "app/prod")).code, "not_found");
    assert.equal((await errorOf(d, "app/elsewhere")).code, "not_found");
    assert.equal((await d.get("/v1/watch?names=app/prod/db/password")).status, 200, "a name under an unwalked hierarchy can be watched");
    assert.equal((await d.get("/v1/watch?names=app/prod")).status, 404, "a hierarchy itself is not watched");
    let l = await listed(d);
    assert.deepEqual([l.get("app/prod")!.state, l.get("app/prod")!.members], ["not_synced", 0]);
    assert.ok((await d.get("/v1/health")).json().secrets.not_synced >= 2);

    await fa.comeBack();
    await d.get("/v1/refresh?name=app/prod/db/password", { method: "POST" });
    assert.equal(
      (await eventually(async () => (await d.get("/v1/secrets/app/prod/db/password")).status === 200 && value(d, "app/prod/db/password"), 5_000, "walked"))
        .value,
      pw,
    );
    l = await eventually(
      async () => {
        const m = await listed(d);
        return m.get("app/keyed")?.error ? m : undefined;
      },
      5_000,
      "all synced",
    );
    const h = l.get("app/prod")!;
    assert.equal(h.state, "ok");
    assert.equal(h.members, 1, "only db/password is served");
    assert.match(String(h.error), /^ssm \/app\/prod\/\*\*: 4 parameters not served: /);
    assert.match(String(h.error), /xxxx.* \(its name "app\/prod\/x+" is longer than 256 bytes\)/);
    assert.match(String(h.error), /Token \(its name app\/prod\/token is also the lower-cased name of token\)/);
    assert.match(String(h.error), /override \(its name app\/prod\/override is a configured secret, which wins\)/);
    assert.equal((await value(d, "app/prod/override")).value, "one", "the configured secret keeps its own value");
    assert.equal((await errorOf(d, "app/prod/token")).code, "not_found");
    assert.match(String(l.get("app/keyed")!.error), /key cannot be used with a hierarchy/);
    assert.equal(l.get("app/keyed")!.state, "not_synced");
    assert.match((await errorOf(d, "app/keyed/token")).message, /key cannot be used with a hierarchy/);
    const health = (await d.get("/v1/health")).json();
    assert.equal(health.secrets.errors, 2, "the hierarchy with skipped parameters and the keyed one");
    assert.equal(health.providers[0].online, true, "per-entry errors keep the provider online");
    const st = await cli(["status", "--config", d.configFile]);
    assert.match(st.stdout, /secrets: \d+ configured \(2 hierarchies and the parameters under them\), .* 2 with errors/);
  });

  test("after a restart with SSM down the cached parameters are served stale; a hierarchy that comes back empty keeps them and says so", async (t) => {
    const fa = await fake(t);
    const pw = planted("ssm-kept");
    fa.putParam("/app/prod/db/password", pw, "SecureString");
    fa.putParam("/app/prod/host", "db.internal");
    const dir = tmpDir(t);
    const cfg = config(dir, fa, { "app/prod": { provider: "ssm", path: "/app/prod/**", refresh: "1s" } });
    const d1 = await launch(t, dir, cfg, { waitFor: "synced", env: fa.env() });
    assert.equal((await value(d1, "app/prod/db/password")).value, pw);
    await d1.stop();

    await fa.goAway();
    const d2 = await launch(t, dir, cfg, { waitFor: "synced", env: fa.env() });
    await eventually(async () => (await d2.get("/v1/health")).json().providers[0].failures >= 1, 5_000, "ssm offline");
    const kept = await value(d2, "app/prod/db/password");
    assert.deepEqual([kept.value, kept.stale], [pw, true], "offline first: the parameters cached under the hierarchy are served");
    assert.equal((await errorOf(d2, "app/prod/other")).code, "not_synced", "not known until this process walks the hierarchy");
    assert.equal((await listed(d2)).get("app/prod")!.state, "stale");

    await fa.comeBack();
    fa.deleteParam("/app/prod/db/password");
    fa.deleteParam("/app/prod/host");
    const l = await eventually(
      async () => {
        const m = await listed(d2);
        return m.get("app/prod")?.error ? m : undefined;
      },
      5_000,
      "empty walk reported",
    );
    assert.match(String(l.get("app/prod")!.error), /holds no parameters now; the 2 cached are kept \(stale\)/);
    assert.equal(l.get("app/prod")!.members, 2);
    const still = await value(d2, "app/prod/db/password");
    assert.deepEqual([still.value, still.stale], [pw, true]);
    assert.match(String(l.get("app/prod/host")!.error), /holds no parameters now/, "each parameter shows why it is stale");
    assert.equal((await d2.get("/v1/health")).json().providers[0].online, true);
  });
});
