import assert from "node:assert/strict";
import { describe, test } from "node:test";
import type { FleetCommand } from "../../../src/fleet/command.js";
import { MAX_LIVE_JTIS, MemoryJtiStore, ReplayGuard } from "../../../src/fleet/jti-store.js";
import { isFleetRefusal } from "../../../src/fleet/refusal.js";

const NOW = 1_800_000_000_000;
const cmd = (jti: string, expS: number): FleetCommand => ({ jti, kid: "ops", cmd: "refresh", target: { all: true }, iat: expS - 60, exp: expS });
const code = (f: () => void) => {
  try {
    f();
  } catch (e) {
    assert.ok(isFleetRefusal(e));
    return e.code;
  }
  return "accepted";
};

describe("replay guard over a JtiStore", () => {
  test("a jti carried out once is refused after, until it expires and is pruned", () => {
    const store = new MemoryJtiStore();
    const g = new ReplayGuard({ store });
    const c = cmd("a", NOW / 1000 + 60);
    assert.equal(
      code(() => g.check(c, NOW)),
      "accepted",
    );
    g.remember(c, NOW);
    assert.equal(
      code(() => g.check(c, NOW + 1)),
      "replayed",
    );
    store.prune(NOW + 60_000);
    assert.equal(store.size(), 0, "gone once its exp has passed");
  });

  test("bounded: past the limit of live jtis, a new command is refused with replay_store_full; expired ones make room", () => {
    const store = new MemoryJtiStore();
    const g = new ReplayGuard({ store, max: 3 });
    for (const [i, exp] of [
      [1, 100],
      [2, 200],
      [3, 300],
    ] as const)
      g.remember(cmd(`j${i}`, NOW / 1000 + exp), NOW);
    assert.equal(
      code(() => g.check(cmd("j4", NOW / 1000 + 400), NOW)),
      "replay_store_full",
    );
    assert.equal(store.size(), 3, "nothing was forgotten to make room");
    // After j1's exp the check prunes it, and j4 fits.
    assert.equal(
      code(() => g.check(cmd("j4", NOW / 1000 + 400), NOW + 100_000)),
      "accepted",
    );
    assert.equal(store.size(), 2);
  });

  test("the default bound is 10,000 live commands, and the message says what to do", () => {
    assert.equal(MAX_LIVE_JTIS, 10_000);
    const store = new MemoryJtiStore();
    for (let i = 0; i < MAX_LIVE_JTIS; i++) store.remember(`j${i}`, NOW + 3_600_000);
    const g = new ReplayGuard({ store });
    assert.throws(
      () => g.check(cmd("one-more", NOW / 1000 + 60), NOW),
      (e: unknown) => isFleetRefusal(e) && e.code === "replay_store_full" && /10000 commands are still live.*shorter --ttl/.test(e.message),
    );
  });
});
