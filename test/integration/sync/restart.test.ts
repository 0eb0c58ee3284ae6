// The "version already held" survives a restart: the first sync after one costs
// the cheap checks (KV v2 metadata) and no call at all for pinned versions, as the
// sync before the restart did, counted by the fake servers. A config edit makes
// the entry it touches read in full again.
import assert from "node:assert/strict";
import fs from "node:fs";
import path from "node:path";
import { test } from "node:test";
import { eventually, launch, type RunningDaemon } from "../../support/daemon.js";
import { FakeAws } from "../../support/fake-aws.js";
import { FakeVault } from "../../support/fake-vault.js";
import { planted } from "../../support/planted.js";
import { tmpDir } from "../../support/tmp.js";

/** Asks for a sync of everything and waits until every provider has answered since. */
async function syncAll(d: RunningDaemon): Promise<void> {
  const since = Date.now();
  assert.equal((await d.get("/v1/refresh", { method: "POST" })).status, 202);
  await eventually(
    async () => {
      const h = (await d.get("/v1/health")).json<{ providers: { last_success: string | null; failures: number }[] }>();
      return h.providers.every((p) => p.failures === 0 && p.last_success !== null && Date.parse(p.last_success) >= since);
    },
    8_000,
    "every provider synced",
  );
}

test("after a restart, unchanged secrets cost a KV v2 metadata check and pinned versions no call; a changed one is read; an edited entry is read in full", async (t) => {
  const fv = await new FakeVault().start();
  t.after(() => fv.stop());
  const fa = await new FakeAws().start();
  t.after(() => fa.stop());
  fv.putKv2("secret/data/a", { password: planted("kv-a"), user: "edge" });
  fv.putKv2("secret/data/b", { password: planted("kv-b1") });
  const pinnedId = fa.putSecret("app/db", planted("sm-v1"));
  fa.putSecret("app/db", planted("sm-v2"));
  fa.putParam("/app/flag", planted("ssm-v1"));
  fa.putParam("/app/flag", planted("ssm-v2"));

  const dir = tmpDir(t);
  fs.writeFileSync(path.join(dir, "token"), fv.issueToken(24 * 3600), { mode: 0o600 });
  const config = (secrets: Record<string, unknown>) => ({
    data_dir: path.join(dir, "data"),
    socket: path.join(dir, "s.sock"),
    seal: { type: "host" },
    // Nothing is due again within the test: only /v1/refresh syncs.
    sync: { interval: "1h", backoff_min: "200ms", backoff_max: "1s", timeout: "2s" },
    providers: {
      vault: { type: "vault", address: fv.url, auth: { method: "token", token_file: path.join(dir, "token") } },
      sm: { type: "aws-secrets-manager", region: fa.region, endpoint: fa.url },
      ssm: { type: "aws-ssm", region: fa.region, endpoint: fa.url },
    },
    secrets,
    log: { level: "debug" },
  });
  const secrets = {
    "kv/a": { provider: "vault", path: "secret/data/a", key: "password" },
    "kv/b": { provider: "vault", path: "secret/data/b", key: "password" },
    "sm/pinned": { provider: "sm", path: "app/db", version: pinnedId },
    "ssm/pinned": { provider: "ssm", path: "/app/flag", version: "1" },
  };
  const env = fa.env();

  const d1 = await launch(t, dir, config(secrets), { waitFor: "synced", env });
  // The same daemon, second sync: the baseline a restart should match.
  fv.resetCounts();
  fa.resetCounts();
  await syncAll(d1);
  const steady = { meta: fv.count("kv2-metadata"), data: fv.count("kv2-data"), sm: fa.total("secretsmanager."), ssm: fa.total("ssm.") };
  assert.deepEqual(steady, { meta: 2, data: 0, sm: 0, ssm: 0 });
  await d1.stop();

  const b2 = planted("kv-b2");
  fv.putKv2("secret/data/b", { password: b2 });
  fv.resetCounts();
  fa.resetCounts();
  const d2 = await launch(t, dir, config(secrets), { waitFor: "synced", env });
  await syncAll(d2);
  assert.equal(fv.count("kv2-metadata"), 2, "one version check per KV v2 secret");
  assert.equal(fv.count("kv2-data"), 1, "only the secret rotated while the daemon was down is read");
  assert.equal(fa.total("secretsmanager."), 0, "a pinned VersionId held before the restart costs no call");
  assert.equal(fa.total("ssm."), 0, "a pinned parameter version held before the restart costs no call");
  const b = (await d2.get("/v1/secrets/kv/b")).json();
  assert.deepEqual([b.value, b.source_version, b.version], [b2, "2", 2]);
  await d2.stop();

  // An edited entry (another key of the same KV v2 secret) is read in full, once.
  fv.resetCounts();
  const d3 = await launch(t, dir, config({ ...secrets, "kv/a": { provider: "vault", path: "secret/data/a", key: "user" } }), { waitFor: "synced", env });
  await syncAll(d3);
  assert.equal(fv.count("kv2-data"), 1, "the version recorded under the old key says nothing about the new one");
  assert.equal((await d3.get("/v1/secrets/kv/a")).json().value, "edge");
  fv.resetCounts();
  await syncAll(d3);
  assert.equal(fv.count("kv2-data"), 0);
});
