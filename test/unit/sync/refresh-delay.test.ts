import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { MIN_LEASE_REFRESH_MS, refreshDelay, resumeDelay, resumeLeaseDue } from "../../../src/sync/timing.js";

const mid = () => 0.5; // jittered(interval) == interval
const NOW = 1_000_000;

describe("refreshDelay: jittered interval, or ~2/3 of a lease's remaining lifetime", () => {
  test("without an expiry: the jittered interval", () => {
    assert.equal(refreshDelay(300_000, 0.2, mid, NOW), 300_000);
    assert.equal(
      refreshDelay(300_000, 0.2, () => 0, NOW),
      240_000,
    );
  });

  test("a lease ending before the interval: fetched at 2/3 of what is left", () => {
    assert.equal(refreshDelay(300_000, 0.2, mid, NOW, NOW + 60_000), 40_000);
    assert.equal(refreshDelay(300_000, 0.2, mid, NOW, NOW + 3_600_000), 300_000, "a long lease does not delay past the interval");
  });

  test("an expiry that is (nearly) past still waits a little, never zero or negative", () => {
    assert.equal(refreshDelay(300_000, 0.2, mid, NOW, NOW + 100), MIN_LEASE_REFRESH_MS);
    assert.equal(refreshDelay(300_000, 0.2, mid, NOW, NOW - 5_000), MIN_LEASE_REFRESH_MS);
  });
});

describe("resumeLeaseDue: a lease recorded in the cache keeps its schedule across a restart", () => {
  test("a lease still running is renewed at 2/3 of what is left, unless the refresh comes first", () => {
    const resumed = NOW + resumeDelay(10_000, 3_600_000, 0.2, mid); // refresh 1 h, fetched 10 s ago
    assert.equal(resumed, NOW - 10_000 + 3_600_000);
    assert.equal(resumeLeaseDue(resumed, NOW, NOW + 30_000), NOW + 20_000);
    assert.equal(resumeLeaseDue(NOW + 5_000, NOW, NOW + 30_000), NOW + 5_000, "an earlier refresh wins");
  });

  test("a lease that ran out while the daemon was down is replaced at once (after the minimum wait)", () => {
    assert.equal(resumeLeaseDue(NOW + 3_600_000, NOW, NOW - 60_000), NOW + MIN_LEASE_REFRESH_MS);
  });
});
