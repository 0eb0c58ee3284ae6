import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { backoffDelay, jittered, resumeDelay, staleAfter } from "../../../src/sync/timing.js";

const fixed = (v: number) => () => v;
/** A deterministic sequence of "random" numbers in [0, 1). */
function sequence(values: readonly number[]): () => number {
  let i = 0;
  return () => values[i++ % values.length]!;
}

const MIN = 200;
const MAX = 60_000;

describe("backoffDelay: exponential, capped, equal jitter", () => {
  test("the ceiling doubles per failure from backoff_min (random = 1 gives the ceiling)", () => {
    const top = [1, 2, 3, 4, 5, 6].map((f) => backoffDelay(f, MIN, MAX, fixed(1)));
    assert.deepEqual(top, [200, 400, 800, 1600, 3200, 6400]);
  });

  test("capped at backoff_max, also after very many failures", () => {
    assert.equal(backoffDelay(10, MIN, MAX, fixed(1)), MAX); // 200 * 2^9 = 102400 > 60000
    assert.equal(backoffDelay(1_000, MIN, MAX, fixed(1)), MAX);
    assert.equal(backoffDelay(100_000, MIN, MAX, fixed(0.5)), 45_000);
    assert.ok(Number.isFinite(backoffDelay(Number.MAX_SAFE_INTEGER, MIN, MAX, fixed(1))));
  });

  test("zero or negative failure counts behave as the first failure", () => {
    assert.equal(backoffDelay(0, MIN, MAX, fixed(1)), MIN);
    assert.equal(backoffDelay(-3, MIN, MAX, fixed(1)), MIN);
  });

  test("jitter stays within [ceiling/2, ceiling] for any random in [0, 1)", () => {
    for (let f = 1; f <= 12; f++) {
      const ceiling = Math.min(MAX, MIN * 2 ** (f - 1));
      assert.equal(backoffDelay(f, MIN, MAX, fixed(0)), ceiling / 2, `failures ${f}, random 0`);
      for (const r of [0.001, 0.25, 0.5, 0.75, 0.999]) {
        const d = backoffDelay(f, MIN, MAX, fixed(r));
        assert.ok(d >= ceiling / 2 && d <= ceiling, `failures ${f}, random ${r}: ${d} not in [${ceiling / 2}, ${ceiling}]`);
        assert.equal(d, Math.round(ceiling / 2 + r * (ceiling / 2)));
      }
    }
  });

  test("the random source is what spreads a fleet: different draws, different delays", () => {
    const draws = Array.from({ length: 100 }, (_, i) => i / 100);
    const delays = new Set(draws.map((r) => backoffDelay(5, MIN, MAX, fixed(r))));
    assert.ok(delays.size >= 90, `only ${delays.size} distinct delays`);
  });
});

describe("jittered: interval spread uniformly over ±jitter", () => {
  test("bounds and midpoint", () => {
    assert.equal(jittered(60_000, 0.2, fixed(0)), 48_000);
    assert.equal(jittered(60_000, 0.2, fixed(0.5)), 60_000);
    assert.equal(jittered(60_000, 0.2, fixed(1)), 72_000);
    for (const r of [0.1, 0.3, 0.7, 0.9, 0.999]) {
      const v = jittered(60_000, 0.2, fixed(r));
      assert.ok(v >= 48_000 && v <= 72_000, `${r}: ${v}`);
    }
  });

  test("jitter 0 is the exact interval; jitter 1 spans (0, 2 * interval]", () => {
    for (const r of [0, 0.3, 0.99]) assert.equal(jittered(30_000, 0, fixed(r)), 30_000);
    assert.equal(jittered(30_000, 1, fixed(0)), 1, "never a zero delay");
    assert.equal(jittered(30_000, 1, fixed(1)), 60_000);
  });

  test("never less than 1 ms", () => {
    assert.equal(jittered(0, 0.2, fixed(0.5)), 1);
  });
});

describe("resumeDelay: after a restart", () => {
  const INTERVAL = 60 * 60_000; // 1h
  const NOW = 10_000_000_000;
  /** The due time resumeDelay gives for a value recorded at `fetchedAt`, with the clock at NOW. */
  const resumeDue = (fetchedAt: number, interval: number, jitter: number, now: number, rand: () => number) =>
    now + resumeDelay(fetchedAt > now ? undefined : now - fetchedAt, interval, jitter, rand);

  test("a secret whose refresh is still ahead stays on its (jittered) schedule", () => {
    const fetchedAt = NOW - 10 * 60_000;
    assert.equal(resumeDue(fetchedAt, INTERVAL, 0.2, NOW, fixed(0.5)), fetchedAt + INTERVAL);
    assert.equal(resumeDue(fetchedAt, INTERVAL, 0.2, NOW, fixed(0)), fetchedAt + 48 * 60_000);
  });

  test("overdue secrets are spread over a window of jitter * min(interval, 5m), never in the past", () => {
    const fetchedAt = NOW - 3 * INTERVAL;
    const window = 0.2 * 5 * 60_000; // 60 s
    const n = 200;
    // Each call draws twice (the jittered schedule, then the spread); feed it an even spread.
    const draws: number[] = [];
    for (let i = 0; i < n; i++) draws.push(0.5, i / n);
    const rand = sequence(draws);
    const due = Array.from({ length: n }, () => resumeDue(fetchedAt, INTERVAL, 0.2, NOW, rand));
    for (const d of due) assert.ok(d >= NOW && d <= NOW + window, `${d - NOW} ms outside [0, ${window}]`);
    const distinct = new Set(due);
    assert.ok(distinct.size >= n * 0.95, `only ${distinct.size} distinct due times for ${n} secrets`);
    const span = Math.max(...due) - Math.min(...due);
    assert.ok(span >= window * 0.9, `spread over ${span} ms, expected most of ${window} ms`);
    // Not bunched: every 6 s slice of the window gets some.
    const buckets = new Array(10).fill(0);
    for (const d of due) buckets[Math.min(9, Math.floor(((d - NOW) / window) * 10))]++;
    assert.ok(
      buckets.every((b) => b > 0),
      `buckets ${buckets.join(",")}`,
    );
  });

  test("for short intervals the window is jitter * interval", () => {
    const fetchedAt = NOW - 10 * 60_000;
    assert.equal(resumeDue(fetchedAt, 30_000, 0.2, NOW, sequence([0.5, 1])), NOW + 6_000);
    assert.equal(resumeDue(fetchedAt, 30_000, 0.2, NOW, sequence([0.5, 0])), NOW);
  });

  test("jitter 0: overdue secrets are due now", () => {
    assert.equal(resumeDue(NOW - 2 * INTERVAL, INTERVAL, 0, NOW, fixed(0.7)), NOW);
  });

  test("an unknown age (fetched_at in the future: the clock is behind) is overdue, spread like one, never due 'later' by the clock's error", () => {
    // A gateway that booted at 1970 over a cache filled in the present: before, it waited out the whole step.
    assert.equal(resumeDelay(undefined, INTERVAL, 0.2, fixed(1)), 60_000);
    assert.equal(resumeDelay(undefined, INTERVAL, 0.2, fixed(0)), 0);
    assert.equal(resumeDue(NOW + 365 * 86_400_000, INTERVAL, 0.2, NOW, fixed(0.5)), NOW + 30_000);
  });
});

describe("staleAfter", () => {
  test("the longest jittered interval plus the fetch timeout", () => {
    assert.equal(staleAfter(60_000, 0.2, 30_000), 72_000 + 30_000);
    assert.equal(staleAfter(1_000, 0, 0), 1_000);
    // A value is not stale before its latest possible refresh could have completed.
    for (const r of [0, 0.5, 0.999]) assert.ok(jittered(60_000, 0.2, fixed(r)) < staleAfter(60_000, 0.2, 30_000));
  });
});
