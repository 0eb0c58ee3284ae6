import assert from "node:assert/strict";
import { test } from "node:test";
import { ConnectionCounts, RateLimiter, Throttle } from "../../../src/server/limits.js";

test("token bucket per uid: a burst, then the steady rate, with a Retry-After in whole seconds", () => {
  let now = 0;
  const r = new RateLimiter({ rps: 10, burst: 5, now: () => now });
  for (let i = 0; i < 5; i++) assert.equal(r.take(1000), 0, `burst request ${i}`);
  assert.equal(r.take(1000), 1, "the bucket is empty: retry after 1 s");
  assert.equal(r.take(2000), 0, "another uid has its own bucket");
  now += 100; // one token back at 10/s
  assert.equal(r.take(1000), 0);
  assert.equal(r.take(1000), 1);
  now += 10_000;
  for (let i = 0; i < 5; i++) assert.equal(r.take(1000), 0, "refilled to the burst, not beyond");
  assert.ok(r.take(1000) > 0);
  const slow = new RateLimiter({ rps: 0.1, burst: 1, now: () => now });
  assert.equal(slow.take(1), 0);
  assert.equal(slow.take(1), 10, "at 0.1/s the next token is 10 s away");
});

test("wait() says what take() would, without taking: asked at accept for a uid's new connection", () => {
  let now = 0;
  const r = new RateLimiter({ rps: 10, burst: 2, now: () => now });
  assert.equal(r.wait(1000), 0, "a uid never seen has a full bucket");
  for (let i = 0; i < 5; i++) assert.equal(r.wait(1000), 0, "asking takes nothing");
  r.take(1000);
  r.take(1000);
  assert.equal(r.wait(1000), 1, "empty: refused, retry after 1 s");
  assert.equal(r.take(1000), 1, "and take() agrees");
  now += 100;
  assert.equal(r.wait(1000), 0, "a token is back");
  assert.equal(r.take(1000), 0, "still there: wait() did not take it");
  assert.equal(r.wait(2000), 0, "other uids are not affected");
});

test("many uids: idle full buckets are forgotten, active ones kept", () => {
  const now = 0;
  const r = new RateLimiter({ rps: 1, burst: 2, now: () => now });
  r.take(1);
  r.take(1);
  r.take(1); // empty now
  for (let uid = 2; uid < 5000; uid++) r.take(uid);
  assert.ok(r.take(1) > 0, "uid 1 is still limited after the sweep");
});

test("throttle: the first event is reported, then one per window with the count held back", () => {
  let now = 0;
  const t = new Throttle({ windowMs: 10_000, now: () => now });
  assert.equal(t.due("a"), 0);
  assert.equal(t.due("a"), undefined);
  assert.equal(t.due("a"), undefined);
  assert.equal(t.due("b"), 0, "keys are separate");
  now += 10_000;
  assert.equal(t.due("a"), 2);
  assert.equal(t.due("a"), undefined);
});

test("connection counts per uid", () => {
  const c = new ConnectionCounts();
  c.add(5);
  c.add(5);
  c.add(undefined);
  assert.equal(c.total, 3);
  assert.equal(c.of(5), 2);
  c.remove(5);
  c.remove(undefined);
  assert.equal(c.of(5), 1);
  assert.equal(c.total, 1);
  c.remove(5);
  assert.equal(c.of(5), 0);
});
