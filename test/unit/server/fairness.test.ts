// Fair turns between uids on the real event loop: a uid with a backlog has one piece
// of work run per turn, another uid's work runs in the first turn it arrives in,
// each uid's work keeps its order, and a uid sending one request at a time never waits.
import assert from "node:assert/strict";
import { test } from "node:test";
import { FairTurns } from "../../../src/server/fairness.js";

const turn = () => new Promise<void>((r) => setImmediate(r));

test("a uid with a backlog gets one piece per turn; another uid's work is not queued behind it", async () => {
  const turns = new FairTurns({ onError: (e) => assert.fail(String(e)) });
  const ran: string[] = [];
  // Uid 1000 has 5 pipelined requests ready at once (one read of its socket).
  for (let i = 0; i < 5; i++) turns.run(1000, () => ran.push(`b${i}`));
  assert.deepEqual(ran, ["b0"], "the first runs at once; the rest wait for later turns");
  assert.equal(turns.backlog, 4);
  // Uid 1001's request arrives in the same loop iteration: it runs at once, not after b1..b4.
  turns.run(1001, () => ran.push("a0"));
  assert.deepEqual(ran, ["b0", "a0"]);
  await turn();
  assert.deepEqual(ran, ["b0", "a0", "b1"], "one more of 1000's per turn");
  // 1001 had its turn in the last iteration only: its next request, a turn later, runs at once.
  await turn();
  turns.run(1001, () => ran.push("a1"));
  assert.deepEqual(ran.slice(-2), ["b2", "a1"]);
  for (let i = 0; i < 4; i++) await turn();
  assert.deepEqual(ran, ["b0", "a0", "b1", "b2", "a1", "b3", "b4"], "every piece ran, each uid's in its order");
  assert.equal(turns.backlog, 0);
});

test("a uid sending one request at a time never waits; work added from a turn waits for the next", async () => {
  const turns = new FairTurns({ onError: (e) => assert.fail(String(e)) });
  const ran: number[] = [];
  for (let i = 0; i < 3; i++) {
    turns.run(7, () => ran.push(i));
    assert.equal(ran.length, i + 1, `request ${i} ran at once`);
    await turn();
    await turn();
  }
  // Work that queues more for its own uid (a refusal answered, then the next request read).
  turns.run(8, () => undefined);
  turns.run(8, () => turns.run(8, () => ran.push(99)));
  await turn();
  assert.ok(!ran.includes(99), "queued from inside a turn: not run in that same turn");
  await turn();
  assert.equal(ran.at(-1), 99);
});

test("work that throws is reported and does not stop the other uids' turns", async () => {
  const errors: unknown[] = [];
  const turns = new FairTurns({ onError: (e) => errors.push(e) });
  const ran: string[] = [];
  turns.run(1, () => ran.push("x"));
  turns.run(1, () => {
    throw new Error("boom");
  });
  turns.run(2, () => ran.push("y0"));
  turns.run(2, () => ran.push("y1"));
  await turn();
  assert.deepEqual(ran, ["x", "y0", "y1"]);
  assert.equal(errors.length, 1);
  assert.match(String(errors[0]), /boom/);
});
