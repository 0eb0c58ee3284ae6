// The core operations in process, no daemon: a real store on a temp file, the file
// provider through a real sync engine, and each principal (a socket peer, a
// verified fleet command, the local operator) asking.
import assert from "node:assert/strict";
import fs from "node:fs";
import path from "node:path";
import { before, describe, test, type TestContext } from "node:test";
import type { SecretConfig } from "../../../src/config/schema.js";
import { Access } from "../../../src/core/access.js";
import { Core } from "../../../src/core/core.js";
import { OPERATOR, peer, type Principal } from "../../../src/core/principal.js";
import { SecretReader } from "../../../src/core/reader.js";
import { Envelope, KEK_BYTES } from "../../../src/crypto/envelope.js";
import { loadSodium, type Sodium } from "../../../src/crypto/sodium.js";
import { isSealcacheError } from "../../../src/errors.js";
import { createLogger } from "../../../src/log.js";
import { Policy, type Caller } from "../../../src/policy/policy.js";
import { create as fileProvider } from "../../../src/providers/file/provider.js";
import { SecretStore } from "../../../src/store/store.js";
import { SyncEngine } from "../../../src/sync/engine.js";
import { eventually } from "../../support/daemon.js";
import { tmpDir } from "../../support/tmp.js";

let sodium: Sodium;
before(async () => {
  sodium = await loadSodium();
});

const logger = createLogger({ level: "silent" });
const SYNC = { interval: 60_000, jitter: 0, max_stale: 0, concurrency: 2, timeout: 5_000, backoff_min: 100, backoff_max: 1_000 };
const AGENT: Caller = { uid: 1001, gid: 1001, pid: 10, groups: [] };
const ADMIN: Caller = { uid: 0, gid: 0, pid: 11, groups: [] };
const FLEET: Principal = { kind: "fleet", issuer: "fleet-ops", jti: "j-1" };

/** A core serving three file secrets: the agent may read kafka/*, root is admin. */
async function serving(t: TestContext) {
  const dir = tmpDir(t);
  const src = path.join(dir, "src");
  fs.mkdirSync(src);
  for (const [f, v] of [
    ["a", "kafka-a"],
    ["b", "kafka-b"],
    ["db", "db-pw"],
  ] as const)
    fs.writeFileSync(path.join(src, f), v);
  const secrets: Record<string, SecretConfig> = {
    "kafka/a": { provider: "f", path: "a" },
    "kafka/b": { provider: "f", path: "b" },
    "db/pw": { provider: "f", path: "db" },
  };
  const store = new SecretStore({ file: path.join(dir, "cache.db"), envelope: new Envelope(sodium, sodium.randombytes_buf(KEK_BYTES)), logger });
  const provider = fileProvider({ name: "f", options: { type: "file", dir: src, max_bytes: 65536 } as never, logger });
  const sync = new SyncEngine({ store, secrets, providers: new Map([["f", { name: "f", type: "file", provider, inactive: undefined }]]), sync: SYNC, logger });
  const reader = new SecretReader({ store, sync, secrets, maxStale: 0 });
  const policy = new Policy(
    [
      { match: { uid: 1001 }, allow: ["kafka/*"], admin: false },
      { match: { uid: 0 }, allow: ["**"], admin: true },
    ],
    { uidOf: () => undefined, gidOf: () => undefined },
    0,
  );
  const core = new Core({ access: new Access(policy), logger, version: "test", secretNames: false });
  let rotations = 0;
  core.serve({ reader, sync, store, rotateKek: async () => ({ rewrapped: ++rotations, seal: "host" }) }, { type: "host", ok: true, detail: "", warnings: [] });
  sync.start();
  t.after(async () => {
    await sync.stop();
    store.close();
  });
  await eventually(() => store.meta("db/pw") !== undefined, 5_000, "first sync");
  return { core, store, src };
}

const code = (fn: () => unknown) => {
  try {
    fn();
  } catch (e) {
    return isSealcacheError(e) ? e.code : `not a SealcacheError: ${String(e)}`;
  }
  return "no error";
};
const text = (v: Uint8Array) => Buffer.from(v).toString("utf8");

describe("Core operations for each principal", () => {
  test("get: the policy decides for a peer; a fleet command reads nothing; the operator reads all", async (t) => {
    const { core } = await serving(t);
    const got = core.get(peer(AGENT), "kafka/a");
    assert.equal(text(got.value), "kafka-a");
    assert.equal(got.stale, false);
    assert.equal(
      code(() => core.get(peer(AGENT), "db/pw")),
      "forbidden",
    );
    assert.equal(
      code(() => core.get(peer(undefined), "kafka/a")),
      "forbidden",
      "an unidentified caller reads nothing",
    );
    assert.equal(
      code(() => core.get(FLEET, "kafka/a")),
      "forbidden",
    );
    assert.equal(text(core.get(OPERATOR, "db/pw").value), "db-pw");
    assert.equal(
      code(() => core.get(peer(ADMIN), "Bad/../name")),
      "bad_request",
    );
    assert.equal(
      code(() => core.get(peer(ADMIN), "nope/x")),
      "not_found",
    );
  });

  test("a refused read names the secret for the audit trail, and never decrypts it", async (t) => {
    const { core } = await serving(t);
    try {
      core.get(peer(AGENT), "db/pw");
      assert.fail("refused");
    } catch (e) {
      assert.ok(isSealcacheError(e));
      assert.equal(e.subject, "db/pw");
      assert.doesNotMatch(e.message, /db-pw/);
    }
  });

  test("list: only what the principal may read, never values", async (t) => {
    const { core } = await serving(t);
    assert.deepEqual(
      core.list(peer(AGENT), "").map((s) => s.name),
      ["kafka/a", "kafka/b"],
    );
    assert.deepEqual(
      core.list(peer(ADMIN), "db/").map((s) => s.name),
      ["db/pw"],
    );
    assert.deepEqual(core.list(FLEET, ""), []);
    assert.ok(!JSON.stringify(core.list(OPERATOR, "")).includes("kafka-a"));
    assert.equal(
      code(() => core.list(OPERATOR, "x".repeat(300))),
      "bad_request",
    );
  });

  test("refresh: admins, fleet commands and the operator; a peer without admin is refused; unknown names are not_found", async (t) => {
    const { core } = await serving(t);
    assert.equal(
      code(() => core.refresh(peer(AGENT), "all")),
      "forbidden",
    );
    assert.deepEqual(core.refresh(peer(ADMIN), ["kafka/a"]), { queued: ["kafka/a"] });
    assert.deepEqual(core.refresh(FLEET, "all").queued.sort(), ["db/pw", "kafka/a", "kafka/b"]);
    assert.equal(core.refresh(OPERATOR, ["db/pw"]).queued.length, 1);
    assert.equal(
      code(() => core.refresh(peer(ADMIN), ["nope/x"])),
      "not_found",
    );
  });

  test("rotate-kek and audit: not for the fleet channel; the audit trail records who asked", async (t) => {
    const { core, store } = await serving(t);
    await assert.rejects(
      core.rotateKek(FLEET),
      (e: unknown) => isSealcacheError(e) && e.code === "forbidden" && /carries refresh and revoke only/.test(e.message),
    );
    await assert.rejects(core.rotateKek(peer(AGENT)), (e: unknown) => isSealcacheError(e) && e.code === "forbidden");
    assert.deepEqual(await core.rotateKek(peer(ADMIN)), { rewrapped: 1, seal: "host" });
    assert.equal(
      code(() => core.audit(FLEET, { since: undefined, name: undefined, limit: 10 })),
      "forbidden",
    );
    core.record(FLEET, { route: "fleet:refresh", name: null, status: 200, code: "ok" });
    store.audit.flush();
    const rows = core.audit(OPERATOR, { since: undefined, name: undefined, limit: 10 });
    assert.ok(
      rows.some((r) => r.principal === "fleet:fleet-ops:j-1" && r.route === "fleet:refresh"),
      JSON.stringify(rows),
    );
  });

  test("import: admins and the operator; not a peer without admin nor the fleet; a provider's name, an empty value, a bad name refused", async (t) => {
    const { core } = await serving(t);
    const tok = (v: string) => Buffer.from(v);
    assert.equal(
      code(() => core.importSecret(peer(AGENT), "boot/t", tok("t-1"))),
      "forbidden",
    );
    assert.equal(
      code(() => core.importSecret(FLEET, "boot/t", tok("t-1"))),
      "forbidden",
    );
    assert.deepEqual(core.importSecret(peer(ADMIN), "boot/t", tok("t-1")), { name: "boot/t", version: 1 });
    assert.equal(text(core.get(peer(ADMIN), "boot/t").value), "t-1");
    assert.deepEqual(core.importSecret(OPERATOR, "boot/t", tok("t-2")), { name: "boot/t", version: 2 });
    assert.equal(text(core.get(OPERATOR, "boot/t").value), "t-2");
    assert.equal(core.list(OPERATOR, "boot/").find((e) => e.name === "boot/t")?.provider, "imported");
    assert.throws(
      () => core.importSecret(OPERATOR, "kafka/a", tok("x")),
      (e: unknown) => isSealcacheError(e) && e.code === "bad_request" && /is served by provider f/.test(e.message),
    );
    assert.equal(text(core.get(OPERATOR, "kafka/a").value), "kafka-a", "the provider's value is untouched");
    assert.equal(
      code(() => core.importSecret(OPERATOR, "boot/empty", tok(""))),
      "bad_request",
    );
    assert.equal(
      code(() => core.importSecret(OPERATOR, "../boot", tok("x"))),
      "bad_request",
    );
  });

  test("revoke: admins, the fleet and the operator; a peer without admin is refused; a revoked name answers `revoked`; all rotates the key", async (t) => {
    const { core } = await serving(t);
    core.importSecret(OPERATOR, "boot/t", Buffer.from("t-1"));
    await assert.rejects(core.revoke(peer(AGENT), ["kafka/a"]), (e: unknown) => isSealcacheError(e) && e.code === "forbidden");
    assert.equal(text(core.get(peer(AGENT), "kafka/a").value), "kafka-a", "a refused revoke shreds nothing");
    await assert.rejects(core.revoke(peer(ADMIN), ["nope/x"]), (e: unknown) => isSealcacheError(e) && e.code === "not_found");
    assert.deepEqual(await core.revoke(FLEET, ["kafka/a"]), { revoked: ["kafka/a"] });
    assert.equal(
      code(() => core.get(peer(AGENT), "kafka/a")),
      "revoked",
    );
    assert.equal(text(core.get(peer(AGENT), "kafka/b").value), "kafka-b", "only the named secret");
    assert.deepEqual(await core.revoke(peer(ADMIN), ["boot/t"]), { revoked: ["boot/t"] });
    assert.equal(
      code(() => core.get(OPERATOR, "boot/t")),
      "revoked",
    );
    const all = await core.revoke(OPERATOR, "all");
    assert.deepEqual(all.revoked, ["db/pw", "kafka/a", "kafka/b"]);
    assert.equal(
      code(() => core.get(OPERATOR, "db/pw")),
      "revoked",
    );
    assert.deepEqual(await core.rotateKek(OPERATOR), { rewrapped: 2, seal: "host" }, "revoke all rotated the key once before");
  });

  test("watch: wakes on a change of a named secret; forbidden names are refused before anything waits", async (t) => {
    const { core, src } = await serving(t);
    const first = await core.watch(peer(AGENT), { names: ["kafka/a"], since: undefined, timeoutMs: 1_000 }, new AbortController().signal);
    assert.ok(first);
    await assert.rejects(
      core.watch(peer(AGENT), { names: ["kafka/a", "db/pw"], since: first.revision, timeoutMs: 1_000 }, new AbortController().signal),
      (e: unknown) => isSealcacheError(e) && e.code === "forbidden" && e.subject === "db/pw",
    );
    const waiting = core.watch(peer(AGENT), { names: ["kafka/a"], since: first.revision, timeoutMs: 10_000 }, new AbortController().signal);
    fs.writeFileSync(path.join(src, "a"), "kafka-a-2");
    core.refresh(OPERATOR, ["kafka/a"]);
    const woke = await waiting;
    assert.deepEqual(woke?.changed, ["kafka/a"]);
    const timedOut = await core.watch(peer(AGENT), { names: ["kafka/b"], since: woke!.revision, timeoutMs: 50 }, new AbortController().signal);
    assert.equal(timedOut, undefined);
  });
});

describe("Core states", () => {
  test("unsealing, then sealed with a reason, then stopping: operations answer `sealed`, health says which", () => {
    const policy = new Policy(undefined, { uidOf: () => undefined, gidOf: () => undefined }, 0);
    const core = new Core({ access: new Access(policy), logger, version: "test", secretNames: false });
    assert.equal(core.state, "unsealing");
    assert.equal((core.health().body as { status: string }).status, "unsealing");
    assert.equal(
      code(() => core.get(OPERATOR, "a/b")),
      "sealed",
    );
    core.sealed("the TPM is in lockout", undefined);
    assert.equal(core.state, "sealed");
    const h = core.health();
    assert.equal(h.ok, false);
    assert.deepEqual([(h.body as { status: string }).status, (h.body as { sealed_reason: string }).sealed_reason], ["sealed", "the TPM is in lockout"]);
    core.stopping();
    assert.equal(
      code(() => core.list(OPERATOR, "")),
      "sealed",
    );
    assert.equal((core.health().body as { status: string }).status, "stopping");
  });
});
