import assert from "node:assert/strict";
import { describe, test, type TestContext } from "node:test";
import { createLogger } from "../../../src/log.js";
import type { FetchResult, Provider, SecretRef } from "../../../src/providers/provider.js";
import { create as createSm } from "../../../src/providers/aws-secrets-manager/provider.js";
import { create as createSsm } from "../../../src/providers/aws-ssm/provider.js";
import { create as createSts } from "../../../src/providers/aws-sts/provider.js";
import { FakeAws } from "../../support/fake-aws.js";
import { field, text, failure, thrown, byName as by } from "../../support/results.js";
import { assertNoLeaks, planted } from "../../support/planted.js";

const dec = new TextDecoder();

/** A hierarchy's members by their path below the prefix, values decoded. */
function members(r: FetchResult | undefined): Map<string, { value: string; version: string | undefined }> {
  assert.ok(r?.ok && r.members, `expected a hierarchy, got ${r && !r.ok ? r.error.message : "a value"}`);
  return new Map(r.members.map((m) => [m.relative, { value: dec.decode(m.value), version: m.version }]));
}
const never = () => new AbortController().signal;
const ROLE = "arn:aws:iam::123456789012:role/edge-gateway";

/** The SDK reads credentials from the environment (the standard chain): the fake's keys for the duration of a test. */
async function setup(t: TestContext) {
  const fa = await new FakeAws().start();
  const saved = { ...process.env };
  Object.assign(process.env, fa.env());
  let logs = "";
  const logger = createLogger({ level: "debug", destination: { write: (s: string) => (logs += s) } });
  const providers: Provider[] = [];
  t.after(async () => {
    for (const p of providers) await p.close?.();
    await fa.stop();
    for (const k of Object.keys(fa.env())) if (saved[k] === undefined) delete process.env[k];
    Object.assign(process.env, saved);
    assertNoLeaks(logs, "aws provider log");
  });
  const base = { endpoint: fa.url, region: fa.region, concurrency: 4 };
  const make = <T extends Provider>(p: T) => (providers.push(p), p);
  return {
    fa,
    sm: (extra: Record<string, unknown> = {}) => make(createSm({ name: "sm", options: { type: "aws-secrets-manager", ...base, ...extra } as never, logger })),
    ssm: (extra: Record<string, unknown> = {}) =>
      make(createSsm({ name: "ssm", options: { type: "aws-ssm", ...base, with_decryption: true, ...extra } as never, logger })),
    sts: (extra: Record<string, unknown> = {}) => make(createSts({ name: "sts", options: { type: "aws-sts", ...base, ...extra } as never, logger })),
  };
}

describe("AWS providers (official SDK clients against a local SigV4-verifying server)", () => {
  test("Secrets Manager: 45 secrets in 3 BatchGetSecretValue calls; stages, version ids, binary values, JSON keys", async (t) => {
    const { fa, sm } = await setup(t);
    const values: string[] = [];
    const refs: SecretRef[] = [];
    for (let i = 0; i < 45; i++) {
      values.push(planted(`sm${i}`));
      fa.putSecret(`fleet/s${i}`, JSON.stringify({ password: values[i], user: `u${i}` }));
      refs.push({ name: `s${i}`, path: i % 2 ? `fleet/s${i}` : fa.arn(`fleet/s${i}`), key: "password" });
    }
    const p = sm();
    const r = by(await p.fetch(refs, never()));
    for (let i = 0; i < 45; i++) assert.equal(text(r.get(`s${i}`)), values[i]);
    assert.equal(fa.count("secretsmanager.BatchGetSecretValue"), 3);
    assert.equal(fa.count("secretsmanager.GetSecretValue"), 0);

    const old = planted("old");
    const oldId = fa.putSecret("app/db", old);
    const cur = planted("cur");
    const curId = fa.putSecret("app/db", cur);
    fa.putSecret("app/cert", Buffer.from([0, 1, 2, 255]));
    fa.resetCounts();
    const r2 = by(
      await p.fetch(
        [
          { name: "cur", path: "app/db" },
          { name: "prev", path: "app/db", version: "AWSPREVIOUS" },
          { name: "byid", path: "app/db", version: oldId },
          { name: "bin", path: "app/cert" },
          { name: "missing", path: "app/none" },
        ],
        never(),
      ),
    );
    assert.equal(text(r2.get("cur")), cur);
    assert.equal(field(r2.get("cur"), "version"), curId);
    assert.equal(text(r2.get("prev")), old);
    assert.equal(text(r2.get("byid")), old);
    const bin = r2.get("bin")!;
    assert.ok(bin.ok && Buffer.from(bin.value!).equals(Buffer.from([0, 1, 2, 255])));
    assert.deepEqual(
      [failure(r2.get("missing")).kind, failure(r2.get("missing")).message],
      ["permanent", "secretsmanager app/none: not found (ResourceNotFoundException)"],
    );
    assert.equal(fa.count("secretsmanager.BatchGetSecretValue"), 1);
    assert.equal(fa.count("secretsmanager.GetSecretValue"), 2, "pinned versions go one by one");

    // A pinned VersionId already held costs nothing.
    fa.resetCounts();
    const again = (await p.fetch([{ name: "byid", path: "app/db", version: oldId, cachedVersion: oldId }], never()))[0]!;
    assert.ok(again.ok && again.unchanged);
    assert.equal(fa.total(), 0);
  });

  test("Secrets Manager: denied secrets are per-secret errors; a denied BatchGetSecretValue falls back to GetSecretValue", async (t) => {
    const { fa, sm } = await setup(t);
    fa.putSecret("ok", planted("ok"));
    fa.putSecret("secret-denied", planted("denied"));
    fa.denied.add("secret-denied");
    const p = sm();
    const r = by(
      await p.fetch(
        [
          { name: "ok", path: "ok" },
          { name: "d", path: "secret-denied" },
        ],
        never(),
      ),
    );
    assert.ok(text(r.get("ok")).startsWith("PLANTED-ok"));
    assert.equal(failure(r.get("d")).kind, "permanent");
    assert.match(failure(r.get("d")).message, /access denied \(AccessDeniedException\)/);

    fa.deniedOps.add("secretsmanager.BatchGetSecretValue");
    fa.resetCounts();
    const r2 = by(
      await p.fetch(
        [
          { name: "ok", path: "ok" },
          { name: "d", path: "secret-denied" },
        ],
        never(),
      ),
    );
    assert.ok(text(r2.get("ok")).startsWith("PLANTED-ok"));
    assert.match(failure(r2.get("d")).message, /access denied/);
    assert.equal(fa.count("secretsmanager.GetSecretValue"), 2);
    await p.fetch([{ name: "ok", path: "ok" }], never());
    assert.equal(fa.count("secretsmanager.BatchGetSecretValue"), 1, "the batch call is not retried once denied");
  });

  test("SigV4: requests signed with a wrong secret key are refused by the server, and that is an auth error", async (t) => {
    const { fa, sm } = await setup(t);
    fa.putSecret("a", planted("a"));
    process.env.AWS_SECRET_ACCESS_KEY = fa.secretAccessKey.replace(/^./, (c) => (c === "A" ? "B" : "A"));
    const e = await thrown(sm().fetch([{ name: "a", path: "a" }], never()));
    assert.equal(e.kind, "auth");
    assert.match(e.message, /AWS refused the credentials \(InvalidSignatureException/);
    assert.equal(fa.count("secretsmanager.BatchGetSecretValue"), 1);
    assert.equal(fa.signedBy.size, 0, "nothing was answered");
  });

  test("role_arn: one AssumeRole (SigV4-checked query protocol, XML answer) and the data calls signed with its temporary keys", async (t) => {
    const { fa, sm } = await setup(t);
    fa.roles.add(ROLE);
    fa.putSecret("a", planted("a"));
    const p = sm({ role_arn: ROLE, sts_endpoint: fa.url });
    for (let i = 0; i < 3; i++) assert.ok(text((await p.fetch([{ name: "a", path: "a" }], never()))[0]).startsWith("PLANTED-a"));
    assert.equal(fa.count("sts.AssumeRole"), 1, "temporary credentials reused until near expiry");
    assert.deepEqual([...fa.signedBy.get("sts.AssumeRole")!], [fa.accessKeyId]);
    const dataKeys = [...fa.signedBy.get("secretsmanager.BatchGetSecretValue")!];
    assert.equal(dataKeys.length, 1);
    assert.match(dataKeys[0]!, /^ASIA/);

    const denied = sm({ role_arn: "arn:aws:iam::123456789012:role/not-allowed", sts_endpoint: fa.url });
    const e = await thrown(denied.fetch([{ name: "a", path: "a" }], never()));
    assert.equal(e.kind, "auth");
    assert.match(e.message, /role_arn.*access denied/);
  });

  test("SSM: 25 names in 3 GetParameters calls, SecureString decrypted, versions pinned, one denied name narrowed down, hierarchies by path", async (t) => {
    const { fa, ssm } = await setup(t);
    const refs: SecretRef[] = [];
    const vals: string[] = [];
    for (let i = 0; i < 25; i++) {
      vals.push(planted(`p${i}`));
      fa.putParam(`/fleet/p${i}`, vals[i]!, i % 3 === 0 ? "SecureString" : "String");
      refs.push({ name: `p${i}`, path: `/fleet/p${i}` });
    }
    const p = ssm();
    const r = by(await p.fetch(refs, never()));
    for (let i = 0; i < 25; i++) assert.equal(text(r.get(`p${i}`)), vals[i]);
    assert.equal(fa.count("ssm.GetParameters"), 3);

    fa.putParam("/fleet/p0", planted("p0v2"), "SecureString");
    fa.resetCounts();
    const r2 = by(
      await p.fetch(
        [
          { name: "v1", path: "/fleet/p0", version: "1" },
          { name: "cur", path: "/fleet/p0" },
          { name: "none", path: "/fleet/none" },
        ],
        never(),
      ),
    );
    assert.equal(text(r2.get("v1")), vals[0]);
    assert.equal(field(r2.get("cur"), "version"), "2");
    assert.equal(failure(r2.get("none")).kind, "permanent");
    assert.equal(fa.count("ssm.GetParameters"), 1);

    fa.denied.add("/fleet/p5");
    fa.resetCounts();
    const r3 = by(await p.fetch(refs.slice(0, 10), never()));
    assert.match(failure(r3.get("p5")).message, /access denied/);
    assert.equal(text(r3.get("p4")), vals[4]);
    assert.equal(fa.count("ssm.GetParameters"), 11, "the whole call is denied, then each name alone");

    const db = planted("tree-db");
    fa.putParam("/app/prod/db_password", db, "SecureString");
    fa.putParam("/app/prod/host", "db.internal");
    for (let i = 0; i < 12; i++) fa.putParam(`/app/prod/flags/f${i}`, String(i));
    fa.resetCounts();
    assert.equal(p.expands?.("/app/prod/*"), true);
    assert.equal(p.expands?.("/app/prod/**"), true);
    assert.equal(p.expands?.("/app/prod/host"), false);
    const r4 = by(
      await p.fetch(
        [
          { name: "app/prod", path: "/app/prod/*" },
          { name: "app/all", path: "/app/prod/**" },
          { name: "app/keyed", path: "/app/prod/*", key: "db_password" },
          { name: "app/pinned", path: "/app/prod/*", version: "1" },
        ],
        never(),
      ),
    );
    const one = members(r4.get("app/prod"));
    assert.deepEqual([...one.keys()], ["db_password", "host"], "one level: the parameters directly under the prefix");
    assert.deepEqual(one.get("db_password"), { value: db, version: "1" });
    assert.deepEqual(one.get("host"), { value: "db.internal", version: "1" });
    const all = members(r4.get("app/all"));
    assert.equal(all.size, 14);
    assert.deepEqual(all.get("flags/f11"), { value: "11", version: "1" });
    assert.match(
      failure(r4.get("app/keyed")).message,
      /key cannot be used with a hierarchy: each parameter under it is served as its own secret \(app\/keyed\/NAME\)/,
    );
    assert.equal(failure(r4.get("app/keyed")).kind, "permanent");
    assert.match(failure(r4.get("app/pinned")).message, /version cannot be used with a hierarchy/);
    assert.equal(fa.count("ssm.GetParametersByPath"), 1 + 2, "one walk per hierarchy, 10 per page (14 recursive = 2 pages)");
    assert.equal(fa.count("ssm.GetParameters"), 0);

    // An unreadable page, or one holding a parameter without its Value, rejects the whole walk (what a walk
    // omits is removed downstream), for this hierarchy only: the provider is not taken offline.
    for (const fault of ["garbage", "malformed"] as const) {
      fa.fail(fault, { match: /GetParametersByPath/, times: 1 });
      const g = failure((await p.fetch([{ name: "app/prod", path: "/app/prod/*" }], never()))[0]);
      assert.equal(g.kind, "transient", fault);
      assert.match(g.message, fault === "malformed" ? /without Name\/Value\/Version.*walk rejected/ : /could not be read/);
    }
  });

  test("STS: AssumeRole credentials as a secret (credential_process JSON) with their expiry; not called again until 2/3 of the lifetime", async (t) => {
    const { fa, sts } = await setup(t);
    fa.roles.add(ROLE);
    const p = sts({ role_arn: ROLE, duration: 900_000 });
    const r = (await p.fetch([{ name: "creds", path: "edge-session" }], never()))[0]!;
    const c = JSON.parse(text(r));
    assert.equal(c.Version, 1);
    assert.match(c.AccessKeyId, /^ASIA/);
    assert.ok(c.SecretAccessKey.startsWith("PLANTED-") && c.SessionToken.length > 20);
    assert.ok(r.ok && Math.abs(r.expiresAt! - Date.parse(c.Expiration)) < 1000);
    assert.ok(r.ok && r.expiresAt! > Date.now() + 890_000);
    assert.equal(r.ok && r.version, c.AccessKeyId);
    const again = (await p.fetch([{ name: "creds", path: "edge-session", cachedVersion: c.AccessKeyId }], never()))[0]!;
    assert.ok(again.ok && again.unchanged);
    assert.equal(fa.count("sts.AssumeRole"), 1);
    const key = (await p.fetch([{ name: "k", path: "edge-session", key: "AccessKeyId" }], never()))[0]!;
    assert.match(text(key), /^ASIA/);
    const denied = (await p.fetch([{ name: "x", path: "arn:aws:iam::123456789012:role/other" }], never()))[0];
    assert.equal(failure(denied).kind, "permanent");
  });

  test("outages: throttling, 5xx, hang, connection refused throw transient; garbage is rejected per secret; nothing is ever returned from them", async (t) => {
    const { fa, sm, ssm } = await setup(t);
    fa.putSecret("a", planted("a"));
    fa.putParam("/a", planted("pa"));
    const p = sm();
    const q = ssm();
    const ref = { name: "a", path: "a" };
    fa.fail("throttle", { times: 2 });
    const th = await thrown(p.fetch([ref], never()));
    assert.equal(th.kind, "transient");
    assert.match(th.message, /throttled by AWS \(ThrottlingException/);
    assert.match((await thrown(q.fetch([{ name: "a", path: "/a" }], never()))).message, /throttled/);
    fa.fail("error", { times: 1 });
    assert.match((await thrown(p.fetch([ref], never()))).message, /InternalServiceError \(HTTP 500\)/);
    fa.fail("garbage", { times: 1 });
    const g = failure((await p.fetch([ref], never()))[0]);
    assert.equal(g.kind, "transient");
    assert.match(g.message, /could not be read.*rejected/);
    fa.fail("truncated", { times: 1 });
    const tr = await p.fetch([ref], never()).then(
      (rs) => failure(rs[0]),
      (e) => e as { kind: string },
    );
    assert.equal(tr.kind, "transient");
    fa.fail("hang", { times: 1 });
    const ac = new AbortController();
    setTimeout(() => ac.abort(), 300);
    assert.equal((await thrown(p.fetch([ref], ac.signal))).kind, "transient");
    fa.heal();
    await fa.goAway();
    assert.match((await thrown(p.fetch([ref], never()))).message, /unreachable|connection broke/);
    await fa.comeBack();
    assert.ok(text((await p.fetch([ref], never()))[0]).startsWith("PLANTED-a"));
  });
});
