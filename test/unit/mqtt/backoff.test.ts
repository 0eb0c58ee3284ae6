import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { ReconnectBackoff } from "../../../src/mqtt/backoff.js";
import { seeded, simulateRestart } from "../../../bench/fleet-sim.js";

const DEFAULTS = { minMs: 1_000, maxMs: 300_000, spreadMs: 60_000, stableMs: 30_000 };

describe("reconnect backoff (full jitter, fake clock)", () => {
  test("a gateway that cannot connect: caps 1 s, 2 s, 4 s ... up to 5 min, each delay drawn from [0, cap)", () => {
    const b = new ReconnectBackoff({ ...DEFAULTS, random: () => 0.999999 });
    const caps: number[] = [];
    let now = 0;
    for (let i = 0; i < 12; i++) {
      caps.push(b.cap());
      const d = b.closed(now);
      assert.ok(d < caps.at(-1)! && d >= caps.at(-1)! * 0.999, `delay ${d} under cap ${caps.at(-1)}`);
      now += d;
    }
    assert.deepEqual(caps, [1_000, 2_000, 4_000, 8_000, 16_000, 32_000, 64_000, 128_000, 256_000, 300_000, 300_000, 300_000]);
  });

  test("full jitter: delays spread over the whole [0, cap), not clustered at the cap", () => {
    const random = seeded(7);
    const draws = Array.from({ length: 10_000 }, () => new ReconnectBackoff({ ...DEFAULTS, random }).closed(0));
    const mean = draws.reduce((a, b) => a + b, 0) / draws.length;
    assert.ok(Math.abs(mean - 500) < 20, `mean ${mean} ms for a 1 s cap`);
    assert.ok(Math.min(...draws) < 10 && Math.max(...draws) > 990);
  });

  test("an established connection lost: the first retry is spread over 60 s, then doubles; success after a stable connection resets", () => {
    const b = new ReconnectBackoff({ ...DEFAULTS, random: () => 0.5 });
    for (let i = 0; i < 5; i++) b.closed(0);
    assert.equal(b.cap(), 32_000, "five failures at start");
    b.connected(100_000);
    assert.equal(b.closed(100_000 + 30_000), 30_000, "up for 30 s, then lost: U[0, 60 s)");
    assert.equal(b.cap(), 120_000);
    b.closed(200_000);
    assert.equal(b.cap(), 240_000);
    b.closed(300_000);
    assert.equal(b.cap(), 300_000, "capped at max");
  });

  test("a flapping broker (accepts, then drops within stableMs) does not reset the streak", () => {
    const b = new ReconnectBackoff({ ...DEFAULTS, random: () => 0.5 });
    let now = 0;
    for (let i = 0; i < 6; i++) {
      b.connected(now);
      now += 5_000;
      b.closed(now);
    }
    assert.equal(b.cap(), 64_000, "six short-lived connections count as six failures");
  });

  test("spread 0: a lost connection starts over at min like any failure", () => {
    const b = new ReconnectBackoff({ ...DEFAULTS, spreadMs: 0, random: () => 0.5 });
    b.connected(0);
    assert.equal(b.closed(60_000), 500);
    assert.equal(b.cap(), 2_000);
  });

  test("1,000 gateways after a broker restart (fake clock): with the default spread the attempt rate stays within 2x its mean over the first minute; from 1 s it would not", () => {
    for (const downMs of [1_000, 10_000, 30_000]) {
      const spread = simulateRestart({ clients: 1_000, downMs, backoff: DEFAULTS });
      assert.ok(spread.peakOverMean <= 2, `down ${downMs} ms: peak/mean ${spread.peakOverMean.toFixed(2)}`);
      const plain = simulateRestart({ clients: 1_000, downMs, backoff: { ...DEFAULTS, spreadMs: 0 } });
      assert.ok(plain.peakOverMean > 5, `plain full jitter from 1 s, down ${downMs} ms: ${plain.peakOverMean.toFixed(2)}`);
    }
  });
});
