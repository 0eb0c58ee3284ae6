import assert from "node:assert/strict";
import { test } from "node:test";
import { TokenBucket } from "../../../src/fleet/rate.js";

test("token bucket: a burst at once, then the refill rate; never more than the burst is saved up", () => {
  const b = new TokenBucket({ perSecond: 5, burst: 20 });
  let taken = 0;
  for (let i = 0; i < 1000; i++) if (b.take(0)) taken++;
  assert.equal(taken, 20, "1,000 at once: the burst is admitted, the rest refused");
  assert.equal(b.wait(0), 200, "the next token in 1/5 s");
  assert.equal(b.take(199), false);
  assert.equal(b.take(200), true);
  // A second of 1,000 evenly spread messages, right after the bucket ran dry, admits the refill only.
  assert.equal(b.take(200), false);
  taken = 0;
  for (let i = 1; i <= 1000; i++) if (b.take(200 + i)) taken++;
  assert.ok(taken >= 4 && taken <= 5, `${taken} admitted in one second at 5/s`);
  // An hour idle refills to the burst, not beyond.
  taken = 0;
  for (let i = 0; i < 100; i++) if (b.take(3_600_000)) taken++;
  assert.equal(taken, 20);
});

test("token bucket: a monotonic clock that does not move (or a reading from the past) adds nothing", () => {
  const b = new TokenBucket({ perSecond: 1, burst: 1 });
  assert.equal(b.take(5000), true);
  assert.equal(b.take(4000), false, "an earlier reading refills nothing");
  assert.equal(b.take(5999), false);
  assert.equal(b.take(6000), true);
});
