import assert from "node:assert/strict";
import fs from "node:fs";
import path from "node:path";
import { describe, test, type TestContext } from "node:test";
import { createLogger } from "../../../src/log.js";
import type { FetchResult, Provider, SecretRef } from "../../../src/providers/provider.js";
import { create } from "../../../src/providers/vault/provider.js";
import { makeCerts } from "../../support/certs.js";
import { FakeVault, type FakeVaultOptions } from "../../support/fake-vault.js";
import { assertNoLeaks, planted } from "../../support/planted.js";
import { tmpDir } from "../../support/tmp.js";
import { field, text, failure, thrown } from "../../support/results.js";
import { sleep } from "../../support/daemon.js";

const never = () => new AbortController().signal;

/** A provider over a fake Vault, with its log captured for the leak check. */
async function setup(t: TestContext, auth: "token" | "approle" | "kubernetes" | "jwt", opts: FakeVaultOptions & { tlsOptions?: Record<string, string> } = {}) {
  const dir = tmpDir(t);
  const fv = await new FakeVault(opts).start();
  t.after(() => fv.stop());
  const file = (name: string, v: string) => {
    const f = path.join(dir, name);
    fs.writeFileSync(f, `${v}\n`, { mode: 0o600 });
    return f;
  };
  const authCfg =
    auth === "token"
      ? { method: "token", token_file: file("token", fv.issueToken()) }
      : auth === "approle"
        ? { method: "approle", role_id_file: file("role_id", fv.approle.roleId), secret_id_file: file("secret_id", fv.approle.secretId) }
        : auth === "kubernetes"
          ? { method: "kubernetes", role: fv.k8s.role, jwt_file: file("sa-token", fv.k8s.jwt) }
          : { method: "jwt", role: fv.jwt.role, jwt_file: file("jwt", fv.jwt.jwt) };
  let logs = "";
  const logger = createLogger({ level: "debug", destination: { write: (s: string) => (logs += s) } });
  const p: Provider = create({
    name: "vault",
    options: { type: "vault", address: fv.url, namespace: opts.namespace, auth: authCfg, tls: opts.tlsOptions, concurrency: 8 } as never,
    logger,
  });
  t.after(async () => {
    await p.close?.();
    assertNoLeaks(logs, "vault provider log");
  });
  return { fv, p, dir, logs: () => logs };
}

const by = (rs: FetchResult[]) => new Map(rs.map((r) => [r.name, r]));

describe("vault provider (node-vault against a local Vault API)", () => {
  test("token auth: KV v2 with key, a metadata check instead of a data read while unchanged, rotation, pinned versions, KV v1, namespace header", async (t) => {
    const { fv, p } = await setup(t, "token", { namespace: "edge" });
    const pw1 = planted("kv2-pw");
    fv.putKv2("secret/data/pipeline", { kafka_password: pw1, user: "edge" });
    const v1 = planted("kv1");
    fv.kv1.set("kv/legacy", { value: v1 });
    const refs: SecretRef[] = [
      { name: "kafka/password", path: "secret/data/pipeline", key: "kafka_password" },
      { name: "pipeline/all", path: "secret/data/pipeline" },
      { name: "legacy", path: "kv/legacy", key: "value" },
    ];
    const r1 = by(await p.fetch(refs, never()));
    assert.equal(text(r1.get("kafka/password")), pw1);
    assert.deepEqual(JSON.parse(text(r1.get("pipeline/all"))), { kafka_password: pw1, user: "edge" });
    assert.equal(field(r1.get("kafka/password"), "version"), "1");
    assert.equal(text(r1.get("legacy")), v1);
    assert.deepEqual([...fv.namespacesSeen], ["edge"], "X-Vault-Namespace on every request");
    assert.equal(fv.count("lookup-self"), 1, "token auth looks the token up once");
    assert.equal(fv.count("kv2-data"), 2);
    assert.equal(fv.count("kv2-metadata"), 0, "nothing cached yet: no metadata check");

    // Unchanged: one metadata call each, no data read.
    fv.resetCounts();
    const held = refs.slice(0, 2).map((r) => ({ ...r, cachedVersion: "1" }));
    const r2 = by(await p.fetch(held, never()));
    assert.equal(field(r2.get("kafka/password"), "unchanged"), true);
    assert.equal(fv.count("kv2-metadata"), 2);
    assert.equal(fv.count("kv2-data"), 0);

    // Rotated: metadata says 2, the data is read.
    const pw2 = planted("kv2-pw2");
    fv.putKv2("secret/data/pipeline", { kafka_password: pw2, user: "edge" });
    fv.resetCounts();
    const r3 = by(await p.fetch(held, never()));
    assert.equal(text(r3.get("kafka/password")), pw2);
    assert.equal(field(r3.get("kafka/password"), "version"), "2");
    assert.equal(fv.count("kv2-data"), 2);

    // Pinned version: read once, then no call at all.
    fv.resetCounts();
    const pinned = { name: "kafka/old", path: "secret/data/pipeline", key: "kafka_password", version: "1" };
    assert.equal(text(by(await p.fetch([pinned], never())).get("kafka/old")), pw1);
    const again = by(await p.fetch([{ ...pinned, cachedVersion: "1" }], never())).get("kafka/old")!;
    assert.ok(again.ok && again.unchanged);
    assert.equal(fv.total(), 1);
  });

  test("per-secret errors: not found, permission denied, missing key, deleted version: the others are unaffected", async (t) => {
    const { fv, p } = await setup(t, "token");
    fv.putKv2("secret/data/ok", { v: planted("ok") });
    fv.putKv2("secret/data/denied", { v: planted("denied") });
    fv.denied.add("secret/data/denied");
    fv.putKv2("secret/data/deleted", { v: planted("deleted") });
    fv.deleteKv2Latest("secret/data/deleted");
    const r = by(
      await p.fetch(
        [
          { name: "ok", path: "secret/data/ok", key: "v" },
          { name: "missing", path: "secret/data/missing" },
          { name: "denied", path: "secret/data/denied" },
          { name: "nokey", path: "secret/data/ok", key: "nope" },
          { name: "deleted", path: "secret/data/deleted" },
        ],
        never(),
      ),
    );
    assert.ok(text(r.get("ok")).startsWith("PLANTED-ok"));
    assert.deepEqual([failure(r.get("missing")).kind, failure(r.get("missing")).message], ["permanent", "vault secret/data/missing: not found (HTTP 404)"]);
    assert.equal(failure(r.get("denied")).kind, "permanent");
    assert.match(failure(r.get("denied")).message, /permission denied \(HTTP 403\)/);
    assert.match(failure(r.get("nokey")).message, /has no key "nope"/);
    assert.equal(failure(r.get("deleted")).kind, "permanent");
    assert.equal(fv.count("lookup-self"), 2, "one extra lookup-self tells a denied path from a dead token");
  });

  test("outages throw transient (the engine backs off); garbage and truncated answers are rejected per secret, never returned", async (t) => {
    const { fv, p } = await setup(t, "token");
    fv.putKv2("secret/data/a", { v: planted("a") });
    const ref = { name: "a", path: "secret/data/a", key: "v" };
    await p.fetch([ref], never());

    fv.fail("throttle", { times: 1 });
    const throttled = await thrown(p.fetch([ref], never()));
    assert.equal(throttled.kind, "transient");
    assert.equal(throttled.retryAfter, 1, "Retry-After is passed on");
    assert.match(throttled.message, /throttled \(HTTP 429/);

    fv.fail("sealed", { times: 1 });
    const sealed = await thrown(p.fetch([ref], never()));
    assert.equal(sealed.kind, "transient");
    assert.match(sealed.message, /HTTP 503 \(Vault sealed/);

    fv.fail("error", { times: 1 });
    assert.match((await thrown(p.fetch([ref], never()))).message, /answered HTTP 500/);

    fv.fail("garbage", { times: 1 });
    const g = failure((await p.fetch([ref], never()))[0]);
    assert.equal(g.kind, "transient");
    assert.match(g.message, /not a JSON object \(HTTP 200\); rejected/);

    fv.fail("truncated", { times: 1 });
    const tr = failure((await p.fetch([ref], never()))[0]);
    assert.match(tr.message, /(cut off|truncated)/);

    fv.fail("hang", { times: 1 });
    const ac = new AbortController();
    setTimeout(() => ac.abort(), 300);
    const started = Date.now();
    const hung = await thrown(p.fetch([ref], ac.signal));
    assert.equal(hung.kind, "transient");
    assert.ok(Date.now() - started < 2_000, "the request is abandoned when the engine aborts");
    fv.heal();

    await fv.goAway();
    const down = await thrown(p.fetch([ref], never()));
    assert.equal(down.kind, "transient");
    assert.match(down.message, /unreachable.*(ECONNREFUSED|ECONNRESET)/);
    await fv.comeBack();
    assert.ok(text((await p.fetch([ref], never()))[0]).startsWith("PLANTED-a"));
  });

  test("AppRole: a single-use secret_id is consumed once and the token kept; renewed before its TTL; re-login when renewal is refused or the token is revoked", async (t) => {
    const { fv, p } = await setup(t, "approle", { tokenTtl: 3, tokenMaxTtl: 3600 });
    fv.approle.singleUse = true;
    fv.putKv2("secret/data/a", { v: planted("a") });
    const ref = { name: "a", path: "secret/data/a", key: "v" };
    for (let i = 0; i < 5; i++) await p.fetch([ref], never());
    assert.equal(fv.count("login"), 1, "one login for many fetches");

    // Background renewal at ~2/3 of the 3 s TTL keeps the token alive past its first TTL.
    await sleep(3_300);
    assert.ok(fv.count("renew-self") >= 1, "renew-self before the TTL ran out");
    await p.fetch([ref], never());
    assert.equal(fv.count("login"), 1, "still the first token");

    // The single-use secret_id is gone: a refused renewal needs a fresh one.
    fv.refuseTokenRenewal = true;
    await sleep(2_300);
    const refused = await thrown(p.fetch([ref], never()));
    assert.equal(refused.kind, "auth");
    assert.match(refused.message, /approle login refused \(HTTP 400\).*single-use secret_id/);
    fv.approle.used = false; // the orchestrator delivers a new secret_id (same value here)
    fv.refuseTokenRenewal = false;
    assert.ok(text((await p.fetch([ref], never()))[0]).startsWith("PLANTED-a"));
    const logins = fv.count("login");

    // Token revoked behind our back: the 403 triggers lookup-self, then one re-login and a retry.
    fv.revokeAllTokens();
    fv.approle.used = false;
    assert.ok(text((await p.fetch([ref], never()))[0]).startsWith("PLANTED-a"));
    assert.equal(fv.count("login"), logins + 1);
  });

  test("Kubernetes and JWT auth log in with the role and the JWT from their files; a wrong JWT is an auth error", async (t) => {
    for (const method of ["kubernetes", "jwt"] as const) {
      const { fv, p, dir } = await setup(t, method);
      fv.putKv2("secret/data/a", { v: planted("a") });
      assert.ok(text((await p.fetch([{ name: "a", path: "secret/data/a", key: "v" }], never()))[0]).startsWith("PLANTED-a"));
      assert.equal(fv.count("login"), 1);
      const other = await setup(t, method);
      fs.writeFileSync(path.join(other.dir, method === "kubernetes" ? "sa-token" : "jwt"), "not-the-jwt");
      const e = await thrown(other.p.fetch([{ name: "a", path: "secret/data/a" }], never()));
      assert.equal(e.kind, "auth");
      assert.match(e.message, new RegExp(`${method} login refused \\(HTTP 403\\)`));
      void dir;
    }
  });

  test("dynamic secrets: the lease is renewed while it can be, and replaced by new credentials when renewal is refused or max_ttl is near", async (t) => {
    const { fv, p } = await setup(t, "token");
    let n = 0;
    fv.dynamic.set("database/creds/edge", { ttl: 60, maxTtl: 100, renewable: true, make: () => ({ username: `v-edge-${++n}`, password: planted(`db${n}`) }) });
    const ref: SecretRef = { name: "db", path: "database/creds/edge", key: "username" };
    const first = (await p.fetch([ref], never()))[0]!;
    assert.equal(text(first), "v-edge-1");
    assert.ok(first.ok && first.version?.startsWith("lease:") && first.expiresAt! > Date.now() + 55_000 && first.expiresAt! <= Date.now() + 60_000);

    const renewed = (await p.fetch([{ ...ref, cachedVersion: first.ok ? first.version : "" }], never()))[0]!;
    assert.ok(renewed.ok && renewed.unchanged, "renewed, same credentials");
    assert.equal(fv.count("lease-renew"), 1);
    assert.equal(fv.count("read"), 1);

    fv.refuseLeaseRenewal = true;
    const replaced = (await p.fetch([{ ...ref, cachedVersion: first.ok ? first.version : "" }], never()))[0]!;
    assert.equal(text(replaced), "v-edge-2");
    assert.notEqual(replaced.ok && replaced.version, first.ok && first.version);
    fv.refuseLeaseRenewal = false;

    // A lease whose renewal is capped short by max_ttl is replaced while it still works.
    fv.dynamic.set("database/creds/short", { ttl: 60, maxTtl: 10, renewable: true, make: () => ({ username: `v-short-${++n}` }) });
    const s1 = (await p.fetch([{ name: "s", path: "database/creds/short", key: "username" }], never()))[0]!;
    const s2 = (await p.fetch([{ name: "s", path: "database/creds/short", key: "username", cachedVersion: s1.ok ? s1.version : "" }], never()))[0]!;
    assert.ok(s2.ok && !s2.unchanged && text(s2) !== text(s1), "replaced, not renewed for 10 s");
  });

  test("replaced leases are revoked once the cache holds the new credentials; a refused or failing revocation is logged, never thrown, and retried only when transient", async (t) => {
    const { fv, p, logs } = await setup(t, "token");
    let n = 0;
    fv.dynamic.set("database/creds/edge", { ttl: 60, maxTtl: 3600, renewable: true, make: () => ({ username: `v-edge-${++n}`, password: planted(`db${n}`) }) });
    const ref: SecretRef = { name: "db", path: "database/creds/edge", key: "username" };
    const read = async (cached?: FetchResult) => {
      const r = (await p.fetch([{ ...ref, cachedVersion: cached?.ok ? cached.version : undefined }], never()))[0]!;
      assert.ok(r.ok && r.version, "a value with a lease version");
      return { r, lease: [...fv.leases.keys()].at(-1)! };
    };
    const committed = (r: FetchResult) => p.committed!(new Map([["db", r.ok ? r.version : undefined]]), never());
    const l1 = await read();
    await committed(l1.r);
    assert.equal(fv.count("lease-revoke"), 0, "nothing replaced yet");

    fv.refuseLeaseRenewal = true;
    const l2 = await read(l1.r);
    assert.equal(text(l2.r), "v-edge-2");
    assert.equal(fv.count("lease-revoke"), 0, "the old credentials are still what the cache serves until the new ones are committed");
    await committed(l2.r);
    assert.deepEqual(fv.revoked, [l1.lease]);
    await committed(l2.r);
    assert.equal(fv.count("lease-revoke"), 1, "revoked once");
    assert.ok(fv.leases.has(l2.lease), "the credentials held are never revoked");

    // A replacement whose commit failed (the cache still holds l2) is replaced again: both go once l4 is held.
    const l3 = await read(l2.r);
    const l4 = await read(l2.r);
    await committed(l4.r);
    assert.deepEqual(fv.revoked.slice(1).sort(), [l2.lease, l3.lease].sort());
    assert.ok(fv.leases.has(l4.lease));

    // A lease that is not renewable is read again before it expires; the one it replaced is revoked.
    fv.dynamic.set("aws/creds/edge", { ttl: 60, maxTtl: 60, renewable: false, make: () => ({ access_key: `AKIA${++n}` }) });
    const a1 = (await p.fetch([{ name: "aws", path: "aws/creds/edge" }], never()))[0]!;
    const a1Lease = [...fv.leases.keys()].at(-1)!;
    const a2 = (await p.fetch([{ name: "aws", path: "aws/creds/edge", cachedVersion: a1.ok ? a1.version : "" }], never()))[0]!;
    assert.ok(a2.ok && !a2.unchanged && a2.version !== (a1.ok && a1.version));
    await p.committed!(new Map([["aws", a2.ok ? a2.version : undefined]]), never());
    assert.equal(fv.revoked.at(-1), a1Lease);

    // Refused (403): logged, not thrown, not retried.
    fv.refuseLeaseRevoke = true;
    const l5 = await read(l4.r);
    const before = fv.count("lease-revoke");
    await committed(l5.r);
    assert.equal(fv.count("lease-revoke"), before + 1);
    assert.match(logs(), /permission denied \(HTTP 403\).*could not revoke a replaced lease; it ends at its TTL/);
    fv.refuseLeaseRevoke = false;
    await committed(l5.r);
    assert.equal(fv.count("lease-revoke"), before + 1, "a refused revocation is not retried");
    assert.ok(fv.leases.has(l4.lease), "left to expire");

    // Vault failing (500): retried after the next successful sync of the secret.
    fv.fail("error", { match: /^sys\/leases\/revoke$/, times: 1 });
    const l6 = await read(l5.r);
    await committed(l6.r);
    assert.ok(!fv.revoked.includes(l5.lease));
    assert.match(logs(), /answered HTTP 500.*could not revoke a replaced lease; retrying after the next sync/);
    await committed(l6.r);
    assert.equal(fv.revoked.at(-1), l5.lease);
    assert.ok(!logs().includes(l5.lease), "lease ids are logged by their path only");
  });

  test("the fake Vault's sys/leases/revoke answers as Vault does: 204, 400 without lease_id, 403 without the capability, 204 for an unknown lease", async (t) => {
    const { fv } = await setup(t, "token");
    const token = fv.issueToken();
    fv.dynamic.set("database/creds/x", { ttl: 60, maxTtl: 60, renewable: true, make: () => ({ u: "x" }) });
    const read = await fetch(`${fv.url}/v1/database/creds/x`, { headers: { "x-vault-token": token } });
    const leaseId = (await read.json()).lease_id as string;
    const revoke = (body: unknown, tok = token) =>
      fetch(`${fv.url}/v1/sys/leases/revoke`, {
        method: "PUT",
        headers: { "x-vault-token": tok, "content-type": "application/json" },
        body: JSON.stringify(body),
      });
    const noId = await revoke({});
    assert.deepEqual([noId.status, await noId.json()], [400, { errors: ["lease_id must be specified"] }]);
    assert.equal((await revoke({ lease_id: leaseId }, "hvs.nope")).status, 403);
    fv.refuseLeaseRevoke = true;
    const denied = await revoke({ lease_id: leaseId });
    assert.equal(denied.status, 403);
    assert.match((await denied.json()).errors[0], /permission denied/);
    fv.refuseLeaseRevoke = false;
    const ok = await revoke({ lease_id: leaseId });
    assert.deepEqual([ok.status, await ok.text()], [204, ""]);
    assert.deepEqual(fv.revoked, [leaseId]);
    const renew = await fetch(`${fv.url}/v1/sys/leases/renew`, {
      method: "PUT",
      headers: { "x-vault-token": token },
      body: JSON.stringify({ lease_id: leaseId }),
    });
    assert.equal(renew.status, 400, "a revoked lease cannot be renewed");
    assert.equal((await revoke({ lease_id: leaseId })).status, 204, "revoking it again is not an error");
    assert.deepEqual(fv.revoked, [leaseId]);
  });

  test("TLS: CA file and client certificate; a server the CA did not sign is refused", async (t) => {
    const certs = makeCerts(path.join(tmpDir(t), "certs"));
    const tls = { key: fs.readFileSync(certs.serverKey), cert: fs.readFileSync(certs.serverCert), ca: fs.readFileSync(certs.caFile), requireClientCert: true };
    const good = await setup(t, "token", { tls, tlsOptions: { ca_file: certs.caFile, cert_file: certs.clientCert, key_file: certs.clientKey } });
    good.fv.putKv2("secret/data/a", { v: planted("a") });
    assert.ok(good.fv.url.startsWith("https://"));
    assert.ok(text((await good.p.fetch([{ name: "a", path: "secret/data/a", key: "v" }], never()))[0]).startsWith("PLANTED-a"));

    const noClientCert = await setup(t, "token", { tls, tlsOptions: { ca_file: certs.caFile } });
    assert.equal((await thrown(noClientCert.p.fetch([{ name: "a", path: "secret/data/a" }], never()))).kind, "transient");
    assert.equal(noClientCert.fv.total(), 0, "the server never saw a request without a client certificate");

    const wrongCa = await setup(t, "token", { tls, tlsOptions: { ca_file: certs.otherCaFile, cert_file: certs.clientCert, key_file: certs.clientKey } });
    const e = await thrown(wrongCa.p.fetch([{ name: "a", path: "secret/data/a" }], never()));
    assert.match(e.message, /UNABLE_TO_VERIFY_LEAF_SIGNATURE|SELF_SIGNED|unable to verify|CERT/i);
    assert.equal(wrongCa.fv.total(), 0);
  });
});
