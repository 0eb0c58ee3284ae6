import assert from "node:assert/strict";
import { describe, test } from "node:test";
import type { HierarchyResult, Member } from "../../../src/providers/provider.js";
import { Catalog } from "../../../src/sync/catalog.js";
import { expandWalk, type Outcome } from "../../../src/sync/hierarchy.js";

const enc = new TextEncoder();
const outcome = (): Outcome => ({ items: [], removed: [], cleared: [], walks: new Map(), expiry: new Map() });
const member = (relative: string, v = "v"): Member => ({ relative, value: enc.encode(v), version: "1" });
const walk = (...members: Member[]): HierarchyResult => ({ name: "app", ok: true, members });

function catalog(): Catalog {
  return new Catalog({ secrets: { app: { provider: "ssm", path: "/app/**" } }, isHierarchy: () => true, backend: () => "" });
}

describe("expandWalk: one complete walk of a hierarchy", () => {
  test("values become members bound to the hierarchy; skipped ones are zeroed and named, the sixth on summed up", () => {
    const c = catalog();
    const out = outcome();
    const bad = Array.from({ length: 7 }, (_, i) => member(`x${i}/../y`, "secret-bytes"));
    const skipped = expandWalk(c, "ssm", "app", walk(member("Db/Pw", "pw"), ...bad), 5, out);
    assert.equal(skipped, 7);
    assert.ok(
      bad.every((m) => m.value.every((b) => b === 0)),
      "skipped values are zeroed",
    );
    const ok = out.items.filter((i) => i.ok);
    assert.deepEqual(
      ok.map((i) => [i.name, i.ok && i.origin, i.ok && i.held]),
      [["app/db/pw", "app", c.fingerprint("app")]],
    );
    const err = out.items.find((i) => !i.ok && i.name === "app");
    assert.ok(err && !err.ok);
    assert.match(err.message, /^ssm \/app\/\*\*: 7 parameters not served: x0\/\.\.\/y \(.*\); .*x4\/\.\.\/y \(.*\), and 2 more$/);
    assert.deepEqual([...out.walks.get("app")!], ["app/db/pw"]);
  });

  test("members a complete walk no longer finds are removed; an empty walk removes nothing and says so", () => {
    const c = catalog();
    c.setMembers("app", new Set(["app/a", "app/b"]));
    const out = outcome();
    expandWalk(c, "ssm", "app", walk(member("a")), 5, out);
    assert.deepEqual(out.removed, ["app/b"]);
    assert.deepEqual(out.cleared, ["app"]);
    const empty = outcome();
    expandWalk(c, "ssm", "app", walk(), 6, empty);
    assert.deepEqual([empty.removed, [...empty.walks.keys()]], [[], []]);
    assert.match((empty.items[0] as { message: string }).message, /holds no parameters now; the 2 cached are kept \(stale\)/);
  });

  test("a malformed member rejects the whole walk and zeroes every value", () => {
    const out = outcome();
    const good = member("a", "secret-bytes");
    expandWalk(catalog(), "ssm", "app", walk(good, { relative: 5 } as unknown as Member), 5, out);
    assert.deepEqual(
      out.items.map((i) => [i.name, i.ok]),
      [["app", false]],
    );
    assert.ok(good.value.every((b) => b === 0));
    assert.equal(out.walks.size, 0);
  });
});
