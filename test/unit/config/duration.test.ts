import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { formatDuration, parseDuration } from "../../../src/config/duration.js";

describe("durations", () => {
  test("units, combinations, zero and bare seconds", () => {
    const cases: [string | number, number][] = [
      ["250ms", 250],
      ["30s", 30_000],
      ["5m", 300_000],
      ["1h", 3_600_000],
      ["2d", 172_800_000],
      ["1h30m", 5_400_000],
      ["1m30s500ms", 90_500],
      ["1.5s", 1_500],
      ["0", 0],
      ["0s", 0],
      ["90", 90_000],
      ["0.25", 250],
      [" 5m ", 300_000],
      [45, 45_000],
      [0.5, 500],
      [0, 0],
    ];
    for (const [input, ms] of cases) assert.equal(parseDuration(input), ms, JSON.stringify(input));
  });

  test("anything else is undefined, so the schema can name the key", () => {
    for (const input of ["", " ", "5 minutes", "5 m", "1h 30m", "5x", "m5", "-1s", "-5", "1e3s", "5M", "1h30", "s", ".5s", "ms", "5mm"]) {
      assert.equal(parseDuration(input), undefined, JSON.stringify(input));
    }
    for (const n of [-1, Number.NaN, Number.POSITIVE_INFINITY]) assert.equal(parseDuration(n), undefined, String(n));
  });

  test("formatDuration picks the largest whole unit and round-trips", () => {
    const cases: [number, string][] = [
      [0, "0"],
      [250, "250ms"],
      [1_500, "1500ms"],
      [30_000, "30s"],
      [300_000, "5m"],
      [5_400_000, "90m"],
      [7_200_000, "2h"],
    ];
    for (const [ms, text] of cases) {
      assert.equal(formatDuration(ms), text);
      assert.equal(parseDuration(text), ms);
    }
  });
});
