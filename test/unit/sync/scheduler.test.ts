// Every timing rule of the sync, on plain numbers: the Scheduler has no timer or clock of its own.
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { Scheduler } from "../../../src/sync/scheduler.js";
import { MIN_LEASE_REFRESH_MS } from "../../../src/sync/timing.js";

const SYNC = { interval: 60_000, jitter: 0.2, max_stale: 0, concurrency: 4, timeout: 5_000, backoff_min: 1_000, backoff_max: 16_000 };
const T = 1_000_000;

function make(random = () => 0.5, refresh: Record<string, number> = {}) {
  return new Scheduler({ sync: SYNC, random, refreshOf: (e) => refresh[e] ?? SYNC.interval });
}
const byProvider = (e: string) => (e.startsWith("b/") ? "b" : "a");

describe("Scheduler: resuming after a restart", () => {
  test("never fetched: due at once; fetched recently: on its jittered schedule; overdue or of unknown age: within the spread window", () => {
    const s = make();
    s.resume("a/new", T, false, undefined);
    s.resume("a/recent", T, true, 10_000);
    s.resume("a/old", T, true, 10 * 60_000);
    s.resume("a/unknown", T, true, undefined);
    assert.equal(s.dueAt("a/new"), T);
    assert.equal(s.dueAt("a/recent"), T + 50_000, "interval 60 s (random 0.5: no jitter), 10 s already gone");
    assert.equal(s.dueAt("a/old"), T + 6_000, "random 0.5 of jitter × interval (12 s)");
    assert.equal(s.dueAt("a/unknown"), T + 6_000, "an unknown age is overdue, never 'later by the clock's error'");
  });

  test("a value under a lease keeps the lease's schedule: 2/3 of what is left, at once (after the minimum) when it ran out", () => {
    const s = make();
    s.resume("a/lease", T, true, 1_000, T + 30_000);
    assert.equal(s.dueAt("a/lease"), T + 20_000);
    s.resume("a/gone", T, true, 1_000, T - 1);
    assert.equal(s.dueAt("a/gone"), T + MIN_LEASE_REFRESH_MS);
  });
});

describe("Scheduler: what is due, and backoff", () => {
  test("take() groups due entries by provider and marks them in flight; nothing is taken twice", () => {
    const s = make();
    for (const e of ["a/1", "a/2", "b/1"]) s.resume(e, T, false, undefined);
    s.resume("a/later", T, true, 1_000);
    const due = s.take(T, byProvider);
    assert.deepEqual(
      [...due.entries()].map(([p, l]) => [p, l.sort()]),
      [
        ["a", ["a/1", "a/2"]],
        ["b", ["b/1"]],
      ],
    );
    assert.equal(s.take(T, byProvider).size, 0, "in flight");
    assert.equal(s.nextWake(T), 59_000, "only a/later is waiting (interval minus its age)");
    s.landed(["a/1", "a/2", "b/1"]);
    assert.equal(s.nextWake(T), 0, "landed without a new due time: due again");
  });

  test("a provider failure backs off exponentially, at least Retry-After; its entries wait, another provider's do not", () => {
    const s = make(() => 1);
    s.resume("a/1", T, false, undefined);
    s.resume("b/1", T, false, undefined);
    s.take(T, byProvider);
    s.landed(["a/1", "b/1"]);
    const f1 = s.failed("a", ["a/1"], T);
    assert.deepEqual(f1, { failures: 1, nextAttempt: T + 1_000 });
    const f2 = s.failed("a", ["a/1"], T);
    assert.equal(f2.nextAttempt, T + 2_000);
    const f3 = s.failed("a", ["a/1"], T, 9_000);
    assert.equal(f3.nextAttempt, T + 9_000, "Retry-After when longer");
    s.trigger(["a/x"], T);
    // a/x forced: it goes out despite the backoff; a/1 waits.
    assert.deepEqual(s.take(T + 100, byProvider).get("a"), ["a/x"]);
    assert.equal(s.dueAt("a/1"), T + 9_000);
    for (let i = 0; i < 10; i++) s.failed("a", [], T);
    assert.ok(s.backoff("a").nextAttempt! <= T + SYNC.backoff_max, "capped at backoff_max");
  });

  test("a success ends the backoff and schedules the next fetch on the interval, or at 2/3 of a lease", () => {
    const s = make();
    s.resume("a/1", T, false, undefined);
    s.take(T, byProvider);
    s.failed("a", ["a/1"], T);
    s.succeeded("a", ["a/1", "a/l"], T + 5_000, (e) => (e === "a/l" ? T + 5_000 + 30_000 : undefined));
    assert.deepEqual(s.backoff("a"), { failures: 0, nextAttempt: undefined });
    assert.equal(s.dueAt("a/1"), T + 5_000 + 60_000);
    assert.equal(s.dueAt("a/l"), T + 5_000 + 20_000);
  });

  test("a refresh asked for while the entry is in flight survives the fetch's end: it stays due now", () => {
    const s = make();
    s.resume("a/1", T, false, undefined);
    s.take(T, byProvider);
    s.trigger(["a/1"], T + 10);
    s.succeeded("a", ["a/1"], T + 50, () => undefined);
    s.landed(["a/1"]);
    assert.equal(s.dueAt("a/1"), T + 10, "not pushed to the next interval");
    assert.deepEqual(s.take(T + 60, byProvider).get("a"), ["a/1"]);
  });

  test("a batch queued before its provider failed is held back to the retry; one queued after is not", () => {
    const s = make(() => 1);
    s.failed("a", [], T);
    assert.equal(s.holdBack("a", ["a/1"], T - 10, T + 10), true);
    assert.equal(s.dueAt("a/1"), T + 1_000);
    assert.equal(s.holdBack("a", ["a/2"], T + 5, T + 10), false, "queued after the failure");
    assert.equal(s.holdBack("a", ["a/3"], T - 10, T + 2_000), false, "the retry time has come");
    assert.equal(s.holdBack("b", ["b/1"], T - 10, T + 10), false, "another provider");
  });

  test("not recorded (data_dir full): a backoff of its own, the provider's untouched", () => {
    const s = make(() => 1);
    s.notRecorded(["a/1"], T);
    assert.equal(s.dueAt("a/1"), T + 1_000);
    s.notRecorded(["a/1"], T);
    assert.equal(s.dueAt("a/1"), T + 2_000);
    assert.deepEqual(s.backoff("a"), { failures: 0, nextAttempt: undefined });
    s.succeeded("a", ["a/1"], T, () => undefined);
    s.notRecorded(["a/1"], T);
    assert.equal(s.dueAt("a/1"), T + 1_000, "a success resets it");
  });

  test("a failure count recorded before a restart carries on; its wait does not", () => {
    const s = make(() => 1);
    s.inherit("a", 3);
    assert.deepEqual(s.backoff("a"), { failures: 3, nextAttempt: 0 });
    s.resume("a/1", T, true, 1_000_000);
    assert.equal(s.take(T + 60_000, byProvider).get("a")?.length, 1, "not held back at start");
    assert.equal(s.failed("a", ["a/1"], T).nextAttempt, T + 8_000, "the 4th failure in a row");
  });
});

describe("Scheduler: wakeups and clock steps", () => {
  test("nextWake is the earliest entry not in flight, capped at a minute; nothing scheduled: no wakeup", () => {
    const s = make();
    assert.equal(s.nextWake(T), undefined);
    s.resume("a/1", T, true, 0, undefined);
    assert.equal(s.nextWake(T), 60_000);
    s.resume("a/2", T, true, 0, T + 3 * 3_600_000);
    s.later(["a/3"], T);
    assert.equal(s.nextWake(T), 60_000);
    s.trigger(["a/3"], T);
    assert.equal(s.nextWake(T + 5), 0);
  });

  test("after a wall-clock step every entry is due within the spread window, never later than it was; in-flight ones untouched", () => {
    const draws = [0.1, 0.9, 0.5];
    let i = 0;
    const s = make(() => draws[i++ % draws.length]!);
    s.resume("a/1", T, true, 0);
    s.resume("a/2", T, true, 0);
    s.resume("a/soon", T, false, undefined);
    s.resume("a/busy", T, false, undefined);
    s.take(T, (e) => (e === "a/busy" ? "a" : "x"));
    s.landed(["a/1", "a/2", "a/soon"]);
    const before = s.dueAt("a/busy");
    s.respread(["a/1", "a/2", "a/soon", "a/busy"], T);
    for (const e of ["a/1", "a/2"]) assert.ok(s.dueAt(e)! <= T + 12_000, `${e} at ${s.dueAt(e)! - T}`);
    assert.equal(s.dueAt("a/soon"), T, "never later than it was");
    assert.equal(s.dueAt("a/busy"), before);
  });
});
