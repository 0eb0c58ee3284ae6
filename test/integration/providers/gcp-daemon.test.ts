import assert from "node:assert/strict";
import path from "node:path";
import { describe, test, type TestContext } from "node:test";
import { cli, eventually, launch, served, servedAtVersion, sleep, type RunningDaemon } from "../../support/daemon.js";
import { startGcp } from "../../support/fake-gcp-auth.js";
import { assertNoLeaks, databaseBytes, planted } from "../../support/planted.js";
import { tmpDir } from "../../support/tmp.js";

interface ProviderH {
  name: string;
  online: boolean;
  last_error: string | null;
  last_error_kind: string | null;
  failures: number;
}
interface Listed {
  name: string;
  state: string;
  error: string | null;
  source_version: string | null;
  version: number | null;
}
const gcpH = async (d: RunningDaemon, name = "gcp") => (await d.get("/v1/health")).json<{ providers: ProviderH[] }>().providers.find((p) => p.name === name)!;
const listed = async (d: RunningDaemon) => new Map((await d.get("/v1/secrets")).json<{ secrets: Listed[] }>().secrets.map((s) => [s.name, s]));
const SYNC = { interval: "30s", backoff_min: "400ms", backoff_max: "3200ms", timeout: "2s" };

/** A daemon reading the fake through a service-account key, the endpoint given by IP (no tls.server_name). */
async function world(t: TestContext) {
  const dir = tmpDir(t);
  const fakes = await startGcp(t, dir);
  const { gcp, certs } = fakes;
  const config = (secrets: Record<string, unknown>) => ({
    data_dir: path.join(dir, "data"),
    socket: path.join(dir, "s.sock"),
    seal: { type: "host" },
    sync: SYNC,
    providers: {
      gcp: {
        type: "gcp-secret-manager",
        endpoint: gcp.endpoint,
        project: gcp.project,
        tls: { ca_file: certs.caFile },
        credentials_file: gcp.writeServiceAccount(dir),
      },
    },
    secrets,
    log: { level: "debug" },
  });
  const extraSecrets = [...gcp.keyLines(), fakes.sts.subjectToken];
  return { ...fakes, dir, config, extraSecrets };
}

/** The daemon's own output is JSON lines only: nothing from the SDK, grpc-js or Node's warnings. */
function assertJsonLines(d: RunningDaemon): void {
  for (const line of d
    .output()
    .split("\n")
    .filter((l) => l !== "")) {
    assert.doesNotThrow(() => JSON.parse(line), `not a JSON log line: ${line.slice(0, 200)}`);
  }
}

describe("gcp-secret-manager through the daemon", () => {
  test("values, a pin and an alias; unchanged refreshes keep the cached row; rotation; a disabled version; throttling backs off; output stays JSON", async (t) => {
    const { gcp, dir, config, extraSecrets } = await world(t);
    const db1 = planted("gcp-db1");
    gcp.addVersion("db", JSON.stringify({ password: db1 }));
    const tok = planted("gcp-token");
    gcp.addVersion("token", tok);
    gcp.addVersion("token", planted("gcp-token-2"));
    gcp.setAlias("token", "blue", 2);
    const d = await launch(
      t,
      dir,
      config({
        "db/password": { provider: "gcp", path: "projects/fleet/secrets/db", key: "password", refresh: "1s" },
        "api/token": { provider: "gcp", path: "token", version: "1", refresh: "1s" },
        "api/blue": { provider: "gcp", path: "token", version: "blue" },
      }),
      { waitFor: "synced", extraSecrets },
    );
    const first = await served(d, "db/password");
    assert.equal(first.value, db1);
    assert.equal(first.source_version, gcp.versionName("db", 1));
    assert.equal((await served(d, "api/token")).value, tok);
    assert.equal((await served(d, "api/blue")).source_version, gcp.versionName("token", 2));

    // Refreshes every second: each one AccessSecretVersion for the latest version, none for the pinned one; the row is not rewritten.
    gcp.resetCounts();
    await eventually(() => (gcp.byName.get("projects/fleet/secrets/db/versions/latest") ?? 0) >= 3, 6_000, "three refreshes of db");
    assert.equal(gcp.byName.get("projects/fleet/secrets/token/versions/1"), undefined, "a pinned version number already held is not asked for");
    const again = await served(d, "db/password");
    assert.equal(again.version, 1, "unchanged: the same cached row");
    assert.ok(Date.parse(again.fetched_at) > Date.parse(first.fetched_at), "confirmed by the backend");

    const db2 = planted("gcp-db2");
    gcp.addVersion("db", JSON.stringify({ password: db2 }));
    const rotated = await servedAtVersion(d, "db/password", 2, 4_000);
    assert.equal(rotated.value, db2);
    assert.equal(rotated.source_version, gcp.versionName("db", 2));

    gcp.setState("db", 2, "DISABLED");
    const disabled = await eventually(
      async () => {
        const l = (await listed(d)).get("db/password")!;
        return l.error !== null && l;
      },
      4_000,
      "disabled version reported",
    );
    assert.match(String(disabled.error), /the version is disabled \(FAILED_PRECONDITION\)/);
    assert.equal((await served(d, "db/password")).value, db2, "the cached value is kept");
    assert.equal((await gcpH(d)).online, true, "a per-secret error does not take the provider offline");
    gcp.setState("db", 2, "ENABLED");

    // Throttling: the provider is offline, every value stale, and the retries back off (one request per round).
    gcp.resetCounts();
    gcp.fail("exhausted");
    const throttled = await eventually(
      async () => {
        const p = await gcpH(d);
        return p.failures >= 4 && p;
      },
      15_000,
      "four throttled rounds",
    );
    assert.equal(throttled.last_error_kind, "transient");
    assert.match(String(throttled.last_error), /throttled: quota exceeded \(RESOURCE_EXHAUSTED\); backing off/);
    assert.equal((await served(d, "api/token")).stale, true);
    const st = await cli(["status", "--config", d.configFile]);
    assert.match(st.stdout, /^gcp\s+gcp-secret-manager\s+offline\s.*RESOURCE_EXHAUSTED/m, st.stdout);
    const times = [...gcp.times];
    const gaps = times.slice(1).map((x, i) => x - times[i]!);
    // Round k waits at least half of min(backoff_max, backoff_min·2^(k-1)) (equal jitter): 200, 400, 800 ms...
    for (const [i, g] of gaps.entries()) assert.ok(g >= Math.min(3200, 400 * 2 ** i) / 2 - 50, `gap ${i + 1} is ${g} ms: ${JSON.stringify(gaps)}`);
    assert.ok(times.length <= throttled.failures + 1, `one request per round: ${times.length} requests in ${throttled.failures} rounds`);
    gcp.heal();
    await eventually(async () => (await gcpH(d)).online, 6_000, "back online");
    assert.equal((await served(d, "db/password")).stale, false);

    assertJsonLines(d);
    await d.stop();
    assertNoLeaks(databaseBytes(path.join(dir, "data", "cache.db")), "cache.db", extraSecrets);
  });

  test("an outage, then a restart with the backend gone: every cached value is served, stale; a restart with it back costs one call per secret and rewrites nothing", async (t) => {
    const { gcp, dir, config, extraSecrets } = await world(t);
    const names = ["a", "b", "c"];
    const vals = new Map(names.map((n) => [n, planted(`gcp-${n}`)]));
    for (const n of names) gcp.addVersion(n, vals.get(n)!);
    const cfg = config(Object.fromEntries(names.map((n) => [`app/${n}`, { provider: "gcp", path: `projects/fleet/secrets/${n}` }])));
    const d1 = await launch(t, dir, cfg, { waitFor: "synced", extraSecrets });
    await gcp.goAway();
    await d1.get("/v1/refresh", { method: "POST" });
    await eventually(async () => (await gcpH(d1)).failures >= 1, 5_000, "outage noticed");
    for (const n of names) {
      const v = await served(d1, `app/${n}`);
      assert.deepEqual([v.value, v.stale], [vals.get(n), true]);
    }
    await d1.stop();

    const d2 = await launch(t, dir, cfg, { waitFor: "socket", extraSecrets });
    for (const n of names) {
      const r = await d2.get(`/v1/secrets/app/${n}`);
      assert.equal(r.status, 200, "served from the cache at once");
      assert.deepEqual(
        [r.json().value, r.json().stale],
        [vals.get(n), true],
        "stale: the last attempt failed (the provider's state is kept across the restart)",
      );
    }
    const before = (await gcpH(d2)).failures;
    await d2.get("/v1/refresh", { method: "POST" });
    const p = await eventually(
      async () => {
        const h = await gcpH(d2);
        return h.failures > before && h;
      },
      5_000,
      "the backend is still gone",
    );
    assert.equal(p.online, false);
    assert.match(String(p.last_error), /UNAVAILABLE/);
    for (const n of names) assert.equal((await served(d2, `app/${n}`)).stale, true);
    await gcp.comeBack();
    await eventually(
      async () => {
        await d2.get("/v1/refresh", { method: "POST" });
        return !(await served(d2, "app/a")).stale;
      },
      8_000,
      "fresh again",
    );
    for (const n of names) assert.equal((await served(d2, `app/${n}`)).version, 1, "nothing changed: the rows are kept");
    assertJsonLines(d2);
    await d2.stop();

    // A restart with the backend up: the first sync costs one call per secret (here forced: within the refresh interval a restart costs none).
    gcp.resetCounts();
    const d3 = await launch(t, dir, cfg, { waitFor: "socket", extraSecrets });
    await d3.get("/v1/refresh", { method: "POST" });
    await eventually(() => gcp.count() >= names.length, 5_000, "the first sync after the restart");
    await sleep(300);
    assert.equal(gcp.count(), names.length, "one AccessSecretVersion per secret");
    for (const n of names) assert.deepEqual([(await served(d3, `app/${n}`)).version, (await served(d3, `app/${n}`)).stale], [1, false]);
  });

  test("metadata-server and external_account credentials: one token each for many refreshes; the SDKs' debug logging switched on by the environment stays out of the output", async (t) => {
    const { gcp, metadata, sts, dir, config, certs, extraSecrets } = await world(t);
    const v = planted("gcp-shared");
    gcp.addVersion("shared", v);
    const base = config({});
    const wif = sts.writeExternalAccount(dir, { impersonate: true });
    const common = { type: "gcp-secret-manager", endpoint: gcp.endpoint, tls: { ca_file: certs.caFile, server_name: "localhost" } };
    const cfg = {
      ...base,
      providers: { md: { ...common }, wif: { ...common, credentials_file: wif.file } },
      secrets: {
        "md/shared": { provider: "md", path: "projects/fleet/secrets/shared", refresh: "1s" },
        "wif/shared": { provider: "wif", path: "projects/fleet/secrets/shared", refresh: "1s" },
      },
    };
    const d = await launch(t, dir, cfg, {
      waitFor: "synced",
      extraSecrets,
      // What an operator chasing a problem might set: Google's libraries would print requests and answers (values, tokens) to stderr.
      env: { GCE_METADATA_HOST: metadata.host, GOOGLE_SDK_NODE_LOGGING: "*", GRPC_VERBOSITY: "DEBUG", GRPC_TRACE: "all" },
    });
    assert.equal((await served(d, "md/shared")).value, v);
    assert.equal((await served(d, "wif/shared")).value, v);
    await eventually(() => gcp.count() >= 8, 8_000, "several refreshes");
    assert.equal(metadata.count("token"), 1);
    assert.equal(sts.count("sts.token"), 1);
    assert.equal(sts.count("iam.generateAccessToken"), 1);
    const principals = new Set(gcp.seen.map((s) => gcp.accessTokens.get(s.token!)));
    assert.deepEqual([...principals].sort(), [metadata.serviceAccount, sts.impersonated].sort());
    assertJsonLines(d);
    assert.match(d.output(), /"grpc":"[^"]*subchannel/, "grpc-js trace lines come through our logger");
    await d.stop(); // asserts no planted value (values, tokens, the subject token) was printed
  });
});
