import assert from "node:assert/strict";
import { mock, test } from "node:test";
import { createLogger } from "../../../src/log.js";
import { StatusPublisher } from "../../../src/mqtt/status.js";
import type { FleetCore, FleetStatus } from "../../../src/mqtt/core.js";

test("status: published at connect, then at most every 5 s on change (the latest state), nothing for an unchanged state, names only when allowed", () => {
  mock.timers.enable({ apis: ["setTimeout"] });
  try {
    let mono = 0;
    const clock = { mono: () => mono, wall: () => Date.UTC(2026, 0, 1) + mono };
    let status: FleetStatus = { sealed: false, secrets: 2, stale: 0, providers: { v: "online" }, revision: 1, version: "1.0.0", names: ["a", "b"] };
    const core = { status: () => status } as unknown as FleetCore;
    const published: Record<string, unknown>[] = [];
    const p = new StatusPublisher({
      core,
      clock,
      logger: createLogger({ level: "silent" }),
      secretNames: false,
      publish: (s) => published.push(JSON.parse(s)),
    });
    const advance = (ms: number) => {
      mono += ms;
      mock.timers.tick(ms);
    };
    p.changed();
    assert.equal(published.length, 0, "nothing while not connected");
    p.connected();
    assert.deepEqual(published[0], {
      online: true,
      sealed: false,
      secrets: 2,
      stale: 0,
      providers: { v: "online" },
      revision: 1,
      version: "1.0.0",
      at: "2026-01-01T00:00:00.000Z",
    });
    for (let i = 2; i <= 20; i++) {
      status = { ...status, revision: i };
      p.changed();
      advance(100);
    }
    assert.equal(published.length, 1, "within 5 s of the last publish: held back");
    advance(3_100);
    assert.equal(published.length, 2);
    assert.equal(published[1]!.revision, 20, "the latest state, once");
    advance(10_000);
    p.changed();
    assert.equal(published.length, 2, "a change that changes nothing is not published");
    status = { ...status, stale: 1 };
    p.changed();
    assert.equal(published.length, 3, "more than 5 s after the last: at once");
    p.disconnected();
    status = { ...status, stale: 2 };
    p.changed();
    advance(10_000);
    assert.equal(published.length, 3, "nothing while disconnected");
    p.connected();
    assert.equal(published.length, 4, "a reconnect publishes at once, even if unchanged");
    assert.equal("names" in published[3]!, false);
    const named: Record<string, unknown>[] = [];
    new StatusPublisher({ core, clock, logger: createLogger({ level: "silent" }), secretNames: true, publish: (s) => named.push(JSON.parse(s)) }).connected();
    assert.deepEqual(named[0]!.names, ["a", "b"]);
  } finally {
    mock.timers.reset();
  }
});
