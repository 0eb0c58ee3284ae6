import assert from "node:assert/strict";
import fs from "node:fs";
import path from "node:path";
import { describe, test, type TestContext } from "node:test";
import { bursts } from "../../support/bursts.js";
import { cli, eventually, launch, served, servedAtVersion, sleep, type RunningDaemon } from "../../support/daemon.js";
import { FakeAzure, makeAppCertificate } from "../../support/fake-azure.js";
import { planted } from "../../support/planted.js";
import { tmpDir } from "../../support/tmp.js";

interface ProviderH {
  name: string;
  online: boolean;
  last_error: string | null;
  last_error_kind: string | null;
  failures: number;
}
const kvHealth = async (d: RunningDaemon) => (await d.get("/v1/health")).json<{ providers: ProviderH[] }>().providers.find((p) => p.name === "kv")!;
const refresh = async (d: RunningDaemon) => assert.equal((await d.get("/v1/refresh", { method: "POST" })).status, 202);

/** Every line the daemon printed is a JSON object (no SDK text on stdout or stderr). */
function assertJsonLines(out: string): void {
  const lines = out.split("\n").filter((l) => l.trim() !== "");
  assert.ok(lines.length > 0);
  for (const l of lines) assert.doesNotThrow(() => assert.equal(typeof JSON.parse(l), "object"), `not a JSON line: ${l.slice(0, 200)}`);
}

/**
 * A local Azure and a daemon config for it; `auth` defaults to the client secret
 * of an app registered for the test. The tokens issued (and the client secret) are
 * checked against everything the daemon prints.
 */
async function azure(t: TestContext) {
  const dir = tmpDir(t);
  const az = await new FakeAzure(path.join(dir, "azure")).start();
  t.after(() => az.stop());
  const app = az.entra.addSecretApp();
  const secretFile = path.join(dir, "client-secret");
  fs.writeFileSync(secretFile, app.secret, { mode: 0o600 });
  az.issuer.secrets.push(app.secret);
  const config = (secrets: Record<string, unknown>, opts: { auth?: Record<string, unknown>; sync?: Record<string, unknown>; level?: string } = {}) => ({
    data_dir: path.join(dir, "data"),
    socket: path.join(dir, "s.sock"),
    seal: { type: "host" },
    sync: { interval: "30s", backoff_min: "200ms", backoff_max: "1s", timeout: "2s", ...opts.sync },
    providers: {
      kv: {
        type: "azure-key-vault",
        vault_url: az.vault.url,
        tls: { ca_file: az.certs.caFile },
        auth: opts.auth ?? {
          method: "client_secret",
          tenant_id: az.entra.tenant,
          client_id: app.clientId,
          client_secret_file: secretFile,
          authority_host: az.entra.url,
        },
      },
    },
    secrets,
    log: { level: opts.level ?? "debug" },
  });
  // Checked when each daemon stops: by then the list holds every token issued.
  const extraSecrets = az.issuer.secrets;
  return { dir, az, app, config, extraSecrets };
}

describe("azure-key-vault through the daemon", () => {
  test("client secret: values, a pinned version, rotation within one refresh; throttling honours Retry-After (counted); an outage and a restart with Key Vault gone serve everything cached, stale; output stays JSON lines with AZURE_LOG_LEVEL set", async (t) => {
    const { dir, az, config, extraSecrets } = await azure(t);
    const db1 = planted("kv-db1");
    az.vault.putSecret("pipeline-db", JSON.stringify({ password: db1 }));
    const kafka = planted("kv-kafka");
    az.vault.putSecret("kafka-password", kafka);
    const tlsOld = planted("kv-tls-old");
    const pinned = az.vault.putSecret("tls-key", tlsOld);
    az.vault.putSecret("tls-key", planted("kv-tls-new"));
    const cfg = config({
      "db/password": { provider: "kv", path: "pipeline-db", key: "password", refresh: "1s" },
      "kafka/password": { provider: "kv", path: "kafka-password" },
      "tls/previous": { provider: "kv", path: "tls-key", version: pinned },
    });
    const env = { AZURE_LOG_LEVEL: "verbose" };
    const d = await launch(t, dir, cfg, { waitFor: "synced", env, extraSecrets });
    assert.equal((await served(d, "db/password")).value, db1);
    assert.equal((await served(d, "kafka/password")).value, kafka);
    const tls = await served(d, "tls/previous");
    assert.equal(tls.value, tlsOld);
    assert.equal(tls.source_version, pinned);
    assert.equal(az.entra.count("entra.token"), 1);
    assert.equal(az.vault.count("vault.challenge"), 1);

    // Steady state: one GET per refresh of the current version; nothing rewritten.
    az.vault.resetCounts();
    await sleep(2_500);
    assert.ok(az.vault.reads.filter((r) => r === "pipeline-db").length >= 2, `reads: ${az.vault.reads.join(",")}`);
    assert.equal((await served(d, "db/password")).version, 1, "unchanged: not written again");
    // A refresh of everything: the pinned version held costs no call.
    az.vault.resetCounts();
    await refresh(d);
    await eventually(() => az.vault.reads.includes("kafka-password"), 3_000, "kafka read again");
    assert.equal(az.vault.reads.filter((r) => r.startsWith("tls-key")).length, 0, "a pinned version held costs no call");

    const db2 = planted("kv-db2");
    const id2 = az.vault.putSecret("pipeline-db", JSON.stringify({ password: db2 }));
    const at = Date.now();
    const rotated = await servedAtVersion(d, "db/password", 2, 3_000);
    assert.equal(rotated.value, db2);
    assert.equal(rotated.source_version, id2);
    assert.ok(Date.now() - at <= 2_200, `took ${Date.now() - at} ms with refresh 1s`);

    // Throttled with Retry-After: 2 (longer than backoff_max 1s): the retries wait for it.
    az.vault.retryAfter = 2;
    az.vault.fail("throttle");
    az.vault.resetCounts();
    const throttledFrom = Date.now();
    await sleep(5_500);
    const rounds = bursts(az.vault.times);
    assert.ok(rounds.length >= 2 && rounds.length <= 4, `${rounds.length} retry rounds in 5.5 s`);
    for (let i = 1; i < rounds.length; i++)
      assert.ok(rounds[i]!.at - rounds[i - 1]!.at >= 1_900, `round ${i} came ${rounds[i]!.at - rounds[i - 1]!.at} ms after the previous one (Retry-After: 2)`);
    assert.ok(
      rounds.every((r) => r.size === 1),
      "one request per round: the first read of the batch",
    );
    const kv = await kvHealth(d);
    assert.equal(kv.online, false);
    assert.equal(kv.last_error_kind, "transient");
    assert.match(String(kv.last_error), /throttled by Key Vault \(Throttled, HTTP 429\)/);
    const stale = await served(d, "db/password");
    assert.equal(stale.value, db2);
    assert.equal(stale.stale, true);
    t.diagnostic(`throttled for ${Date.now() - throttledFrom} ms: ${az.vault.times.length} requests in ${rounds.length} rounds`);
    az.vault.heal();
    await eventually(async () => (await kvHealth(d)).online, 4_000, "kv back online");

    // Key Vault gone: offline, every value served stale.
    await az.vault.goAway();
    await refresh(d);
    await eventually(async () => (await kvHealth(d)).failures >= 2, 5_000, "kv offline");
    const st = await cli(["status", "--config", d.configFile]);
    assert.match(st.stdout, /^kv\s+azure-key-vault\s+offline\s.*Key Vault unreachable or the connection broke \(ECONNREFUSED\)/m, st.stdout);
    await d.stop();
    assertJsonLines(d.output());

    // A restart while it is still gone: everything cached is served at once; once a
    // refresh has failed (db/password is overdue at start, the rest on demand), stale.
    // (The pinned version needs no call, so it is confirmed even now.)
    const d2 = await launch(t, dir, cfg, { waitFor: "socket", env, extraSecrets });
    for (const [name, v] of [
      ["db/password", db2],
      ["kafka/password", kafka],
      ["tls/previous", tlsOld],
    ] as const)
      assert.equal((await served(d2, name)).value, v, name);
    await refresh(d2);
    await eventually(async () => (await kvHealth(d2)).failures >= 1, 5_000, "first sync failed");
    for (const [name, v] of [
      ["db/password", db2],
      ["kafka/password", kafka],
    ] as const) {
      const s = await eventually(
        async () => {
          const x = await served(d2, name);
          return x.stale && x;
        },
        5_000,
        `${name} stale`,
      );
      assert.equal(s.value, v, name);
    }
    await az.vault.comeBack();
    await refresh(d2);
    await eventually(async () => !(await served(d2, "kafka/password")).stale, 5_000, "fresh again");
    assert.equal((await served(d2, "db/password")).version, 2, "the restart did not rewrite unchanged values");
    await d2.stop();
    assertJsonLines(d2.output());
    assert.doesNotMatch(d.output() + d2.output(), /azure:(keyvault|identity|core)[^"]*\s/, "SDK lines only as our JSON");
  });

  test("request counts for 200 secrets: cold sync, a refresh with nothing changed, an outage, and a restart", async (t) => {
    const { dir, az, config, extraSecrets } = await azure(t);
    const N = 200;
    const secrets: Record<string, unknown> = {};
    for (let i = 0; i < N; i++) {
      az.vault.putSecret(`fleet-s${i}`, `value-${i}`);
      secrets[`fleet/s${String(i).padStart(3, "0")}`] = { provider: "kv", path: `fleet-s${i}` };
    }
    const cfg = config(secrets, { sync: { interval: "1h", timeout: "5s" }, level: "info" });
    const d = await launch(t, dir, cfg, { waitFor: "synced", extraSecrets });
    const cold = {
      get: az.vault.count("vault.get"),
      challenge: az.vault.count("vault.challenge"),
      token: az.entra.count("entra.token"),
      openid: az.entra.count("entra.openid"),
    };
    assert.deepEqual(cold, { get: N, challenge: 1, token: 1, openid: 1 });

    az.vault.resetCounts();
    az.entra.resetCounts();
    await refresh(d);
    await eventually(() => az.vault.count("vault.get") >= N, 10_000, "every secret read again");
    await sleep(300);
    assert.deepEqual(
      [az.vault.count("vault.get"), az.vault.count("vault.challenge"), az.entra.count("entra.token")],
      [N, 0, 0],
      "one GET per secret, the token reused",
    );

    az.vault.resetCounts();
    az.vault.fail("unavailable");
    await refresh(d);
    await sleep(3_000);
    const outage = bursts(az.vault.times);
    const outageRequests = az.vault.times.length;
    assert.ok(outage.length >= 2, `${outage.length} rounds`);
    assert.ok(
      outage.every((b) => b.size <= 2),
      `each round is one read per batch: ${JSON.stringify(outage)}`,
    );
    az.vault.heal();
    az.vault.resetCounts();
    await eventually(async () => (await kvHealth(d)).online, 5_000, "back online");
    await eventually(() => az.vault.count("vault.get") >= N, 10_000, "every secret checked after the outage");
    await sleep(300);
    assert.equal(az.vault.count("vault.get"), N);
    assert.equal(az.entra.count("entra.token"), 0, "the token survived the outage");

    await d.stop();
    az.vault.resetCounts();
    az.entra.resetCounts();
    const d2 = await launch(t, dir, cfg, { waitFor: "socket", extraSecrets });
    await refresh(d2);
    await eventually(() => az.vault.count("vault.get") >= N, 10_000, "every secret read after the restart");
    await sleep(300);
    const restart = {
      get: az.vault.count("vault.get"),
      challenge: az.vault.count("vault.challenge"),
      token: az.entra.count("entra.token"),
      openid: az.entra.count("entra.openid"),
    };
    assert.deepEqual(restart, { get: N, challenge: 1, token: 1, openid: 1 });
    assert.equal((await served(d2, "fleet/s007")).version, 1, "nothing was rewritten");
    t.diagnostic(
      `azure-key-vault ${N} secrets: cold ${JSON.stringify(cold)}, refresh ${N} GETs, outage (503, Retry-After 2) ${outageRequests} requests in rounds of ${JSON.stringify(outage.map((b) => b.size))}, restart ${JSON.stringify(restart)}`,
    );
  });

  test("managed identity on an Arc-connected gateway: the agent's key-file challenge answered from /var/opt/azcmagent/tokens (a private mount namespace), the token used for the vault", async (t) => {
    const { dir, az, config, extraSecrets } = await azure(t);
    const keyDir = path.join(dir, "arc-tokens");
    fs.mkdirSync(keyDir, { mode: 0o700 });
    const mi = await az.withIdentity("arc", keyDir);
    // Short-lived tokens, so the outage below is met when the token is needed again.
    mi.tokenLifetime = 3;
    const v = planted("via-arc");
    az.vault.putSecret("edge-token", v);
    // The Arc agent's folder exists only inside the daemon's mount namespace: a tmpfs on /var with the test's folder bound there.
    const ns = [
      "unshare",
      "--mount",
      "--propagation",
      "private",
      "--",
      "sh",
      "-c",
      'mount -t tmpfs -o mode=0755 tmpfs /var && mkdir -p /var/opt/azcmagent/tokens && mount --bind "$0" /var/opt/azcmagent/tokens && exec "$@"',
      keyDir,
    ];
    const d = await launch(t, dir, config({ "edge/token": { provider: "kv", path: "edge-token" } }, { auth: { method: "managed_identity" } }), {
      waitFor: "synced",
      env: mi.env(),
      prefix: ns,
      extraSecrets,
    });
    assert.equal((await served(d, "edge/token")).value, v);
    assert.deepEqual([mi.count("arc.challenge"), mi.count("arc.token"), mi.count("arc.refused")], [1, 1, 0]);
    assert.deepEqual([...new Set(az.vault.callers)], [mi.principal]);
    assert.deepEqual(fs.readdirSync(keyDir), [], "the one-time key file was used and removed");
    assert.equal(az.entra.count("entra.token"), 0);

    // The agent down once the token has expired: a transient error naming the endpoint, the value kept.
    await mi.goAway();
    await sleep(3_200);
    await refresh(d);
    const kv = await eventually(
      async () => {
        const h = await kvHealth(d);
        return h.failures >= 1 && h;
      },
      5_000,
      "kv offline",
    );
    assert.equal(kv.last_error_kind, "transient");
    assert.match(String(kv.last_error), /^azure-key-vault managed identity: token endpoint 127\.0\.0\.1:\d+ unreachable or the connection broke/);
    assert.equal((await served(d, "edge/token")).value, v);
  });

  test("certificate auth at log level trace: the SDK's own lines are in the JSON log, and no value, private key, assertion or token is printed", async (t) => {
    const { dir, az, config, extraSecrets } = await azure(t);
    const cert = makeAppCertificate(path.join(dir, "app-cert"));
    const clientId = az.entra.addCertificateApp(cert);
    extraSecrets.push(...cert.keyPem.split("\n").filter((l) => l.length >= 40 && !l.startsWith("-----")));
    const v = planted("via-cert");
    az.vault.putSecret("edge-token", v);
    const auth = { method: "certificate", tenant_id: az.entra.tenant, client_id: clientId, certificate_file: cert.pemFile, authority_host: az.entra.url };
    const d = await launch(t, dir, config({ "edge/token": { provider: "kv", path: "edge-token" } }, { auth, level: "trace" }), {
      waitFor: "synced",
      extraSecrets,
    });
    assert.equal((await served(d, "edge/token")).value, v);
    assert.deepEqual(az.entra.grants, ["certificate:x5t#S256"]);
    await d.stop();
    assertJsonLines(d.output());
    assert.match(d.output(), /"sdk":"azure:identity:info".*ClientCertificateCredential/);
    assert.match(d.output(), /"sdk":"azure:keyvault-secrets:info","msg":"Response status code: 200"/);
  });

  test("managed identity on an Azure VM: IMDS with a user-assigned identity (client_id)", async (t) => {
    const { dir, az, config, extraSecrets } = await azure(t);
    const mi = await az.withIdentity("imds");
    const clientId = "6c9ab2e0-8a9f-4b5e-9f3e-1d2c3b4a5f60";
    mi.userAssigned.add(clientId);
    const v = planted("via-imds");
    az.vault.putSecret("edge-token", v);
    const d = await launch(
      t,
      dir,
      config({ "edge/token": { provider: "kv", path: "edge-token" } }, { auth: { method: "managed_identity", client_id: clientId } }),
      {
        waitFor: "synced",
        env: mi.env(),
        extraSecrets,
      },
    );
    assert.equal((await served(d, "edge/token")).value, v);
    assert.equal(mi.count("imds.token"), 1);
    assert.equal(mi.count("imds.unknown-identity"), 0);
  });
});
