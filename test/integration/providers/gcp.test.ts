import assert from "node:assert/strict";
import fs from "node:fs";
import path from "node:path";
import { describe, test, type TestContext } from "node:test";
import { createLogger } from "../../../src/log.js";
import type { Provider, SecretRef } from "../../../src/providers/provider.js";
import { create } from "../../../src/providers/gcp-secret-manager/provider.js";
import { SERVICE_AUD, CLOUD_PLATFORM } from "../../support/fake-gcp.js";
import { startGcp } from "../../support/fake-gcp-auth.js";
import { byName as by, failure, field, text, thrown } from "../../support/results.js";
import { assertNoLeaks, planted } from "../../support/planted.js";
import { tmpDir } from "../../support/tmp.js";

const never = () => new AbortController().signal;

/** The fakes, a service-account key file, and providers built on them; logs are checked for values and the private key. */
async function setup(t: TestContext) {
  const dir = tmpDir(t);
  const { gcp, metadata, sts, certs } = await startGcp(t, dir);
  const saFile = gcp.writeServiceAccount(dir);
  const saved = process.env.GCE_METADATA_HOST;
  process.env.GCE_METADATA_HOST = metadata.host;
  let logs = "";
  const logger = createLogger({ level: "debug", destination: { write: (s: string) => (logs += s) } });
  const providers: Provider[] = [];
  t.after(async () => {
    for (const p of providers) await p.close?.();
    if (saved === undefined) delete process.env.GCE_METADATA_HOST;
    else process.env.GCE_METADATA_HOST = saved;
    assertNoLeaks(logs, "gcp provider log", [...gcp.keyLines(), sts.subjectToken]);
  });
  const make = (extra: Record<string, unknown> = {}) => {
    const p = create({
      name: "gcp",
      options: {
        type: "gcp-secret-manager",
        endpoint: gcp.endpoint,
        tls: { ca_file: certs.caFile, server_name: "localhost" },
        credentials_file: saFile,
        concurrency: 4,
        ...extra,
      } as never,
      logger,
    });
    providers.push(p);
    return p;
  };
  const ref = (name: string, secret: string, more: Partial<SecretRef> = {}): SecretRef => ({
    name,
    path: `projects/${gcp.project}/secrets/${secret}`,
    ...more,
  });
  return { dir, gcp, metadata, sts, certs, saFile, make, ref, logs: () => logs };
}

describe("gcp-secret-manager (the official SDK over gRPC+TLS against a local Secret Manager)", () => {
  test("values and pins: latest, a version number, an alias, a JSON key, bytes; the self-signed JWT is verified; one AccessSecretVersion per secret", async (t) => {
    const { gcp, make, ref } = await setup(t);
    const v1 = planted("db-v1");
    const v2 = planted("db-v2");
    gcp.addVersion("db", JSON.stringify({ password: v1, user: "edge" }));
    gcp.addVersion("db", JSON.stringify({ password: v2, user: "edge" }));
    gcp.setAlias("db", "stable", 1);
    gcp.addVersion("cert", Buffer.from([0, 1, 2, 255]));
    const many: SecretRef[] = [];
    const vals: string[] = [];
    for (let i = 0; i < 30; i++) {
      vals.push(planted(`s${i}`));
      gcp.addVersion(`s${i}`, vals[i]!);
      many.push(ref(`s${i}`, `s${i}`));
    }
    const p = make({ project: gcp.project });
    const r = by(
      await p.fetch(
        [
          ref("latest", "db", { key: "password" }),
          ref("pinned", "db", { version: "1", key: "password" }),
          ref("alias", "db", { version: "stable", key: "password" }),
          ref("whole", "db"),
          ref("bin", "cert"),
          { name: "bare", path: "db", key: "user" },
          ...many,
        ],
        never(),
      ),
    );
    assert.equal(text(r.get("latest")), v2);
    assert.equal(field(r.get("latest"), "version"), gcp.versionName("db", 2), "the version is the answer's full name (with the project number)");
    assert.equal(text(r.get("pinned")), v1);
    assert.equal(field(r.get("pinned"), "version"), gcp.versionName("db", 1));
    assert.equal(text(r.get("alias")), v1, "an alias resolves to its version");
    assert.deepEqual(JSON.parse(text(r.get("whole"))), { password: v2, user: "edge" });
    const bin = r.get("bin")!;
    assert.ok(bin.ok && Buffer.from(bin.value!).equals(Buffer.from([0, 1, 2, 255])));
    assert.equal(text(r.get("bare")), "edge", "a bare secret id is taken under project");
    for (let i = 0; i < 30; i++) assert.equal(text(r.get(`s${i}`)), vals[i]);
    assert.equal(gcp.count(), 36, "one AccessSecretVersion per secret, no other call");
    assert.match(gcp.lastApiClient, /gax\/\S+ gapic\/6\.\d+\.\d+ gl-node\/20\.\S+ grpc\/1\./, "the calls came from the SDK over gRPC");
    assert.match(gcp.lastRequestParams, /^name=projects%2Ffleet%2Fsecrets%2Fs\d+%2Fversions%2Flatest$/, "with the SDK's routing header");
    assert.ok(gcp.seen.length === 36 && gcp.seen.every((s) => s.kind === "jwt"), "every call carried a self-signed JWT, no OAuth token was requested");
    const claims = gcp.seen[0]!.claims!;
    assert.equal(claims.iss, gcp.sa.email);
    assert.equal(
      claims.scope,
      CLOUD_PLATFORM,
      "on a non-default endpoint the SDK signs with the cloud-platform scope (on the default one, aud https://secretmanager.googleapis.com/)",
    );
    assert.equal(claims.aud, undefined);
    assert.equal(SERVICE_AUD, "https://secretmanager.googleapis.com/");

    // A refresh: a pinned number already held costs nothing; the rest is one call each, unchanged versions reported as such.
    gcp.resetCounts();
    const again = by(
      await p.fetch(
        [
          ref("pinned", "db", { version: "1", key: "password", cachedVersion: gcp.versionName("db", 1) }),
          ref("latest", "db", { key: "password", cachedVersion: gcp.versionName("db", 2) }),
          ref("alias", "db", { version: "stable", key: "password", cachedVersion: gcp.versionName("db", 1) }),
        ],
        never(),
      ),
    );
    for (const n of ["pinned", "latest", "alias"]) assert.equal(field(again.get(n), "unchanged"), true, n);
    assert.equal(field(again.get("latest"), "version"), gcp.versionName("db", 2));
    assert.equal(gcp.count(), 2, "the pinned number is not asked for again");

    // Rotation: a new version (and an alias moved) is read in full.
    const v3 = planted("db-v3");
    gcp.addVersion("db", JSON.stringify({ password: v3 }));
    gcp.setAlias("db", "stable", 3);
    const rotated = by(
      await p.fetch(
        [
          ref("latest", "db", { key: "password", cachedVersion: gcp.versionName("db", 2) }),
          ref("alias", "db", { version: "stable", key: "password", cachedVersion: gcp.versionName("db", 1) }),
        ],
        never(),
      ),
    );
    assert.equal(text(rotated.get("latest")), v3);
    assert.equal(field(rotated.get("latest"), "version"), gcp.versionName("db", 3));
    assert.equal(text(rotated.get("alias")), v3);
  });

  test("a batch runs at most `concurrency` calls at once, after one probe call", async (t) => {
    const { gcp, make, ref } = await setup(t);
    const refs: SecretRef[] = [];
    for (let i = 0; i < 20; i++) {
      gcp.addVersion(`s${i}`, planted(`s${i}`));
      refs.push(ref(`s${i}`, `s${i}`));
    }
    gcp.delayMs = 40;
    const r = by(await make({ concurrency: 3 }).fetch(refs, never()));
    for (let i = 0; i < 20; i++) assert.ok(text(r.get(`s${i}`)).startsWith(`PLANTED-s${i}-`));
    assert.equal(gcp.maxInFlight, 3);
  });

  test("entries that cannot name a version are refused per secret, without a call", async (t) => {
    const { gcp, make, ref } = await setup(t);
    const p = make();
    const r = by(
      await p.fetch(
        [
          { name: "bare", path: "db" },
          { name: "versioned", path: "projects/fleet/secrets/db/versions/3" },
          { name: "wrong", path: "secrets/db" },
          ref("badversion", "db", { version: "0" }),
          ref("badalias", "db", { version: "not an alias" }),
        ],
        never(),
      ),
    );
    assert.match(failure(r.get("bare")).message, /is a secret id alone: write projects\/PROJECT\/secrets\/db, or set project on the provider/);
    assert.match(failure(r.get("versioned")).message, /names a version: give the secret as path .* and the version as version/);
    assert.match(failure(r.get("wrong")).message, /is not a secret name: expected projects\/PROJECT\/secrets\/SECRET/);
    assert.match(failure(r.get("badversion")).message, /version "0" is neither a version number nor an alias/);
    assert.match(failure(r.get("badalias")).message, /neither a version number nor an alias/);
    for (const x of r.values()) assert.equal(failure(x).kind, "permanent");
    assert.equal(gcp.count(), 0);
  });

  test("per-secret errors: NOT_FOUND, PERMISSION_DENIED (which may mean not found), a disabled or destroyed version; the provider stays usable", async (t) => {
    const { gcp, make, ref } = await setup(t);
    gcp.addVersion("ok", planted("ok"));
    gcp.addVersion("secret", planted("denied"));
    gcp.denied.add("secret");
    gcp.addVersion("rot", planted("rot-v1"));
    gcp.addVersion("rot", planted("rot-v2"));
    gcp.setState("rot", 1, "DESTROYED");
    gcp.setState("rot", 2, "DISABLED");
    const p = make();
    const r = by(
      await p.fetch(
        [
          ref("ok", "ok"),
          ref("missing", "nope"),
          ref("noversion", "ok", { version: "9" }),
          ref("denied", "secret"),
          ref("disabled", "rot"),
          ref("destroyed", "rot", { version: "1" }),
          ref("noalias", "ok", { version: "canary" }),
        ],
        never(),
      ),
    );
    assert.ok(text(r.get("ok")).startsWith("PLANTED-ok"));
    assert.equal(
      failure(r.get("missing")).message,
      "gcp projects/fleet/secrets/nope/versions/latest: not found (NOT_FOUND): no such secret, or no such version or alias",
    );
    assert.match(failure(r.get("noversion")).message, /versions\/9: not found \(NOT_FOUND\)/);
    assert.match(failure(r.get("noalias")).message, /versions\/canary: not found/);
    const denied = failure(r.get("denied"));
    assert.match(
      denied.message,
      /permission denied \(PERMISSION_DENIED\) for service account edge-gateway@fleet\.iam\.gserviceaccount\.com: it needs secretmanager\.versions\.access .*answers this too for a secret that does not exist/,
    );
    assert.match(failure(r.get("disabled")).message, /the version is disabled \(FAILED_PRECONDITION\)/);
    assert.match(failure(r.get("destroyed")).message, /the version is destroyed \(FAILED_PRECONDITION\)/);
    for (const n of ["missing", "noversion", "noalias", "denied", "disabled", "destroyed"]) assert.equal(failure(r.get(n)).kind, "permanent", n);
    for (const n of ["missing", "denied", "disabled"])
      assert.doesNotMatch(failure(r.get(n)).message, /240170053851|Permission '|is in/, "the server's details are not copied");
  });

  test("answers that are not a usable value: a CRC-32C mismatch, garbage bytes, a malformed answer, INTERNAL: rejected per secret, never returned", async (t) => {
    const { gcp, make, ref } = await setup(t);
    const good = planted("good");
    gcp.addVersion("a", good);
    const p = make();
    for (const [fault, re] of [
      ["crc", /payload CRC-32C does not match data_crc32c \(corrupted in transit\); rejected, not stored/],
      ["garbage", /the answer could not be used \(INTERNAL\); rejected/],
      ["malformed", /the answer does not name a version of this secret; rejected/],
      ["internal", /the answer could not be used \(INTERNAL\); rejected/],
    ] as const) {
      gcp.fail(fault, { times: 1 });
      const e = failure((await p.fetch([ref("a", "a")], never()))[0]);
      assert.equal(e.kind, "transient", fault);
      assert.match(e.message, re, fault);
    }
    assert.equal(text((await p.fetch([ref("a", "a")], never()))[0]), good, "the next answer is used again");
  });

  test("throttling and outages are thrown (the whole provider backs off): one request per batch, no SDK retries, RetryInfo honoured", async (t) => {
    const { gcp, make, ref } = await setup(t);
    const refs: SecretRef[] = [];
    for (let i = 0; i < 20; i++) {
      gcp.addVersion(`s${i}`, planted(`s${i}`));
      refs.push(ref(`s${i}`, `s${i}`));
    }
    const p = make();
    gcp.fail("exhausted", { retryAfter: 7 });
    const th = await thrown(p.fetch(refs, never()));
    assert.equal(th.kind, "transient");
    assert.match(th.message, /throttled: quota exceeded \(RESOURCE_EXHAUSTED\); backing off/);
    assert.equal(th.retryAfter, 7, "google.rpc.RetryInfo's delay");
    assert.equal(gcp.count(), 1, "one probe call for a batch of 20, and the SDK did not retry it");
    gcp.fail("exhausted");
    assert.equal((await thrown(p.fetch(refs, never()))).retryAfter, undefined, "no RetryInfo: the engine's own backoff");
    for (const [fault, re] of [
      ["unavailable", /Secret Manager unreachable or unavailable \(UNAVAILABLE\)/],
      ["deadline", /no answer in time \(DEADLINE_EXCEEDED\)/],
    ] as const) {
      gcp.resetCounts();
      gcp.fail(fault);
      const e = await thrown(p.fetch(refs, never()));
      assert.equal(e.kind, "transient", fault);
      assert.match(e.message, re);
      assert.equal(gcp.count(), 1, `${fault}: one request, no SDK retry`);
    }
    gcp.heal();

    // Throttling is an answer: the connection is kept.
    gcp.fail("exhausted", { times: 1 });
    await thrown(p.fetch(refs, never()));
    assert.ok(text((await p.fetch(refs.slice(0, 1), never()))[0]));
    assert.equal(gcp.peers.at(-1), gcp.peers.at(-2), "the same connection after RESOURCE_EXHAUSTED");

    // A hung call is cancelled when the batch is abandoned, and the next fetch opens a new connection
    // (the old one may have died silently, as behind a NAT on a cellular link).
    gcp.fail("hang");
    const ac = new AbortController();
    setTimeout(() => ac.abort(), 300);
    assert.match((await thrown(p.fetch(refs, ac.signal))).message, /abandoned \(sync\.timeout or shutdown\)/);
    const hungOn = gcp.peers.at(-1);
    gcp.heal();
    assert.ok(text((await p.fetch(refs.slice(0, 1), never()))[0]));
    assert.notEqual(gcp.peers.at(-1), hungOn, "a new connection after an abandoned call");

    await gcp.goAway();
    const down = await thrown(p.fetch(refs, never()));
    assert.equal(down.kind, "transient");
    assert.match(down.message, /unreachable or unavailable \(UNAVAILABLE\)|cut before an answer \(CANCELLED\)/, "refused, or cut as the server went away");
    await gcp.comeBack();
    const back = by(await p.fetch(refs, never()));
    assert.ok(text(back.get("s0")).startsWith("PLANTED-s0"), "the channel reconnects");
  });

  test("UNAUTHENTICATED and a key the server does not know are auth errors of the provider; a fixed key file is read again", async (t) => {
    const { dir, gcp, make, ref, saFile } = await setup(t);
    gcp.addVersion("a", planted("a"));
    const p = make();
    gcp.fail("unauthenticated", { times: 1 });
    const e = await thrown(p.fetch([ref("a", "a")], never()));
    assert.equal(e.kind, "auth");
    assert.match(e.message, /Secret Manager refused the credentials of service account edge-gateway@fleet\.iam\.gserviceaccount\.com \(UNAUTHENTICATED\)/);

    // Another key with the same key id: the server's signature check refuses it.
    const good = fs.readFileSync(saFile, "utf8");
    const other = JSON.parse(good);
    other.private_key = (await import("node:crypto")).generateKeyPairSync("rsa", { modulusLength: 2048 }).privateKey.export({ type: "pkcs8", format: "pem" });
    const forged = path.join(dir, "forged.json");
    fs.writeFileSync(forged, JSON.stringify(other));
    gcp.resetCounts();
    const q = make({ credentials_file: forged });
    assert.equal((await thrown(q.fetch([ref("a", "a")], never()))).kind, "auth");
    assert.equal(gcp.seen.filter((s) => s.kind === "jwt").length, 0, "the forged JWT was not accepted");
    fs.writeFileSync(forged, good);
    assert.ok(text((await q.fetch([ref("a", "a")], never()))[0]).startsWith("PLANTED-a"), "after an auth error the file is read again");
  });

  test("credentials files that cannot work: missing, not JSON, another type, no usable private key; nothing of them is quoted", async (t) => {
    const { dir, gcp, make, ref, saFile } = await setup(t);
    gcp.addVersion("a", planted("a"));
    const key = JSON.parse(fs.readFileSync(saFile, "utf8"));
    const write = (name: string, body: string) => {
      const f = path.join(dir, name);
      fs.writeFileSync(f, body);
      return f;
    };
    const cases: [string, RegExp][] = [
      [path.join(dir, "absent.json"), /credentials_file .*absent\.json cannot be read \(ENOENT\)/],
      [write("pem.json", key.private_key), /is not JSON \(expected a service-account key or an external_account file\)/],
      [
        write("user.json", JSON.stringify({ type: "authorized_user", client_id: "x", client_secret: planted("user-secret"), refresh_token: "r" })),
        /has type "authorized_user"; expected a service_account key or an external_account/,
      ],
      [write("nokey.json", JSON.stringify({ ...key, private_key: undefined })), /a service_account key needs client_email and private_key/],
      [
        write("badkey.json", JSON.stringify({ ...key, private_key: "-----BEGIN PRIVATE KEY-----\n" + planted("notakey") + "\n-----END PRIVATE KEY-----\n" })),
        /private_key is not a PEM private key/,
      ],
    ];
    for (const [file, re] of cases) {
      const e = await thrown(make({ credentials_file: file }).fetch([ref("a", "a")], never()));
      assert.equal(e.kind, "auth", file);
      assert.match(e.message, re);
      for (const line of gcp.keyLines()) assert.ok(!e.message.includes(line), "no part of the private key in the message");
    }
    assert.equal(gcp.count(), 0, "no call without credentials");
  });

  test("tls.ca_file: a server whose certificate the CA did not sign is refused, with a TLS message", async (t) => {
    const { gcp, make, ref, certs } = await setup(t);
    gcp.addVersion("a", planted("a"));
    const e = await thrown(make({ tls: { ca_file: certs.otherCaFile, server_name: "localhost" } }).fetch([ref("a", "a")], never()));
    assert.equal(e.kind, "transient");
    assert.match(e.message, /TLS handshake with the endpoint failed \(UNAVAILABLE\); check endpoint and tls\.ca_file/);
    assert.equal(gcp.count(), 0);
    const byIp = make({ tls: { ca_file: certs.caFile } });
    assert.ok(
      text((await byIp.fetch([ref("a", "a")], never()))[0]).startsWith("PLANTED-a"),
      "without server_name the endpoint's IP is checked against the certificate",
    );
  });

  test("no credentials_file: the metadata server's token (Metadata-Flavor: Google), reused until it expires; its failures", async (t) => {
    const { gcp, metadata, make, ref } = await setup(t);
    gcp.addVersion("a", planted("a"));
    const p = make({ credentials_file: undefined });
    for (let i = 0; i < 3; i++) assert.ok(text((await p.fetch([ref("a", "a")], never()))[0]).startsWith("PLANTED-a"));
    assert.equal(metadata.count("token"), 1, "one token for three refreshes");
    assert.equal(metadata.params.get("token")![0]!.get("scopes"), CLOUD_PLATFORM);
    assert.ok(gcp.seen.every((s) => s.kind === "token" && gcp.accessTokens.get(s.token!) === metadata.serviceAccount));

    const fresh = () => make({ credentials_file: undefined });
    metadata.fail("error", 1);
    const down = await thrown(fresh().fetch([ref("a", "a")], never()));
    assert.deepEqual([down.kind, down.message], ["transient", `metadata server ${metadata.host}: token request answered HTTP 503`]);
    assert.equal(metadata.count("token"), 2, "no retry of the token request");
    metadata.fail("refuse", 1);
    const none = await thrown(fresh().fetch([ref("a", "a")], never()));
    assert.equal(none.kind, "auth");
    assert.match(none.message, /token request refused \(HTTP 404\); does this machine have a service account\?/);
    metadata.fail("noflavor", 1);
    assert.match((await thrown(fresh().fetch([ref("a", "a")], never()))).message, /lacks Metadata-Flavor: Google; not the metadata server; rejected/);
    await metadata.goAway();
    const gone = await thrown(fresh().fetch([ref("a", "a")], never()));
    assert.equal(gone.kind, "transient");
    assert.match(gone.message, /unreachable \(ECONNREFUSED\)/);
    assert.equal(gcp.count(), 3, "no Secret Manager call without a token");
  });

  test("external_account: the OIDC token file exchanged at STS (tls.ca_file trusted there too), with and without impersonation; refusals are auth errors, outages transient, no retries", async (t) => {
    const { dir, gcp, sts, make, ref } = await setup(t);
    gcp.addVersion("a", planted("a"));
    const plain = sts.writeExternalAccount(dir);
    const p = make({ credentials_file: plain.file });
    for (let i = 0; i < 2; i++) assert.ok(text((await p.fetch([ref("a", "a")], never()))[0]).startsWith("PLANTED-a"));
    assert.equal(sts.count("sts.token"), 1, "the federated token is reused");
    const form = sts.params.get("sts.token")![0]!;
    assert.equal(form.get("subject_token"), sts.subjectToken);
    assert.equal(form.get("scope"), CLOUD_PLATFORM);
    assert.ok(gcp.accessTokens.get(gcp.seen.at(-1)!.token!)!.startsWith("principal://iam.googleapis.com/projects/"));

    const imp = sts.writeExternalAccount(dir, { impersonate: true });
    const q = make({ credentials_file: imp.file });
    assert.ok(text((await q.fetch([ref("a", "a")], never()))[0]).startsWith("PLANTED-a"));
    assert.equal(sts.count("iam.generateAccessToken"), 1);
    assert.equal(gcp.accessTokens.get(gcp.seen.at(-1)!.token!), sts.impersonated, "the call ran as the impersonated service account");

    const fresh = () => make({ credentials_file: plain.file });
    sts.fail("refuse", 1);
    const refused = await thrown(fresh().fetch([ref("a", "a")], never()));
    assert.equal(refused.kind, "auth");
    assert.match(
      refused.message,
      /^gcp external_account projects\/240170053851\/locations\/global\/workloadIdentityPools\/edge\/providers\/gateways: token request refused \(HTTP 400 invalid_grant\)/,
    );
    const before = sts.count("sts.token");
    sts.fail("error", 1);
    const down = await thrown(fresh().fetch([ref("a", "a")], never()));
    assert.equal(down.kind, "transient");
    assert.match(down.message, /token endpoint answered HTTP 503/);
    assert.equal(sts.count("sts.token"), before + 1, "the library's retries are off");
    fs.rmSync(plain.tokenFile);
    const noToken = await thrown(fresh().fetch([ref("a", "a")], never()));
    assert.equal(noToken.kind, "auth");
    assert.match(noToken.message, /a file its credential_source names cannot be read \(ENOENT\)/);
  });

  test("close() closes the channel: a call in flight ends, later fetches are refused", async (t) => {
    const { gcp, make, ref } = await setup(t);
    gcp.addVersion("a", planted("a"));
    const p = make();
    await p.fetch([ref("a", "a")], never());
    gcp.fail("hang");
    const pending = p.fetch([ref("a", "a")], never()).then(
      () => "answered",
      (e: Error) => e.message,
    );
    await new Promise((r) => setTimeout(r, 100));
    await p.close!();
    assert.match(await pending, /abandoned|UNAVAILABLE/);
    assert.match((await thrown(p.fetch([ref("a", "a")], never()))).message, /closed/);
  });
});
