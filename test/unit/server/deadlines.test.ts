// Request deadlines on a fake clock: a slow header block or body expires at its
// deadline, a connection waiting on its own answer (a watch) holds no timer, and
// with nothing awaited from any client no timer is armed at all (an idle daemon
// does not wake up).
import assert from "node:assert/strict";
import type { Socket } from "node:net";
import { test } from "node:test";
import { RequestDeadlines } from "../../../src/server/deadlines.js";

interface Timer {
  at: number;
  fn: () => void;
  cleared: boolean;
}

function harness() {
  let now = 1_000;
  const timers: Timer[] = [];
  const expired: [Socket, number][] = [];
  const d = new RequestDeadlines({
    headersMs: 5_000,
    requestMs: 10_000,
    nextMs: 20_000,
    onExpired: (s, n) => expired.push([s, n]),
    now: () => now,
    setTimer: (fn, ms) => {
      const t = { at: now + ms, fn, cleared: false };
      timers.push(t);
      return t;
    },
    clearTimer: (t) => void ((t as Timer).cleared = true),
  });
  const live = () => timers.filter((t) => !t.cleared);
  /** Moves the clock on, firing due timers in order. */
  const advance = (ms: number) => {
    const end = now + ms;
    for (;;) {
      const due = live()
        .filter((t) => t.at <= end)
        .sort((a, b) => a.at - b.at)[0];
      if (!due) break;
      now = due.at;
      due.cleared = true;
      due.fn();
    }
    now = end;
  };
  const socket = (name: string) => ({ name, destroyed: false }) as unknown as Socket;
  return { d, advance, live, expired, socket };
}

test("no connection, no timer; a connection that sends nothing expires at the header deadline", () => {
  const h = harness();
  assert.equal(h.d.armed, false);
  const s = h.socket("a");
  h.d.connected(s);
  assert.equal(h.d.armed, true);
  h.advance(4_999);
  assert.deepEqual(h.expired, []);
  h.advance(1);
  assert.deepEqual(h.expired, [[s, 0]]);
  h.d.closed(s);
  assert.equal(h.d.armed, false);
  assert.equal(h.live().length, 0);
});

test("headers in, body slow: expires requestMs after the headers, with the slow request counted", () => {
  const h = harness();
  const s = h.socket("a");
  h.d.connected(s);
  h.advance(1_000);
  h.d.request(s);
  h.advance(9_999);
  assert.deepEqual(h.expired, []);
  h.advance(1);
  assert.deepEqual(h.expired, [[s, 1]]);
});

test("a request received in whole and waiting on its answer (a watch) holds no deadline; the next request is awaited after the answer", () => {
  const h = harness();
  const s = h.socket("a");
  h.d.connected(s);
  h.d.request(s);
  h.d.received(s);
  h.advance(60_000);
  assert.deepEqual(h.expired, [], "a long answer is not the client's delay");
  assert.equal(h.d.armed, false, "the timer found nothing awaited and was not re-armed");
  h.d.answered(s);
  assert.equal(h.d.armed, true);
  h.advance(19_999);
  assert.deepEqual(h.expired, []);
  h.advance(1);
  assert.equal(h.expired.length, 1);
});

test("pipelined requests: the next request is awaited only when every answer is finished", () => {
  const h = harness();
  const s = h.socket("a");
  h.d.connected(s);
  h.d.request(s);
  h.d.received(s);
  h.d.request(s);
  h.d.received(s);
  h.d.answered(s);
  h.advance(30_000);
  assert.deepEqual(h.expired, [], "one answer still being written: nothing awaited");
  h.d.answered(s);
  h.advance(20_000);
  assert.equal(h.expired.length, 1);
});

test("a busy connection re-arms the timer rarely: many requests under one armed timer", () => {
  const h = harness();
  const s = h.socket("a");
  h.d.connected(s);
  for (let i = 0; i < 1_000; i++) {
    h.d.request(s);
    h.d.received(s);
    h.d.answered(s);
    h.advance(1);
  }
  assert.ok(h.live().length <= 1);
  assert.ok(h.d.armed);
  assert.deepEqual(h.expired, []);
});

test("only the late connection of two expires; close() disarms", () => {
  const h = harness();
  const a = h.socket("a");
  const b = h.socket("b");
  h.d.connected(a);
  h.advance(3_000);
  h.d.connected(b);
  h.d.request(a);
  h.d.received(a);
  h.advance(2_000);
  assert.deepEqual(h.expired, []);
  h.advance(3_000);
  assert.deepEqual(h.expired, [[b, 0]]);
  h.d.close();
  assert.equal(h.d.armed, false);
});
