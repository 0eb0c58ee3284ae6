// Vault dynamic secrets across a daemon restart: the lease recorded (sealed) with the
// cached credentials is renewed, not replaced by a new read; replaced and revoked when
// Vault refuses the renewal; replaced without a revoke when it ran out while the daemon
// was down; quarantined with the rest of the cache when its field is edited on disk.
import assert from "node:assert/strict";
import fs from "node:fs";
import path from "node:path";
import { describe, test, type TestContext } from "node:test";
import Database from "better-sqlite3";
import { eventually, launch, sleep, type RunningDaemon } from "../../support/daemon.js";
import { approleDaemonConfig, FakeVault } from "../../support/fake-vault.js";
import { assertNoLeaks, databaseBytes, planted } from "../../support/planted.js";
import { tmpDir } from "../../support/tmp.js";

interface Served {
  value: string;
  version: number;
  stale: boolean;
  source_version: string;
}
const NAME = "db/creds";
const served = async (d: RunningDaemon) => {
  const r = await d.get(`/v1/secrets/${NAME}`);
  assert.equal(r.status, 200, `GET ${NAME}: ${r.status}`);
  return r.json<Served>();
};
const username = (s: Served) => (JSON.parse(s.value) as { username: string }).username;

/** A fake Vault with one dynamic secret engine (`database/creds/edge`) whose leases last `ttl` seconds. */
async function vaultWithDynamic(t: TestContext, ttl: number): Promise<FakeVault> {
  const fv = await new FakeVault({ namespace: "edge" }).start();
  t.after(() => fv.stop());
  let n = 0;
  fv.dynamic.set("database/creds/edge", { ttl, maxTtl: 3600, renewable: true, make: () => ({ username: `v-edge-${++n}`, password: planted(`dyn${n}`) }) });
  return fv;
}

/** The daemon's config in a temp dir: one dynamic secret, refreshed hourly, so only its lease brings the engine back. */
function setup(t: TestContext, fv: FakeVault): { dir: string; config: Record<string, unknown>; dbFile: string } {
  const dir = tmpDir(t);
  const config = approleDaemonConfig(dir, fv, { [NAME]: { provider: "vault", path: "database/creds/edge", refresh: "1h" } });
  return { dir, config, dbFile: path.join(dir, "data", "cache.db") };
}

/** First run: the credentials are read once, then the daemon is stopped; returns the lease they were issued under. */
async function firstRun(t: TestContext, fv: FakeVault, env: ReturnType<typeof setup>): Promise<{ lease: string; daemon: RunningDaemon }> {
  const d = await launch(t, env.dir, env.config, { waitFor: "synced" });
  const s = await served(d);
  assert.equal(username(s), "v-edge-1");
  assert.equal(fv.issued.length, 1);
  assert.equal(await d.stop(), 0);
  return { lease: fv.issued[0]!, daemon: d };
}

/** Neither the daemons' output nor cache.db holds a full lease id or a planted value. */
function assertLeaseIdsKept(fv: FakeVault, dbFile: string, daemons: RunningDaemon[]): void {
  assert.ok(fv.issued.length > 0);
  for (const [i, d] of daemons.entries()) assertNoLeaks(d.output(), `daemon ${i + 1} output`, fv.issued);
  assertNoLeaks(databaseBytes(dbFile), "cache.db", fv.issued);
}

describe("vault leases across a daemon restart", () => {
  test("a lease still valid is renewed after the restart: the same credentials, no new read, no revoke", async (t) => {
    const fv = await vaultWithDynamic(t, 6);
    const env = setup(t, fv);
    const { lease, daemon: d1 } = await firstRun(t, fv, env);
    fv.resetCounts();
    fv.renewed.length = 0;

    const d2 = await launch(t, env.dir, env.config, { waitFor: "synced" });
    // Served from the cache at once, not stale: the lease recorded with it is still running.
    const cached = await served(d2);
    assert.equal(username(cached), "v-edge-1");
    assert.equal(cached.version, 1);
    assert.equal(cached.stale, false);
    // Renewed at 2/3 of what was left of the lease, then again on its own schedule.
    await eventually(() => fv.renewed.length >= 2, 10_000, "two renewals after the restart");
    assert.deepEqual([...new Set(fv.renewed)], [lease], "the lease renewed is the one the cached credentials were issued under");
    assert.equal(fv.count("read"), 0, "no new database/creds read");
    assert.equal(fv.count("lease-revoke"), 0, "nothing revoked");
    assert.equal(fv.issued.length, 1, "no new credentials minted");
    const after = await served(d2);
    assert.deepEqual([username(after), after.version, after.stale], ["v-edge-1", 1, false]);
    assert.equal(await d2.stop(), 0);
    assertLeaseIdsKept(fv, env.dbFile, [d1, d2]);
  });

  test("renewal refused after the restart: the credentials are replaced, then the old lease is revoked", async (t) => {
    const fv = await vaultWithDynamic(t, 6);
    const env = setup(t, fv);
    const { lease, daemon: d1 } = await firstRun(t, fv, env);
    fv.resetCounts();
    fv.refuseLeaseRenewal = true;

    const d2 = await launch(t, env.dir, env.config, { waitFor: "synced" });
    assert.equal(username(await served(d2)), "v-edge-1", "the cached credentials are served meanwhile");
    const replaced = await eventually(
      async () => {
        const s = await served(d2);
        return s.version === 2 && s;
      },
      8_000,
      "new credentials",
    );
    assert.equal(username(replaced), "v-edge-2");
    assert.equal(replaced.stale, false);
    assert.ok(fv.renewed.includes(lease), "the recorded lease was offered for renewal first");
    assert.equal(fv.count("read"), 1, "one new read");
    await eventually(() => fv.revoked.length === 1, 3_000, "old lease revoked");
    assert.deepEqual(fv.revoked, [lease], "the lease revoked is the replaced one, not the new one");
    assert.ok(fv.leases.has(fv.issued[1]!), "the lease of the credentials served is left alone");
    await d2.waitForLog(/"secret":"db\/creds","lease":"database\/creds\/edge\/…".*replaced lease revoked/);
    fv.refuseLeaseRenewal = false;
    assert.equal(await d2.stop(), 0);
    assertLeaseIdsKept(fv, env.dbFile, [d1, d2]);
  });

  test("a lease that ran out while the daemon was down: replaced by one new read at start, and not revoked", async (t) => {
    const fv = await vaultWithDynamic(t, 2);
    const env = setup(t, fv);
    const { lease, daemon: d1 } = await firstRun(t, fv, env);
    const expiresAt = fv.leases.get(lease)!.expiresAt;
    await sleep(Math.max(0, expiresAt - Date.now()) + 300);
    fv.resetCounts();
    fv.renewed.length = 0;

    const d2 = await launch(t, env.dir, env.config, { waitFor: "synced" });
    const first = await served(d2);
    assert.ok(first.version === 2 || (first.version === 1 && first.stale), "until replaced, the expired credentials are served, marked stale");
    const replaced = await eventually(
      async () => {
        const s = await served(d2);
        return s.version === 2 && s;
      },
      5_000,
      "new credentials",
    );
    assert.equal(username(replaced), "v-edge-2");
    assert.equal(replaced.stale, false);
    assert.equal(fv.count("read"), 1, "one new read");
    assert.deepEqual(fv.renewed, [], "an expired lease is not offered for renewal");
    await sleep(500);
    assert.equal(fv.count("lease-revoke"), 0, "an expired lease is not revoked: it is gone");
    assert.equal(await d2.stop(), 0);
    assertLeaseIdsKept(fv, env.dbFile, [d1, d2]);
  });

  test("a lease field edited in cache.db while stopped: the cache is quarantined and the secret read again", async (t) => {
    const fv = await vaultWithDynamic(t, 30);
    const env = setup(t, fv);
    const { daemon: d1 } = await firstRun(t, fv, env);
    const db = new Database(env.dbFile);
    try {
      const row = db.prepare("SELECT lease FROM secrets WHERE name = ?").get(NAME) as { lease: Buffer | null } | undefined;
      assert.ok(row?.lease, "the lease is recorded with the cached credentials");
      const edited = Buffer.from(row.lease);
      edited[edited.length - 5]! ^= 0x01;
      db.prepare("UPDATE secrets SET lease = ? WHERE name = ?").run(edited, NAME);
    } finally {
      db.close();
    }
    fv.resetCounts();

    const d2 = await launch(t, env.dir, env.config, { waitFor: "synced" });
    await d2.waitForLog(/cache database failed its checks/);
    const h = (await d2.get("/v1/health")).json<{ quarantined: { path: string; reason: string }[] }>();
    assert.equal(h.quarantined.length, 1);
    assert.match(h.quarantined[0]!.reason, /rows do not match the digest/);
    assert.ok(fs.existsSync(h.quarantined[0]!.path), "the edited database is kept in data_dir/quarantine");
    const s = await served(d2);
    assert.equal(username(s), "v-edge-2", "read again from Vault, never from the edited file");
    assert.equal(fv.count("read"), 1);
    assert.equal(fv.count("lease-renew"), 0, "nothing from the edited row is trusted");
    assert.equal(await d2.stop(), 0);
    assertLeaseIdsKept(fv, env.dbFile, [d1, d2]);
  });
});
