// The bench's end-of-run table and its number formatting.
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { fmt, formatTable, sig3, type SummaryRow } from "../../../bench/support/summary.js";

describe("summary table", () => {
  test("one row per figure: 10k and 100k cells, a floor shared by both shown once, per-size targets, met per size", () => {
    const rows: SummaryRow[] = [
      {
        figure: "cold start",
        cells: { "10k": "250 ms", "100k": "1800 ms" },
        floors: { "10k": "90 ms", "100k": "90 ms" },
        target: "10k <= 300 ms; 100k <= 1000 ms",
        met: { "10k": true, "100k": false },
      },
      {
        figure: "CPU per lookup",
        cells: { "10k": "50 µs", "100k": "60 µs" },
        floors: { "10k": "12 µs", "100k": "13 µs" },
        target: "<= 2x bare",
        met: { "10k": false, "100k": false },
      },
      { figure: "idle CPU", cells: { "1k": "0.02%" }, floors: { "1k": "0.001%" }, target: "<= 0.05%", met: { "1k": true } },
      { figure: "spawn to socket", cells: { "10k": "40 ms" }, floors: {}, target: "", met: {} },
    ];
    const lines = formatTable(rows).split("\n");
    assert.equal(lines.length, 2 + rows.length);
    const cols = (i: number) => lines[i]!.split(" | ").map((c) => c.trim());
    assert.deepEqual(cols(0), ["figure", "10k", "100k", "floor (bare node)", "target", "met?"]);
    assert.match(lines[1]!, /^-+(-\|-+)+$/);
    assert.deepEqual(cols(2), ["cold start", "250 ms", "1800 ms", "90 ms", "10k <= 300 ms; 100k <= 1000 ms", "10k met, 100k MISSED"]);
    assert.deepEqual(cols(3), ["CPU per lookup", "50 µs", "60 µs", "10k: 12 µs; 100k: 13 µs", "<= 2x bare", "MISSED"]);
    assert.deepEqual(cols(4), ["idle CPU", "1k: 0.02%", "", "0.001%", "<= 0.05%", "met"], "a 1,000-secret figure is labelled, never read as 10k");
    assert.deepEqual(cols(5), ["spawn to socket", "40 ms"], "no floor, target or verdict: trailing cells empty");
    const bars = lines.map((l) => [...l.matchAll(/ \| /g)].map((m) => m.index));
    assert.deepEqual(bars[2]!.slice(0, 3), bars[0]!.slice(0, 3), "columns line up");
  });
});

describe("number formatting", () => {
  test("three significant digits without exponents, and the unit", () => {
    assert.deepEqual([0.0523, 5.234, 52.34, 523.4, 5234, 0, -1.234].map(sig3), ["0.0523", "5.23", "52.3", "523", "5234", "0", "-1.23"]);
    assert.equal(sig3(0.00001234), "0.000012", "at most 6 decimals");
    assert.equal(sig3(NaN), "NaN");
    assert.equal(fmt(54.27, "us"), "54.3 µs");
    assert.equal(fmt(4.541, "x"), "4.54x");
    assert.equal(fmt(0.0712, "%"), "0.0712%");
    assert.equal(fmt(108.4, "MB"), "108 MB");
  });
});
