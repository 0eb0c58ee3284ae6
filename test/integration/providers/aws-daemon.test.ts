import assert from "node:assert/strict";
import path from "node:path";
import { describe, test } from "node:test";
import { cli, eventually, launch, served, servedAtVersion, type RunningDaemon } from "../../support/daemon.js";
import { FakeAws } from "../../support/fake-aws.js";
import { planted } from "../../support/planted.js";
import { tmpDir } from "../../support/tmp.js";

const ROLE = "arn:aws:iam::123456789012:role/edge-gateway";
interface ProviderH {
  name: string;
  online: boolean;
  last_error: string | null;
  last_error_kind: string | null;
  failures: number;
}
const providers = async (d: RunningDaemon) => new Map((await d.get("/v1/health")).json<{ providers: ProviderH[] }>().providers.map((p) => [p.name, p]));

describe("AWS providers through the daemon (standard credential chain from the environment)", () => {
  test("Secrets Manager, SSM and STS values; rotation within one refresh interval; throttling and denial keep the cache", async (t) => {
    const fa = await new FakeAws().start();
    t.after(() => fa.stop());
    fa.roles.add(ROLE);
    const db1 = planted("sm-db1");
    fa.putSecret("pipeline/db", JSON.stringify({ password: db1 }));
    const kafka = planted("ssm-kafka");
    fa.putParam("/pipeline/kafka_password", kafka, "SecureString");
    fa.putParam("/pipeline/cfg/host", "broker.internal");
    const dir = tmpDir(t);
    const base = { region: fa.region, endpoint: fa.url };
    const config = {
      data_dir: path.join(dir, "data"),
      socket: path.join(dir, "s.sock"),
      seal: { type: "host" },
      sync: { interval: "30s", backoff_min: "200ms", backoff_max: "1s", timeout: "2s" },
      providers: {
        sm: { type: "aws-secrets-manager", ...base },
        ssm: { type: "aws-ssm", ...base },
        sts: { type: "aws-sts", ...base, role_arn: ROLE, duration: "15m" },
      },
      secrets: {
        "db/password": { provider: "sm", path: "pipeline/db", key: "password", refresh: "1s" },
        "kafka/password": { provider: "ssm", path: "/pipeline/kafka_password" },
        "pipeline/cfg": { provider: "ssm", path: "/pipeline/cfg/*" },
        "aws/creds": { provider: "sts", path: "gw-17" },
      },
      log: { level: "debug" },
    };
    const d = await launch(t, dir, config, { waitFor: "synced", env: fa.env() });
    assert.equal((await served(d, "db/password")).value, db1);
    assert.equal((await served(d, "kafka/password")).value, kafka);
    assert.equal((await served(d, "pipeline/cfg/host")).value, "broker.internal");
    const creds = JSON.parse((await served(d, "aws/creds")).value);
    assert.match(creds.AccessKeyId, /^ASIA/);
    assert.ok(Date.parse(creds.Expiration) > Date.now() + 14 * 60_000);

    const db2 = planted("sm-db2");
    const id2 = fa.putSecret("pipeline/db", JSON.stringify({ password: db2 }));
    const at = Date.now();
    const rotated = await servedAtVersion(d, "db/password", 2, 3_000);
    assert.equal(rotated.value, db2);
    assert.equal(rotated.source_version, id2);
    assert.ok(Date.now() - at <= 2_200, `took ${Date.now() - at} ms with refresh 1s`);

    fa.fail("throttle", { match: /^secretsmanager\./ });
    const sm = await eventually(
      async () => {
        const p = (await providers(d)).get("sm")!;
        return p.failures >= 2 && p;
      },
      5_000,
      "sm throttled",
    );
    assert.equal(sm.last_error_kind, "transient");
    assert.match(String(sm.last_error), /throttled by AWS \(ThrottlingException/);
    const stale = await served(d, "db/password");
    assert.equal(stale.value, db2);
    assert.equal(stale.stale, true);
    assert.equal((await providers(d)).get("ssm")!.online, true, "other providers unaffected");
    const st = await cli(["status", "--config", d.configFile]);
    assert.match(st.stdout, /^sm\s+aws-secrets-manager\s+offline\s.*throttled by AWS/m, st.stdout);
    fa.heal();
    await eventually(async () => (await providers(d)).get("sm")!.online, 4_000, "sm back");

    fa.denied.add("pipeline/db");
    const denied = await eventually(
      async () => {
        const l = (await d.get("/v1/secrets"))
          .json<{ secrets: { name: string; error: string | null; state: string }[] }>()
          .secrets.find((s) => s.name === "db/password")!;
        return l.error !== null && l;
      },
      4_000,
      "denied",
    );
    assert.match(String(denied.error), /access denied \(AccessDeniedException\)/);
    assert.equal(denied.state, "stale");
    assert.equal((await served(d, "db/password")).value, db2, "kept");
    assert.equal((await d.get("/v1/health")).json().secrets.errors, 1);
  });
});
