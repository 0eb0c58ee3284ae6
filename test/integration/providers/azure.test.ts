import assert from "node:assert/strict";
import fs from "node:fs";
import path from "node:path";
import { describe, test, type TestContext } from "node:test";
import { createLogger, type LogLevel } from "../../../src/log.js";
import type { Provider, SecretRef } from "../../../src/providers/provider.js";
import { create } from "../../../src/providers/azure-key-vault/provider.js";
import { API_VERSION, FakeAzure, makeAppCertificate, makeFederatedIssuer } from "../../support/fake-azure.js";
import { assertNoLeaks, planted } from "../../support/planted.js";
import { byName as by, failure, field, text, thrown } from "../../support/results.js";
import { tmpDir } from "../../support/tmp.js";

const never = () => new AbortController().signal;
const NOW = () => Math.floor(Date.now() / 1000);

/**
 * A local Azure (Key Vault + Entra ID over TLS from the test CA) and providers
 * built on it through the real SDK. Every log line of the test, SDK lines
 * included, is checked for planted values and for the credentials in `secrets`.
 */
async function setup(t: TestContext, opts: { level?: LogLevel } = {}) {
  const dir = tmpDir(t);
  const az = await new FakeAzure(dir).start();
  let logs = "";
  const logger = createLogger({ level: opts.level ?? "debug", destination: { write: (s: string) => (logs += s) } });
  const providers: Provider[] = [];
  /** Credentials that must never be logged either (client secrets, private keys, tokens). */
  const secrets: string[] = [];
  t.after(async () => {
    for (const p of providers) await p.close?.();
    await az.stop();
    assertNoLeaks(logs, "azure provider log", [...secrets, ...az.issuer.secrets]);
  });
  const app = az.entra.addSecretApp();
  secrets.push(app.secret);
  const secretFile = path.join(dir, "client-secret");
  fs.writeFileSync(secretFile, app.secret + "\n", { mode: 0o600 });
  const clientSecret = {
    method: "client_secret",
    tenant_id: az.entra.tenant,
    client_id: app.clientId,
    client_secret_file: secretFile,
    authority_host: az.entra.url,
  };
  const make = (auth: Record<string, unknown> = clientSecret, extra: Record<string, unknown> = {}) => {
    const p = create({
      name: "kv",
      logger,
      options: { type: "azure-key-vault", vault_url: az.vault.url, tls: { ca_file: az.certs.caFile }, concurrency: 4, auth, ...extra } as never,
    });
    providers.push(p);
    return p;
  };
  return { dir, az, app, secretFile, clientSecret, make, secrets, logs: () => logs };
}

describe("azure-key-vault provider (official SDK against a local Key Vault and Entra ID)", () => {
  test("client secret: values, JSON keys, pinned versions; the challenge answered once and one token for every read; unchanged versions are not re-read into the cache", async (t) => {
    const { az, app, make } = await setup(t);
    const values: string[] = [];
    const refs: SecretRef[] = [];
    for (let i = 0; i < 12; i++) {
      values.push(planted(`kv${i}`));
      az.vault.putSecret(`fleet-s${i}`, JSON.stringify({ password: values[i], user: `u${i}` }));
      refs.push({ name: `s${i}`, path: `fleet-s${i}`, key: "password" });
    }
    // Two keys of one JSON secret (the name in another case, as Key Vault names are case-insensitive): one GET.
    refs.push({ name: "s0-user", path: "FLEET-S0", key: "user" });
    const p = make();
    const r = by(await p.fetch(refs, never()));
    for (let i = 0; i < 12; i++) assert.equal(text(r.get(`s${i}`)), values[i]);
    assert.equal(text(r.get("s0-user")), "u0");
    assert.equal(az.vault.count("vault.challenge"), 1, "the first read answers the challenge; the others carry the token");
    assert.equal(az.vault.count("vault.get"), 12);
    assert.equal(az.entra.count("entra.token"), 1);
    assert.equal(az.entra.count("entra.openid"), 1, "MSAL reads the authority's OpenID configuration (instance discovery off)");
    assert.deepEqual([...new Set(az.vault.callers)], [app.clientId]);
    assert.deepEqual([...az.vault.apiVersions], [API_VERSION]);
    assert.deepEqual(az.entra.grants, ["client_secret"]);

    const old = planted("old");
    const v1 = az.vault.putSecret("db-password", old, { contentType: "text/plain" });
    const cur = planted("cur");
    const v2 = az.vault.putSecret("db-password", cur);
    az.vault.resetCounts();
    const r2 = by(
      await p.fetch(
        [
          { name: "cur", path: "db-password" },
          { name: "pinned", path: "db-password", version: v1 },
          { name: "upper", path: "DB-Password", version: v1.toUpperCase() },
        ],
        never(),
      ),
    );
    assert.equal(text(r2.get("cur")), cur);
    assert.equal(field(r2.get("cur"), "version"), v2);
    assert.equal(text(r2.get("pinned")), old);
    assert.equal(field(r2.get("pinned"), "version"), v1);
    assert.equal(text(r2.get("upper")), old, "names are case-insensitive in Key Vault, version ids are hex");
    assert.equal(az.vault.count("vault.get"), 2, "the pinned version is read once for both names");
    assert.equal(az.vault.count("vault.challenge"), 0);

    // A pinned version already held costs nothing; the current version, when it is still the one held, is one GET and `unchanged`.
    az.vault.resetCounts();
    const r3 = by(
      await p.fetch(
        [
          { name: "pinned", path: "db-password", version: v1, cachedVersion: v1 },
          { name: "cur", path: "db-password", cachedVersion: v2 },
        ],
        never(),
      ),
    );
    assert.ok(field(r3.get("pinned"), "unchanged"));
    assert.ok(field(r3.get("cur"), "unchanged"));
    assert.equal(field(r3.get("cur"), "version"), v2);
    assert.equal(az.vault.count("vault.get"), 1);

    // Rotation: a new current version is read in full.
    const next = planted("next");
    const v3 = az.vault.putSecret("db-password", next);
    const r4 = (await p.fetch([{ name: "cur", path: "db-password", cachedVersion: v2 }], never()))[0];
    assert.equal(text(r4), next);
    assert.equal(field(r4, "version"), v3);
    assert.equal(az.entra.count("entra.token"), 1, "the token is still the first one");
  });

  test("certificate: a client assertion signed with the app's certificate (PS256, x5t#S256) is verified; a certificate the app does not know and a PEM without its key are auth errors", async (t) => {
    const { dir, az, make, secrets } = await setup(t);
    const cert = makeAppCertificate(path.join(dir, "app-cert"));
    secrets.push(...keyLines(cert.keyPem));
    const clientId = az.entra.addCertificateApp(cert);
    const value = planted("by-cert");
    az.vault.putSecret("edge-token", value);
    const auth = { method: "certificate", tenant_id: az.entra.tenant, client_id: clientId, certificate_file: cert.pemFile, authority_host: az.entra.url };
    assert.equal(text((await make(auth).fetch([{ name: "a", path: "edge-token" }], never()))[0]), value);
    assert.deepEqual(az.entra.grants, ["certificate:x5t#S256"]);
    assert.deepEqual([...new Set(az.vault.callers)], [clientId]);

    const other = makeAppCertificate(path.join(dir, "other-cert"), "other");
    secrets.push(...keyLines(other.keyPem));
    const e = await thrown(make({ ...auth, certificate_file: other.pemFile }).fetch([{ name: "a", path: "edge-token" }], never()));
    assert.equal(e.kind, "auth");
    assert.match(
      e.message,
      /^azure-key-vault certificate [0-9a-f-]+ in tenant [0-9a-f-]+: token endpoint 127\.0\.0\.1:\d+ refused the credentials \(invalid_client, AADSTS700027, HTTP 401\)/,
    );

    const certOnly = path.join(dir, "cert-only.pem");
    fs.writeFileSync(certOnly, fs.readFileSync(cert.pemFile, "utf8").replace(/-----BEGIN PRIVATE KEY-----[\s\S]*$/, ""));
    const before = az.entra.count("entra.token");
    const e2 = await thrown(make({ ...auth, certificate_file: certOnly }).fetch([{ name: "a", path: "edge-token" }], never()));
    assert.equal(e2.kind, "auth");
    assert.match(e2.message, /certificate_file .*cert-only\.pem must hold a PEM certificate and its unencrypted private key/);
    assert.equal(az.entra.count("entra.token"), before, "nothing was sent");
  });

  test("workload identity: the federated token from token_file is the client assertion; another subject is refused; a missing token file is an auth error naming it", async (t) => {
    const { dir, az, make, secrets } = await setup(t);
    const fed = makeFederatedIssuer();
    const clientId = az.entra.addFederatedApp(fed);
    const tokenFile = path.join(dir, "azure-identity-token");
    const jwt = fed.token();
    secrets.push(jwt);
    fs.writeFileSync(tokenFile, jwt);
    const value = planted("by-federation");
    az.vault.putSecret("edge-token", value);
    const auth = { method: "workload_identity", tenant_id: az.entra.tenant, client_id: clientId, token_file: tokenFile, authority_host: az.entra.url };
    assert.equal(text((await make(auth).fetch([{ name: "a", path: "edge-token" }], never()))[0]), value);
    assert.deepEqual(az.entra.grants, ["federated"]);

    const stranger = fed.token({ sub: "system:serviceaccount:other:app" });
    secrets.push(stranger);
    const strangerFile = path.join(dir, "stranger-token");
    fs.writeFileSync(strangerFile, stranger);
    const e = await thrown(make({ ...auth, token_file: strangerFile }).fetch([{ name: "a", path: "edge-token" }], never()));
    assert.equal(e.kind, "auth");
    assert.match(e.message, /refused the credentials \(invalid_request, AADSTS70021, HTTP 400\)/);

    const e2 = await thrown(make({ ...auth, token_file: path.join(dir, "no-such-token") }).fetch([{ name: "a", path: "edge-token" }], never()));
    assert.equal(e2.kind, "auth");
    assert.match(e2.message, /auth\.token_file .*no-such-token cannot be read \(ENOENT\)/);
  });

  test("a refused client secret is an auth error; the rotated client_secret_file is read again at the next fetch; unknown app, another tenant and a missing file are auth errors", async (t) => {
    const { dir, az, app, make, clientSecret, secretFile, secrets } = await setup(t);
    const value = planted("v");
    az.vault.putSecret("a", value);
    const wrong = planted("wrong-secret");
    secrets.push(wrong);
    fs.writeFileSync(secretFile, wrong);
    const p = make();
    const e = await thrown(p.fetch([{ name: "a", path: "a" }], never()));
    assert.equal(e.kind, "auth");
    assert.match(
      e.message,
      /^azure-key-vault client_secret [0-9a-f-]+ in tenant [0-9a-f-]+: token endpoint 127\.0\.0\.1:\d+ refused the credentials \(invalid_client, AADSTS7000215, HTTP 401\); check tenant_id, client_id/,
    );
    fs.writeFileSync(secretFile, app.secret);
    assert.equal(text((await p.fetch([{ name: "a", path: "a" }], never()))[0]), value, "the new secret is used without a restart");

    const unknown = await thrown(make({ ...clientSecret, client_id: "00000000-0000-0000-0000-000000000001" }).fetch([{ name: "a", path: "a" }], never()));
    assert.match(unknown.message, /refused the credentials \(unauthorized_client, AADSTS700016, HTTP 400\)/);

    const tokensBefore = az.entra.count("entra.token");
    const otherTenant = "11111111-2222-3333-4444-555555555555";
    const te = await thrown(make({ ...clientSecret, tenant_id: otherTenant }).fetch([{ name: "a", path: "a" }], never()));
    assert.equal(te.kind, "auth");
    assert.equal(
      te.message,
      `azure-key-vault client_secret ${app.clientId} in tenant ${otherTenant}: the vault belongs to tenant ${az.entra.tenant}, not auth.tenant_id ${otherTenant}`,
    );
    assert.equal(az.entra.count("entra.token"), tokensBefore, "no token was asked for in the wrong tenant");

    const missing = await thrown(make({ ...clientSecret, client_secret_file: path.join(dir, "gone") }).fetch([{ name: "a", path: "a" }], never()));
    assert.equal(missing.kind, "auth");
    assert.match(missing.message, /auth\.client_secret_file .*gone cannot be read \(ENOENT\)/);
  });

  test("Key Vault refusing a held token: a revoked token is replaced once by a fresh credential and the batch read; refused again, it is an auth error after one retry", async (t) => {
    const { az, make } = await setup(t);
    const a = planted("a");
    const b = planted("b");
    az.vault.putSecret("a", a);
    az.vault.putSecret("b", b);
    const p = make();
    const refs = [
      { name: "a", path: "a" },
      { name: "b", path: "b" },
    ];
    await p.fetch(refs, never());
    assert.equal(az.entra.count("entra.token"), 1);
    az.issuer.revokeAll();
    const r = by(await p.fetch(refs, never()));
    assert.equal(text(r.get("a")), a);
    assert.equal(text(r.get("b")), b);
    assert.equal(az.entra.count("entra.token"), 2, "one new token");

    az.vault.refuseTokens = true;
    az.vault.resetCounts();
    az.entra.resetCounts();
    const e = await thrown(p.fetch(refs, never()));
    assert.equal(e.kind, "auth");
    assert.match(e.message, /^azure-key-vault a: Key Vault refused the access token \(Unauthorized, HTTP 401\), also after the credential was built anew/);
    assert.equal(az.entra.count("entra.token"), 1, "one fresh token, then it gives up");
    assert.ok(az.vault.total() <= 5, `${az.vault.total()} vault requests for a refused identity`);
  });

  test("per-secret errors: not found, denied, disabled, expired (exp), not yet valid (nbf), a bad name or version, a missing key; the other secrets are served and the provider stays usable", async (t) => {
    const { az, make } = await setup(t);
    const ok = planted("ok");
    az.vault.putSecret("ok", ok);
    az.vault.putSecret("denied", planted("denied"));
    az.vault.denied.add("denied");
    az.vault.putSecret("disabled", planted("disabled"), { enabled: false });
    const expiredVersion = az.vault.putSecret("expired", planted("expired"), { exp: NOW() - 60 });
    az.vault.putSecret("early", planted("early"), { nbf: NOW() + 3600 });
    az.vault.putSecret("plain", planted("plain"));
    const p = make();
    const r = by(
      await p.fetch(
        [
          { name: "ok", path: "ok" },
          { name: "missing", path: "missing" },
          { name: "denied", path: "denied" },
          { name: "disabled", path: "disabled" },
          { name: "expired", path: "expired" },
          { name: "expired-held", path: "expired", cachedVersion: expiredVersion },
          { name: "early", path: "early" },
          { name: "badname", path: "db_password" },
          { name: "badversion", path: "ok", version: "7" },
          { name: "nokey", path: "plain", key: "password" },
          { name: "noversion", path: "ok", version: "0123456789abcdef0123456789abcdef" },
        ],
        never(),
      ),
    );
    assert.equal(text(r.get("ok")), ok);
    const err = (n: string) => failure(r.get(n));
    for (const n of ["missing", "denied", "disabled", "expired", "expired-held", "early", "badname", "badversion", "nokey", "noversion"])
      assert.equal(err(n).kind, "permanent", n);
    assert.equal(err("missing").message, "azure-key-vault missing: not found (SecretNotFound, HTTP 404)");
    assert.equal(err("noversion").message, "azure-key-vault ok/0123456789abcdef0123456789abcdef: not found (SecretNotFound, HTTP 404)");
    assert.match(err("denied").message, /^azure-key-vault denied: access denied \(Forbidden\/ForbiddenByRbac, HTTP 403\); grant the identity get on secrets/);
    assert.equal(
      err("disabled").message,
      "azure-key-vault disabled: the secret is disabled (Forbidden/SecretDisabled, HTTP 403); enable it or pin another version",
    );
    assert.match(err("expired").message, new RegExp(`^azure-key-vault expired: version ${expiredVersion} expired at \\d{4}-\\d\\d-\\d\\dT[\\d:.]+Z \\(exp\\)`));
    assert.match(err("expired-held").message, /expired at/, "an expired version is an error even when it is the one held");
    assert.match(err("early").message, /is not valid before \d{4}-.*\(nbf\)$/);
    assert.match(err("badname").message, /not a Key Vault secret name/);
    assert.match(err("badversion").message, /version must be a secret version id \(32 hex digits\)/);
    assert.match(err("nokey").message, /key "password" requested but the value is neither a JSON object nor KEY=VALUE lines/);
    assert.equal(az.vault.count("vault.get"), 8, "a bad name or version is not sent; the two names of `expired` share one read");
    assert.equal(text((await p.fetch([{ name: "ok", path: "ok" }], never()))[0]), ok);
  });

  test("answers that are not a secret bundle (garbage, no value, cut off, another version) are rejected for that secret, never returned as a value", async (t) => {
    const { az, make } = await setup(t);
    const ok = planted("ok");
    const v = az.vault.putSecret("s", ok);
    const p = make();
    assert.equal(text((await p.fetch([{ name: "s", path: "s" }], never()))[0]), ok);
    for (const fault of ["garbage", "malformed", "truncated", "wrong-version"] as const) {
      az.vault.fail(fault, { times: 1 });
      const res = await p.fetch([{ name: "s", path: "s", version: fault === "wrong-version" ? v : undefined }], never()).then(
        (rs) => failure(rs[0]),
        (e) => e as { kind: string; message: string },
      );
      assertNoLeaks(res.message, `${fault} error`);
      assert.equal(res.kind, "transient", fault);
      assert.match(
        res.message,
        fault === "malformed"
          ? /the answer has no value; rejected/
          : fault === "wrong-version"
            ? /the answer is for s\/[0-9a-f]{32}, not what was asked; rejected/
            : /could not be read|connection broke/,
        fault,
      );
    }
    assert.equal(text((await p.fetch([{ name: "s", path: "s" }], never()))[0]), ok);
  });

  test("outages: throttling (Retry-After), 5xx, a hung call, the vault gone are thrown as transient; Entra down with a token held does not matter; Entra down, throttling or garbage without one is transient", async (t) => {
    const { az, make } = await setup(t);
    az.vault.putSecret("a", planted("a"));
    az.vault.putSecret("b", planted("b"));
    const p = make();
    const refs = [
      { name: "a", path: "a" },
      { name: "b", path: "b" },
    ];
    await p.fetch(refs, never());

    az.vault.retryAfter = 7;
    az.vault.fail("throttle");
    az.vault.resetCounts();
    const th = await thrown(p.fetch(refs, never()));
    assert.equal(th.kind, "transient");
    assert.equal(th.retryAfter, 7);
    assert.match(th.message, /^azure-key-vault a: throttled by Key Vault \(Throttled, HTTP 429\); backing off$/);
    assert.equal(az.vault.count("vault.get"), 1, "a throttled batch costs one request");
    az.vault.fail("error", { times: 1 });
    assert.match((await thrown(p.fetch(refs, never()))).message, /Key Vault answered InternalServerError \(HTTP 500\)/);
    az.vault.fail("unavailable", { times: 1 });
    const un = await thrown(p.fetch(refs, never()));
    assert.match(un.message, /ServiceUnavailable \(HTTP 503\)/);
    assert.equal(un.retryAfter, 7);
    az.vault.fail("hang", { times: 1 });
    const ac = new AbortController();
    setTimeout(() => ac.abort(), 300);
    const hung = await thrown(p.fetch(refs, ac.signal));
    assert.equal(hung.kind, "transient");
    assert.match(hung.message, /abandoned \(sync\.timeout or shutdown\)/);
    az.vault.heal();
    await az.vault.goAway();
    assert.match((await thrown(p.fetch(refs, never()))).message, /Key Vault unreachable or the connection broke \(ECONNREFUSED\)/);
    await az.vault.comeBack();

    // The token is held: Entra being down changes nothing until it expires.
    await az.entra.goAway();
    assert.equal((await p.fetch(refs, never())).filter((r) => r.ok).length, 2);
    // A new provider has no token yet.
    const fresh = make();
    const down = await thrown(fresh.fetch(refs, never()));
    assert.equal(down.kind, "transient");
    assert.match(down.message, /token endpoint 127\.0\.0\.1:\d+ unreachable or the connection broke \(ECONNREFUSED\)/);
    await az.entra.comeBack();
    az.entra.retryAfter = 9;
    az.entra.fail("throttle", { times: 1 });
    const et = await thrown(make().fetch(refs, never()));
    assert.equal(et.kind, "transient");
    assert.equal(et.retryAfter, 9);
    for (const fault of ["error", "unavailable", "garbage"] as const) {
      az.entra.fail(fault, { times: 1 });
      const ee = await thrown(make().fetch(refs, never()));
      assert.equal(ee.kind, "transient", fault);
      assert.match(ee.message, fault === "garbage" ? /answered HTTP 200 with no usable token/ : /token endpoint 127\.0\.0\.1:\d+ answered HTTP 50[03]/, fault);
    }
    assert.equal((await make().fetch(refs, never())).filter((r) => r.ok).length, 2, "healed");
  });

  test("tls.ca_file reaches the vault and the token endpoint; without it, or with another CA, both are refused", async (t) => {
    const { az, make } = await setup(t);
    az.vault.putSecret("a", planted("a"));
    const ref = [{ name: "a", path: "a" }];
    const none = await thrown(make(undefined, { tls: undefined }).fetch(ref, never()));
    assert.equal(none.kind, "transient");
    assert.match(
      none.message,
      /^azure-key-vault a: Key Vault's TLS certificate is not trusted \((UNABLE_TO_VERIFY_LEAF_SIGNATURE|SELF_SIGNED_CERT_IN_CHAIN)\); check tls\.ca_file$/,
    );
    const other = await thrown(make(undefined, { tls: { ca_file: az.certs.otherCaFile } }).fetch(ref, never()));
    assert.match(other.message, /TLS certificate is not trusted/);
    assert.equal(az.vault.total(), 0);
    assert.equal(az.entra.count("entra.token"), 0);
    // The vault trusted through its own CA, Entra not: the token request is refused on TLS.
    const split = new FakeAzure(path.join(tmpDir(t), "split"));
    await split.start();
    t.after(() => split.stop());
    const app = split.entra.addSecretApp();
    const f = path.join(split.dir, "cs");
    fs.writeFileSync(f, app.secret);
    az.vault.resetCounts();
    const e = await thrown(
      make({ method: "client_secret", tenant_id: az.entra.tenant, client_id: app.clientId, client_secret_file: f, authority_host: split.entra.url }).fetch(
        ref,
        never(),
      ),
    );
    assert.equal(e.kind, "transient");
    assert.match(
      e.message,
      /token endpoint 127\.0\.0\.1:\d+'s TLS certificate is not trusted \((UNABLE_TO_VERIFY_LEAF_SIGNATURE|SELF_SIGNED_CERT_IN_CHAIN)\); check tls\.ca_file/,
    );
    assert.equal(az.vault.count("vault.challenge"), 1, "the vault was reached");
  });

  test("a vault whose challenge names another resource than Key Vault gets no token", async (t) => {
    const { az, make } = await setup(t);
    az.vault.putSecret("a", planted("a"));
    az.vault.challengeResource = "https://management.azure.com";
    const e = await thrown(make().fetch([{ name: "a", path: "a" }], never()));
    assert.equal(e.kind, "auth");
    assert.match(
      e.message,
      /the vault's challenge asks for a token for "https:\/\/management\.azure\.com\/\.default", which is not a Key Vault resource; refused/,
    );
    assert.equal(az.entra.count("entra.token"), 0);
  });

  test("at trace level the SDK's own lines (requests, MSAL) are JSON lines of our log, and hold no value, secret or token", async (t) => {
    const { az, make, logs } = await setup(t, { level: "trace" });
    const v = planted("traced");
    az.vault.putSecret("a", v);
    assert.equal(text((await make().fetch([{ name: "a", path: "a" }], never()))[0]), v);
    const lines = logs()
      .trim()
      .split("\n")
      .map((l) => JSON.parse(l) as { sdk?: string; msg: string });
    const sdk = lines.filter((l) => l.sdk !== undefined);
    assert.ok(
      sdk.some((l) => l.sdk === "azure:keyvault-secrets:info" && /Response status code: 200/.test(l.msg)),
      "request lines",
    );
    assert.ok(
      sdk.some((l) => l.sdk === "azure:identity:info" && /MSAL Node/.test(l.msg)),
      "MSAL lines",
    );
    assert.ok(sdk.every((l) => l.msg.length <= 400));
  });
});

/** The base64 lines of a PEM private key: none may appear in a log. */
function keyLines(pem: string): string[] {
  return pem.split("\n").filter((l) => l.length >= 40 && !l.startsWith("-----"));
}
