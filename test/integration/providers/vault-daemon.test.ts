import assert from "node:assert/strict";
import { describe, test, type TestContext } from "node:test";
import { cli, eventually, launch, served, servedAtVersion, sleep, type RunningDaemon } from "../../support/daemon.js";
import { approleDaemonConfig, FakeVault, type VaultFault } from "../../support/fake-vault.js";
import { planted } from "../../support/planted.js";
import { tmpDir } from "../../support/tmp.js";

interface ProviderH {
  name: string;
  online: boolean;
  last_error: string | null;
  last_error_kind: string | null;
  failures: number;
  last_success: string | null;
}
interface Health {
  status: string;
  online: boolean;
  secrets: { total: number; ok: number; stale: number; errors: number; not_synced: number };
  providers: ProviderH[];
}
interface Listed {
  name: string;
  state: string;
  version: number | null;
  source_version: string | null;
  stale: boolean;
  error: string | null;
}

const health = async (d: RunningDaemon) => (await d.get("/v1/health")).json<Health>();
const vaultH = async (d: RunningDaemon) => (await health(d)).providers.find((p) => p.name === "vault")!;
const listed = async (d: RunningDaemon) => new Map((await d.get("/v1/secrets")).json<{ secrets: Listed[] }>().secrets.map((s) => [s.name, s]));
const refresh = async (d: RunningDaemon) => assert.equal((await d.get("/v1/refresh", { method: "POST" })).status, 202);

/** A daemon on an AppRole-authenticated fake Vault. */
async function start(t: TestContext, fv: FakeVault, secrets: Record<string, unknown>, sync: Record<string, unknown> = {}) {
  const dir = tmpDir(t);
  return launch(t, dir, approleDaemonConfig(dir, fv, secrets, sync), { waitFor: "synced" });
}

describe("vault through the daemon", () => {
  test("rotation in Vault reaches the cache within one refresh interval and wakes /v1/watch; unchanged secrets cost a metadata call, not a data read", async (t) => {
    const fv = await new FakeVault({ namespace: "edge" }).start();
    t.after(() => fv.stop());
    const pw1 = planted("kafka1");
    fv.putKv2("secret/data/expanso/pipeline", { kafka_password: pw1 });
    fv.putKv2("secret/data/other", { v: planted("other") });
    const d = await start(t, fv, {
      "kafka/password": { provider: "vault", path: "secret/data/expanso/pipeline", key: "kafka_password", refresh: "1s" },
      other: { provider: "vault", path: "secret/data/other", key: "v", refresh: "1s" },
    });
    const v1 = await served(d, "kafka/password");
    assert.equal(v1.value, pw1);
    assert.equal(v1.source_version, "1");
    assert.equal(fv.count("login"), 1);

    // Steady state: every refresh is one metadata call per secret.
    fv.resetCounts();
    await sleep(2_600);
    assert.ok(fv.count("kv2-metadata") >= 4, `metadata checks: ${fv.count("kv2-metadata")}`);
    assert.equal(fv.count("kv2-data"), 0, "no data read while the version is unchanged");
    assert.equal(fv.count("login"), 0);

    const rev = (await d.get("/v1/watch?names=kafka/password")).json<{ revision: number }>().revision;
    const watch = d.get(`/v1/watch?names=kafka/password&since=${rev}&timeout=10s`, { timeoutMs: 12_000 });
    const pw2 = planted("kafka2");
    const changedAt = Date.now();
    fv.putKv2("secret/data/expanso/pipeline", { kafka_password: pw2 });
    const w = await watch;
    assert.equal(w.status, 200);
    assert.deepEqual(w.json().changed, ["kafka/password"]);
    assert.ok(Date.now() - changedAt <= 1_200 + 1_000, `took ${Date.now() - changedAt} ms with refresh 1s`);
    const v2 = await served(d, "kafka/password");
    assert.equal(v2.value, pw2);
    assert.equal(v2.version, 2);
    assert.equal(v2.source_version, "2");
    assert.equal((await served(d, "other")).version, 1);
  });

  test("a refresh asked for while that secret's fetch is in flight is not lost: it fetches again once the first fetch lands", async (t) => {
    const fv = await new FakeVault({ namespace: "edge" }).start();
    t.after(() => fv.stop());
    fv.putKv2("secret/data/app", { v: planted("v1") });
    const d = await start(t, fv, { app: { provider: "vault", path: "secret/data/app", key: "v", refresh: "1h" } });
    const v2 = planted("v2");
    fv.fail("slow", { match: /metadata\/app$/, times: 1 });
    await refresh(d); // in flight for a second, answering version 1
    await sleep(300);
    fv.putKv2("secret/data/app", { v: v2 });
    await refresh(d); // asked after the rotation: must see version 2
    await eventually(async () => (await served(d, "app")).value === v2, 5_000, "the second refresh's value");
  });

  test("a dynamic secret's lease is renewed before it expires and replaced when renewal is refused", async (t) => {
    const fv = await new FakeVault({ namespace: "edge" }).start();
    t.after(() => fv.stop());
    let n = 0;
    fv.dynamic.set("database/creds/edge", { ttl: 3, maxTtl: 3600, renewable: true, make: () => ({ username: `v-edge-${++n}`, password: planted(`dyn${n}`) }) });
    // refresh is 1 h: only the lease makes the engine come back.
    const d = await start(t, fv, { "db/creds": { provider: "vault", path: "database/creds/edge", refresh: "1h" } });
    const first = await served(d, "db/creds");
    assert.equal(JSON.parse(first.value).username, "v-edge-1");
    await eventually(() => fv.count("lease-renew") >= 2, 6_000, "two lease renewals");
    const same = await served(d, "db/creds");
    assert.equal(same.version, 1, "renewed: the same credentials");
    assert.equal(same.stale, false);
    assert.equal(fv.count("read"), 1);

    fv.refuseLeaseRenewal = true;
    const replaced = await servedAtVersion(d, "db/creds", 2, 5_000, "new credentials");
    assert.equal(JSON.parse(replaced.value).username, "v-edge-2");
    fv.refuseLeaseRenewal = false;
    // The replaced lease is revoked once the new credentials are in the cache; the held one is not.
    await eventually(() => fv.revoked.length === 1, 3_000, "old lease revoked");
    assert.match(fv.revoked[0]!, /^database\/creds\/edge\//);
    assert.equal(fv.leases.size, 1, "only the lease of the credentials served is left");
    assert.ok(!fv.revoked.includes([...fv.leases.keys()][0]!));
    await d.waitForLog(/"secret":"db\/creds","lease":"database\/creds\/edge\/…".*replaced lease revoked/);
  });

  test("every error class keeps the cached value and shows the right state in /v1/health, the list and `status`", async (t) => {
    const fv = await new FakeVault({ namespace: "edge" }).start();
    t.after(() => fv.stop());
    const pw = planted("kept");
    fv.putKv2("secret/data/app", { password: pw });
    fv.putKv2("secret/data/doomed", { v: planted("doomed") });
    const d = await start(
      t,
      fv,
      {
        "app/password": { provider: "vault", path: "secret/data/app", key: "password" },
        doomed: { provider: "vault", path: "secret/data/doomed", key: "v" },
      },
      { timeout: "1s" },
    );
    const kept = async () => {
      const r = await d.get("/v1/secrets/app/password");
      assert.equal(r.status, 200);
      assert.equal(r.json().value, pw, "the cached value is kept");
      assert.equal(r.json().version, 1);
      return r.json();
    };

    // Provider-wide outages: offline, transient, values stale, retried with backoff until healed.
    const outages: [VaultFault | "down", RegExp][] = [
      ["throttle", /throttled \(HTTP 429/],
      ["error", /answered HTTP 500/],
      ["sealed", /HTTP 503 \(Vault sealed/],
      ["hang", /sync\.timeout/],
      ["down", /unreachable/],
    ];
    for (const [fault, message] of outages) {
      if (fault === "down") await fv.goAway();
      else fv.fail(fault);
      await refresh(d);
      const p = await eventually(
        async () => {
          const v = await vaultH(d);
          return v.failures >= 2 && v;
        },
        8_000,
        `vault offline (${fault})`,
      );
      assert.equal(p.online, false, fault);
      assert.equal(p.last_error_kind, "transient", fault);
      assert.match(String(p.last_error), message, fault);
      assert.equal((await kept()).stale, true, fault);
      const h = await health(d);
      assert.equal(h.status, "degraded");
      assert.equal(h.online, false);
      assert.equal(h.secrets.stale, 2);
      if (fault === "sealed") {
        const st = await cli(["status", "--config", d.configFile]);
        assert.match(st.stdout, /^vault\s+vault\s+offline\s+\S+\s+vault 127\.0\.0\.1:\d+: .*HTTP 503/m, st.stdout);
      }
      if (fault === "down") await fv.comeBack();
      else fv.heal();
      await eventually(async () => (await vaultH(d)).online, 4_000, `back online after ${fault}`);
      assert.equal((await kept()).stale, false);
    }

    // Garbage and truncated answers: rejected per secret (never stored), the value kept.
    for (const fault of ["garbage", "truncated"] as const) {
      fv.fail(fault, { match: /^secret\/(data|metadata)\/app$/ });
      await refresh(d);
      const s = await eventually(
        async () => {
          const x = (await listed(d)).get("app/password")!;
          return x.error !== null && x;
        },
        4_000,
        `${fault} rejected`,
      );
      assert.match(String(s.error), /rejected/);
      assert.equal(s.version, 1);
      assert.equal((await kept()).stale, true);
      fv.heal();
      await refresh(d);
      await eventually(async () => (await listed(d)).get("app/password")!.error === null, 4_000, "error cleared");
    }

    // Per-secret: permission denied and not found. The provider stays online; the other secret is fine.
    fv.denied.add("secret/metadata/app");
    fv.denied.add("secret/data/app");
    fv.kv2.delete("secret/data/doomed");
    await refresh(d);
    const l = await eventually(
      async () => {
        const m = await listed(d);
        return m.get("app/password")!.error !== null && m.get("doomed")!.error !== null ? m : undefined;
      },
      4_000,
      "per-secret errors",
    );
    assert.match(String(l.get("app/password")!.error), /permission denied \(HTTP 403\)/);
    assert.equal(l.get("doomed")!.error, "vault secret/data/doomed: not found (HTTP 404)");
    const h = await health(d);
    assert.equal(h.secrets.errors, 2);
    assert.equal((await vaultH(d)).online, true, "per-secret errors do not take the provider offline");
    assert.equal((await kept()).stale, true);
    assert.equal(fv.count("login"), 1, "one login through all of it");
  });
});
