import assert from "node:assert/strict";
import { describe, test } from "node:test";
import type { SecretConfig } from "../../../src/config/schema.js";
import type { SecretMeta } from "../../../src/store/store.js";
import { Catalog } from "../../../src/sync/catalog.js";

const tree = (path: string): SecretConfig => ({ provider: "ssm", path });
const plain = (path: string, key?: string): SecretConfig => ({ provider: "ssm", path, ...(key ? { key } : {}) });

function catalog(secrets: Record<string, SecretConfig>, backend = "b1"): Catalog {
  return new Catalog({ secrets, isHierarchy: (sc) => /\/\*\*?$/.test(sc.path), backend: () => backend });
}

const meta = (name: string, held: string | null, origin: string | null): SecretMeta => ({
  name,
  version: 1,
  sourceVersion: "1",
  changedRev: 1,
  changedAt: 0,
  fetchedAt: 0,
  held,
  origin,
  leased: false,
});

describe("Catalog: the names served for configured secrets and hierarchies", () => {
  test("a parameter's name is ENTRY/relative lower-cased, checked against the secret-name rule", () => {
    const c = catalog({ "app/prod": tree("/app/prod/**") });
    assert.deepEqual(c.childName("app/prod", "db/Password"), { name: "app/prod/db/password" });
    assert.deepEqual(c.childName("app/prod", "API_KEY"), { name: "app/prod/api_key" });
    assert.match((c.childName("app/prod", "a".repeat(260)) as { skipped: string }).skipped, /longer than 256 bytes/);
    assert.match((c.childName("app/prod", "x/../y") as { skipped: string }).skipped, /must not contain empty, '.' or '..' path segments/);
    assert.match((c.childName("app/prod", "x y") as { skipped: string }).skipped, /must match/);
  });

  test("a configured name wins over a parameter of the same name; the most specific hierarchy claims a nested name", () => {
    const c = catalog({ app: tree("/app/**"), "app/prod": tree("/app/prod/**"), "app/prod/override": plain("/other") });
    assert.match((c.childName("app/prod", "override") as { skipped: string }).skipped, /is a configured secret, which wins/);
    assert.match((c.childName("app", "prod/x") as { skipped: string }).skipped, /belongs to the more specific hierarchy app\/prod/);
    assert.deepEqual(c.childName("app", "staging/x"), { name: "app/staging/x" });
    assert.equal(c.owner("app/prod/x"), "app/prod");
    assert.equal(c.owner("app/prod/override"), "app/prod/override");
    assert.equal(c.owner("elsewhere"), undefined);
  });

  test("kinds: a hierarchy is not a secret; names under it are pending until its first walk, then members or nothing", () => {
    const c = catalog({ "app/prod": tree("/app/prod/*"), "db/pw": plain("/db/pw") });
    assert.deepEqual(c.kind("db/pw"), { kind: "secret", entry: "db/pw" });
    assert.deepEqual(c.kind("app/prod"), { kind: "hierarchy", entry: "app/prod" });
    assert.deepEqual(c.kind("app/prod/anything"), { kind: "pending", entry: "app/prod" });
    assert.equal(c.kind("other"), undefined);
    assert.ok(c.isServable("app/prod/anything") && !c.isServable("app/prod"));
    c.setMembers("app/prod", new Set(["app/prod/a", "app/prod/b"]));
    assert.deepEqual(c.kind("app/prod/a"), { kind: "member", entry: "app/prod" });
    assert.equal(c.kind("app/prod/anything"), undefined, "walked: an unknown name does not exist");
    assert.deepEqual(c.listed(), ["app/prod", "app/prod/a", "app/prod/b", "db/pw"]);
    c.setMembers("app/prod", new Set(["app/prod/b"]));
    assert.equal(c.kind("app/prod/a"), undefined, "gone from the hierarchy: gone from the catalog");
    assert.deepEqual([...c.members("app/prod")], ["app/prod/b"]);
  });

  test("rows cached under a hierarchy are adopted only with its current fingerprint and a name it still claims", () => {
    const c = catalog({ "app/prod": tree("/app/prod/**"), "app/prod/pinned": plain("/x") });
    const fp = c.fingerprint("app/prod");
    c.adopt([
      meta("app/prod/a", fp, "app/prod"),
      meta("app/prod/b", "other-config", "app/prod"),
      meta("app/prod/pinned", fp, "app/prod"),
      meta("app/prod/c", fp, null),
      meta("gone/x", fp, "gone"),
    ]);
    assert.deepEqual([...c.members("app/prod")], ["app/prod/a"]);
    assert.equal(c.walked("app/prod"), false, "adopted members do not make the hierarchy walked");
    assert.deepEqual(c.kind("app/prod/z"), { kind: "pending", entry: "app/prod" });
  });

  test("the fingerprint changes with the provider, the backend it reads, the path, the key and the pinned version", () => {
    const base = catalog({ s: plain("/a", "k") }).fingerprint("s");
    assert.equal(catalog({ s: plain("/a", "k") }).fingerprint("s"), base, "stable");
    assert.notEqual(catalog({ s: plain("/a", "k") }, "b2").fingerprint("s"), base);
    assert.notEqual(catalog({ s: plain("/b", "k") }).fingerprint("s"), base);
    assert.notEqual(catalog({ s: plain("/a", "j") }).fingerprint("s"), base);
    assert.notEqual(catalog({ s: { ...plain("/a", "k"), version: "3" } }).fingerprint("s"), base);
    assert.notEqual(catalog({ s: { ...plain("/a", "k"), provider: "ssm2" } }).fingerprint("s"), base);
    assert.equal(catalog({ s: { ...plain("/a", "k"), refresh: 5000 } }).fingerprint("s"), base, "how often it is fetched does not matter");
  });
});
