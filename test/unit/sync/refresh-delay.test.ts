import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { MIN_LEASE_REFRESH_MS, refreshDelay } from "../../../src/sync/timing.js";

const mid = () => 0.5; // jittered(interval) == interval
const NOW = 1_000_000;

describe("refreshDelay: jittered interval, or ~2/3 of a lease's remaining lifetime", () => {
  test("without an expiry: the jittered interval", () => {
    assert.equal(refreshDelay(300_000, 0.2, mid, NOW), 300_000);
    assert.equal(refreshDelay(300_000, 0.2, () => 0, NOW), 240_000);
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
