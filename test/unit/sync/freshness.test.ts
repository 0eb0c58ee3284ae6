import assert from "node:assert/strict";
import { describe, test } from "node:test";
import type { SecretConfig } from "../../../src/config/schema.js";
import type { SecretError, SecretMeta } from "../../../src/store/store.js";
import { Catalog } from "../../../src/sync/catalog.js";
import { StepDetector, type Now } from "../../../src/sync/clock.js";
import { Freshness } from "../../../src/sync/freshness.js";

const SYNC = { interval: 60_000, jitter: 0, max_stale: 0, concurrency: 1, timeout: 0, backoff_min: 1_000, backoff_max: 10_000 };
const SECRETS: Record<string, SecretConfig> = { a: { provider: "p", path: "a" }, b: { provider: "p", path: "b" }, tree: { provider: "p", path: "/t/*" } };
const TODAY = Date.parse("2026-12-02T00:00:00Z");

/** The two store queries freshness reads, over plain maps a test fills in. */
function fakeStore() {
  const metas = new Map<string, SecretMeta>();
  const errors = new Map<string, SecretError>();
  return {
    metas,
    errors,
    meta: (n: string) => metas.get(n),
    secretError: (n: string) => errors.get(n),
    record(name: string, fetchedAt: number) {
      metas.set(name, { name, version: 1, sourceVersion: null, changedRev: 1, changedAt: fetchedAt, fetchedAt, held: null, origin: null, leased: false });
    },
  };
}

function setup() {
  const store = fakeStore();
  const catalog = new Catalog({ secrets: SECRETS, isHierarchy: (sc) => sc.path.endsWith("/*"), backend: () => "" });
  const fresh = new Freshness({ catalog, store, sync: SYNC });
  return { store, catalog, fresh };
}

/** A reading of both clocks: mono from process start, wall as the system says. */
const at = (mono: number, wall: number): Now => ({ mono, wall });

describe("Freshness: ages on the monotonic clock within a process", () => {
  test("a value confirmed in this process ages by the monotonic clock, whatever the wall clock does", () => {
    const { store, fresh } = setup();
    store.record("a", TODAY);
    fresh.confirm("a", 1_000);
    for (const wall of [TODAY, TODAY - 86_400_000, TODAY + 2 * 86_400_000, 0]) {
      assert.equal(fresh.age("a", at(6_000, wall)), 5_000, `wall ${wall}`);
      assert.equal(fresh.isStale("a", at(6_000, wall)), false);
    }
    assert.equal(fresh.isStale("a", at(1_000 + 60_001, 0)), true, "past interval + jitter + timeout");
  });

  test("fetched_at for display is the confirmation in today's wall clock (a step moves it with the clock)", () => {
    const { fresh } = setup();
    fresh.confirm("a", 1_000);
    assert.equal(fresh.confirmedAt("a", at(3_000, TODAY)), TODAY - 2_000);
    assert.equal(fresh.confirmedAt("a", at(3_000, TODAY + 86_400_000)), TODAY + 86_400_000 - 2_000);
  });

  test("fetched_at reads the same on every lookup, though the two clocks are never read at the same instant", () => {
    const { fresh } = setup();
    fresh.confirm("a", 1_000.25);
    const first = fresh.confirmedAt("a", at(3_000.1, TODAY));
    for (const [mono, wall] of [
      [3_000.9, TODAY + 1],
      [4_000.2, TODAY + 1_000],
      [9_000.7, TODAY + 6_001],
    ]) {
      assert.equal(fresh.confirmedAt("a", at(mono!, wall!)), first);
    }
  });
});

describe("Freshness: values inherited from before a restart", () => {
  test("age is the wall clock since the recorded fetched_at", () => {
    const { store, fresh } = setup();
    store.record("a", TODAY - 10_000);
    assert.equal(fresh.age("a", at(5, TODAY)), 10_000);
    assert.equal(fresh.isStale("a", at(5, TODAY)), false);
    assert.equal(fresh.confirmedAt("a", at(5, TODAY)), TODAY - 10_000);
  });

  test("a fetched_at in the future (a clock that is behind: 1970 before NTP) is an unknown age: stale, never 0", () => {
    const { store, fresh } = setup();
    store.record("a", TODAY);
    const boot = at(5, 86_400_000); // 1970-01-02
    assert.equal(fresh.age("a", boot), undefined);
    assert.equal(fresh.isStale("a", boot), true);
    assert.equal(fresh.has("a"), true);
    assert.equal(fresh.confirmedAt("a", boot), TODAY, "displayed as recorded");
    fresh.confirm("a", 10);
    assert.equal(fresh.age("a", at(1_010, 86_401_000)), 1_000, "once confirmed, its age is known again");
    assert.equal(fresh.isStale("a", at(1_010, 86_401_000)), false);
  });

  test("never fetched: no age, stale", () => {
    const { fresh } = setup();
    assert.equal(fresh.has("a"), false);
    assert.equal(fresh.age("a", at(0, TODAY)), undefined);
    assert.equal(fresh.isStale("a", at(0, TODAY)), true);
  });
});

describe("Freshness: what makes a value stale besides age", () => {
  test("an error recorded after the confirmation; an error of the same batch is not 'after' (strict) but shown (non-strict)", () => {
    const { store, fresh } = setup();
    store.record("a", TODAY);
    fresh.confirm("a", 100);
    store.errors.set("a", { kind: "permanent", message: "m", at: TODAY });
    fresh.noteError("a", 100);
    assert.equal(fresh.isStale("a", at(200, TODAY)), false, "same batch");
    assert.equal(fresh.errorAfter("a", "a", false), true);
    fresh.noteError("a", 150);
    assert.equal(fresh.isStale("a", at(200, TODAY)), true);
    fresh.confirm("a", 300);
    store.errors.delete("a");
    assert.equal(fresh.isStale("a", at(301, TODAY)), false, "a success clears it");
  });

  test("an error recorded with a wall clock stepped back still counts (ordering is monotonic in-process)", () => {
    const { store, fresh } = setup();
    store.record("a", TODAY);
    fresh.confirm("a", 100);
    store.errors.set("a", { kind: "transient", message: "m", at: 0 }); // recorded at "1970"
    fresh.noteError("a", 200);
    assert.equal(fresh.isStale("a", at(250, 0)), true);
  });

  test("a parameter is stale when its hierarchy's walk failed after it was confirmed", () => {
    const { store, catalog, fresh } = setup();
    catalog.setMembers("tree", new Set(["tree/x"]));
    store.record("tree/x", TODAY);
    fresh.confirm("tree", 100);
    fresh.confirm("tree/x", 100);
    store.errors.set("tree", { kind: "permanent", message: "skipped some", at: TODAY });
    fresh.noteError("tree", 100);
    assert.equal(fresh.isStale("tree/x", at(200, TODAY)), false, "a walk that skipped others still confirmed it");
    fresh.noteError("tree", 150);
    assert.equal(fresh.isStale("tree/x", at(200, TODAY)), true);
  });

  test("the provider failing after the confirmation, and recovering", () => {
    const { store, fresh } = setup();
    store.record("a", TODAY);
    fresh.confirm("a", 100);
    fresh.providerFailed("p", { mono: 50 });
    assert.equal(fresh.isStale("a", at(200, TODAY)), false, "failed before");
    fresh.providerFailed("p", { mono: 150 });
    assert.equal(fresh.isStale("a", at(200, TODAY)), true);
    fresh.providerRecovered("p");
    assert.equal(fresh.isStale("a", at(200, TODAY)), false);
  });

  test("inherited value and inherited provider failure compare by the clock that recorded both", () => {
    const { store, fresh } = setup();
    store.record("a", TODAY - 5_000);
    store.record("b", TODAY - 1_000);
    fresh.providerFailed("p", { wall: TODAY - 3_000 });
    assert.equal(fresh.isStale("a", at(0, TODAY)), true, "fetched before the failure");
    assert.equal(fresh.isStale("b", at(0, TODAY)), false, "fetched after it");
    fresh.providerFailed("p", { mono: 1 });
    assert.equal(fresh.isStale("b", at(2, TODAY)), true, "a failure in this process postdates any inherited fetch");
  });

  test("a lease's end, on the monotonic clock", () => {
    const { store, fresh } = setup();
    store.record("a", TODAY);
    fresh.confirm("a", 0);
    fresh.setExpiry("a", 1_000);
    assert.equal(fresh.isStale("a", at(999, TODAY)), false);
    assert.equal(fresh.isStale("a", at(1_000, TODAY - 86_400_000)), true);
    fresh.setExpiry("a", undefined);
    assert.equal(fresh.isStale("a", at(1_000, TODAY)), false);
  });
});

describe("StepDetector", () => {
  test("a step of more than 2 s between readings is reported once, with its sign; slewing is not", () => {
    const d = new StepDetector();
    assert.equal(d.check(at(0, TODAY)), undefined, "first reading");
    assert.equal(d.check(at(60_000, TODAY + 60_000 + 30)), undefined, "30 ms of slew in a minute");
    assert.equal(d.check(at(120_000, TODAY + 120_000 - 86_400_000)), -86_400_030);
    assert.equal(d.check(at(180_000, TODAY + 180_000 - 86_400_000)), undefined, "reported once");
    assert.equal(d.check(at(181_000, TODAY + 181_000 + 3_600_000)), 86_400_000 + 3_600_000);
  });
});
