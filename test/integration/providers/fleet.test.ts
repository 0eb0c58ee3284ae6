import assert from "node:assert/strict";
import fs from "node:fs";
import path from "node:path";
import { describe, test, type TestContext } from "node:test";
import { bursts } from "../../support/bursts.js";
import { eventually, launch, sleep, type RunningDaemon } from "../../support/daemon.js";
import { FakeAws } from "../../support/fake-aws.js";
import { FakeVault } from "../../support/fake-vault.js";
import { startGcp } from "../../support/fake-gcp-auth.js";
import { tmpDir } from "../../support/tmp.js";

const N = 1_000;
const SYNC = { interval: "1h", backoff_min: "200ms", backoff_max: "1s", timeout: "5s", concurrency: 4 };
const name = (i: number) => `fleet/s${String(i).padStart(4, "0")}`;

interface ProviderH {
  name: string;
  online: boolean;
  failures: number;
}
const provider = async (d: RunningDaemon, n: string) => (await d.get("/v1/health")).json<{ providers: ProviderH[] }>().providers.find((p) => p.name === n)!;

async function daemon(t: TestContext, providers: Record<string, unknown>, secrets: Record<string, unknown>, env?: NodeJS.ProcessEnv) {
  const dir = tmpDir(t);
  const config = {
    data_dir: path.join(dir, "data"),
    socket: path.join(dir, "s.sock"),
    seal: { type: "host" },
    sync: SYNC,
    providers,
    secrets,
    log: { level: "info" },
  };
  return { dir, config, env, d: await launch(t, dir, config, { waitFor: "synced", env }) };
}

/**
 * The outage: every request answered 503 / refused for `ms`; the retries must come
 * in bursts spaced by the backoff (≥ backoff_min/2 with equal jitter, ≤ backoff_max
 * plus scheduling slack), never a tight loop.
 */
function checkBackoff(times: readonly number[], what: string): { rounds: number; requests: number } {
  const b = bursts(times);
  assert.ok(b.length >= 2, `${what}: retried at least twice (${b.length} bursts)`);
  for (let i = 1; i < b.length; i++) {
    const gap = b[i]!.at - b[i - 1]!.at;
    assert.ok(gap >= 100 - 5, `${what}: retry ${i} came ${gap} ms after the previous one (backoff_min 200ms, equal jitter: ≥ 100 ms)`);
    assert.ok(gap <= 1_000 + 400, `${what}: retry ${i} came ${gap} ms after the previous one (backoff_max 1s)`);
  }
  return { rounds: b.length, requests: times.length };
}

describe("fleet scale: 1,000 secrets, an outage and a reconnect (request counts from the fake servers)", () => {
  test("Vault KV v2: cold sync reads each secret once; the reconnect costs one metadata call per secret and no data read; retries back off", async (t) => {
    const fv = await new FakeVault().start();
    t.after(() => fv.stop());
    const secrets: Record<string, unknown> = {};
    for (let i = 0; i < N; i++) {
      fv.putKv2(`secret/data/fleet/s${i}`, { v: `value-${i}` });
      secrets[name(i)] = { provider: "vault", path: `secret/data/fleet/s${i}`, key: "v" };
    }
    const tokenFile = path.join(tmpDir(t), "token");
    fs.writeFileSync(tokenFile, fv.issueToken(), { mode: 0o600 });
    const started = Date.now();
    const { d, dir, config } = await daemon(t, { vault: { type: "vault", address: fv.url, auth: { method: "token", token_file: tokenFile } } }, secrets);
    const cold = {
      ms: Date.now() - started,
      data: fv.count("kv2-data"),
      metadata: fv.count("kv2-metadata"),
      auth: fv.count("lookup-self") + fv.count("login"),
    };
    assert.deepEqual([cold.data, cold.metadata, cold.auth], [N, 0, 1]);

    fv.resetCounts();
    fv.fail("sealed");
    await d.get("/v1/refresh", { method: "POST" });
    await sleep(3_000);
    const outage = checkBackoff(fv.times, "vault 503");
    fv.resetCounts();
    const healedAt = Date.now();
    fv.heal();
    await eventually(async () => (await provider(d, "vault")).online, 5_000, "vault back online");
    await eventually(async () => fv.count("kv2-metadata") >= N, 10_000, "every secret checked again");
    await sleep(300);
    const warm = {
      ms: Date.now() - healedAt,
      data: fv.count("kv2-data"),
      metadata: fv.count("kv2-metadata"),
      auth: fv.count("lookup-self") + fv.count("login") + fv.count("renew-self"),
    };
    assert.equal(warm.metadata, N, "one metadata check per secret");
    assert.equal(warm.data, 0, "no data read: nothing changed");
    assert.equal(warm.auth, 0, "the token survived the outage");
    const s = (await d.get(`/v1/secrets/${name(7)}`)).json();
    assert.equal(s.value, "value-7");
    assert.equal(s.stale, false);

    // A restart: the versions held are in the cache, so its first sync is the same metadata checks.
    await d.stop();
    fv.resetCounts();
    const d2 = await launch(t, dir, config, { waitFor: "synced" });
    const restartedAt = Date.now();
    await d2.get("/v1/refresh", { method: "POST" });
    await eventually(async () => fv.count("kv2-metadata") >= N, 10_000, "every secret checked after the restart");
    await sleep(300);
    const restart = {
      ms: Date.now() - restartedAt,
      data: fv.count("kv2-data"),
      metadata: fv.count("kv2-metadata"),
      auth: fv.count("lookup-self") + fv.count("login"),
    };
    assert.deepEqual([restart.metadata, restart.data, restart.auth], [N, 0, 1], "one metadata check per secret, no data read, one token lookup");
    t.diagnostic(
      `vault: cold ${JSON.stringify(cold)}, outage ${JSON.stringify(outage)}, reconnect ${JSON.stringify(warm)}, restart ${JSON.stringify(restart)}`,
    );
  });

  test("Secrets Manager: cold sync and reconnect are 50 BatchGetSecretValue calls each; retries back off", async (t) => {
    const fa = await new FakeAws().start();
    t.after(() => fa.stop());
    const secrets: Record<string, unknown> = {};
    for (let i = 0; i < N; i++) {
      fa.putSecret(`fleet/s${i}`, `value-${i}`);
      secrets[name(i)] = { provider: "sm", path: `fleet/s${i}` };
    }
    const { d } = await daemon(t, { sm: { type: "aws-secrets-manager", region: fa.region, endpoint: fa.url } }, secrets, fa.env());
    assert.equal(fa.count("secretsmanager.BatchGetSecretValue"), N / 20);
    assert.equal(fa.count("secretsmanager.GetSecretValue"), 0);

    fa.resetCounts();
    await fa.goAway();
    await d.get("/v1/refresh", { method: "POST" });
    await eventually(async () => (await provider(d, "sm")).failures >= 3, 5_000, "sm offline");
    await fa.comeBack();
    // While it is back, throttle: the fleet-wide reconnect storm is answered with ThrottlingException for a while.
    fa.fail("throttle");
    await sleep(2_500);
    const throttled = checkBackoff(fa.times, "sm throttled");
    fa.resetCounts();
    fa.heal();
    await eventually(async () => (await provider(d, "sm")).online, 5_000, "sm back online");
    await eventually(async () => fa.count("secretsmanager.BatchGetSecretValue") >= N / 20, 10_000, "all batches");
    await sleep(300);
    assert.equal(fa.count("secretsmanager.BatchGetSecretValue"), N / 20, "the reconnect refetches in batches of 20");
    assert.equal(fa.count("secretsmanager.GetSecretValue"), 0);
    assert.equal((await d.get(`/v1/secrets/${name(999)}`)).json().value, "value-999");
    t.diagnostic(`secretsmanager: cold 50 BatchGetSecretValue, throttled ${JSON.stringify(throttled)}, reconnect 50`);
  });

  test("GCP Secret Manager: one AccessSecretVersion per secret cold, on reconnect and after a restart, nothing rewritten; an outage costs one probe per batch of 100 and round; retries back off", async (t) => {
    const dir = tmpDir(t);
    const { gcp, certs } = await startGcp(t, dir);
    const secrets: Record<string, unknown> = {};
    for (let i = 0; i < N; i++) {
      gcp.addVersion(`s${i}`, `value-${i}`);
      secrets[name(i)] = { provider: "gcp", path: `projects/fleet/secrets/s${i}` };
    }
    const providers = {
      gcp: {
        type: "gcp-secret-manager",
        endpoint: gcp.endpoint,
        tls: { ca_file: certs.caFile, server_name: "localhost" },
        credentials_file: gcp.writeServiceAccount(dir),
      },
    };
    const { d, dir: ddir, config } = await daemon(t, providers, secrets);
    assert.equal(gcp.count(), N, "cold: one call per secret, no token request (a self-signed JWT)");

    gcp.resetCounts();
    await gcp.goAway();
    await d.get("/v1/refresh", { method: "POST" });
    await eventually(async () => (await provider(d, "gcp")).failures >= 2, 5_000, "gcp offline");
    await gcp.comeBack();
    gcp.fail("exhausted");
    await sleep(2_500);
    const throttled = checkBackoff(gcp.times, "gcp RESOURCE_EXHAUSTED");
    assert.ok(throttled.requests <= throttled.rounds * (N / 100), `at most one probe per batch of 100 per round: ${JSON.stringify(throttled)}`);
    gcp.resetCounts();
    gcp.heal();
    await eventually(async () => (await provider(d, "gcp")).online, 5_000, "gcp back online");
    await eventually(() => gcp.count() >= N, 10_000, "every secret read again");
    await sleep(300);
    assert.equal(gcp.count(), N, "the reconnect: one call per secret");
    const s = (await d.get(`/v1/secrets/${name(7)}`)).json();
    assert.deepEqual([s.value, s.stale, s.version], ["value-7", false, 1], "unchanged versions: the cached rows are kept");

    await d.stop();
    gcp.resetCounts();
    const d2 = await launch(t, ddir, config, { waitFor: "synced" });
    await d2.get("/v1/refresh", { method: "POST" });
    await eventually(() => gcp.count() >= N, 10_000, "every secret read after the restart");
    await sleep(300);
    assert.equal(gcp.count(), N, "the restart: one call per secret");
    assert.equal((await d2.get(`/v1/secrets/${name(999)}`)).json().version, 1);
    t.diagnostic(`gcp: cold ${N} AccessSecretVersion, throttled ${JSON.stringify(throttled)}, reconnect ${N}, restart ${N}`);
  });
});
