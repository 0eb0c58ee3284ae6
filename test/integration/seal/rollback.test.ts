import assert from "node:assert/strict";
import fs from "node:fs";
import path from "node:path";
import { describe, test } from "node:test";
import { isTpmError, Tpm } from "../../../native/tpm2/index.js";
import { createLogger } from "../../../src/log.js";
import { checkRollback, DEFAULT_COUNTER_INDEX, openRollbackCounter, rolledBackError, type RollbackCounter } from "../../../src/seal/rollback.js";
import { startSwtpm, type Swtpm } from "../../support/swtpm.js";
import { tmpDir } from "../../support/tmp.js";
import { refused } from "./helpers.js";

const INDEX = DEFAULT_COUNTER_INDEX;
const IDX = "0x01005343";
const logger = createLogger({ level: "silent" });

function counter(tpm: Swtpm, index = INDEX, maxAdvance?: number): RollbackCounter {
  return openRollbackCounter({ tcti: tpm.tcti, index, logger, ...(maxAdvance === undefined ? {} : { maxAdvance }) });
}

/** tpm2_nvreadpublic of one index, as the independent tool sees it. */
async function toolPublic(tpm: Swtpm, index: string): Promise<string> {
  return tpm.tool("tpm2_nvreadpublic", [index]);
}

describe("TPM NV counters (Tpm class) against swtpm", () => {
  test("define, read and increment round-trip; values strictly increase; an undefined index reads as undefined", async (t) => {
    const tpm = await startSwtpm(t);
    await Tpm.with(tpm.tcti, async (x) => {
      assert.equal(await x.nvReadCounter(INDEX), undefined, "nothing is defined at the index yet");
      assert.equal(await x.nvReadPublic(INDEX), undefined);

      const first = await x.nvDefineCounter(INDEX);
      assert.equal(typeof first, "bigint");
      assert.equal(await x.nvReadCounter(INDEX), first, "defined and readable (it was incremented once)");
      const pub = await x.nvReadPublic(INDEX);
      assert.ok(pub);
      assert.equal(pub.dataSize, 8);
      assert.equal(pub.written, true);

      let last = first;
      for (let i = 0; i < 5; i++) {
        const v = await x.nvIncrement(INDEX);
        assert.equal(v, last + 1n, "each increment adds one");
        assert.equal(await x.nvReadCounter(INDEX), v);
        last = v;
      }

      await assert.rejects(x.nvDefineCounter(INDEX), (e: unknown) => isTpmError(e) && /already defined/.test(e.message), "defining twice is refused");
      assert.equal(await x.nvReadCounter(INDEX), last, "a refused define changes nothing");
      await assert.rejects(x.nvIncrement(INDEX + 1), /no NV index is defined there/);
      assert.equal(await x.nvReadCounter(INDEX + 1), undefined);

      assert.equal(await x.nvUndefine(INDEX), true);
      assert.equal(await x.nvUndefine(INDEX), false, "undefining a missing index says so");
      assert.equal(await x.nvReadCounter(INDEX), undefined);
      const again = await x.nvDefineCounter(INDEX);
      assert.ok(again > last, `a counter defined again starts above the old one (${again} > ${last})`);
    });
    const pub = await toolPublic(tpm, IDX);
    assert.match(pub, /value: 0x22040012/u, "tpm2-tools sees the attributes sealcache chose: nt=counter|ownerwrite|authread|no_da, and written");
    assert.match(pub, /size: 8/);
    assert.deepEqual(await tpm.handles(), { transient: [], sessions: [] }, "nothing left loaded in the TPM");
  });

  test("the counter persists across a reopen and a swtpm restart on the same state", async (t) => {
    const tpm = await startSwtpm(t);
    const v = await Tpm.with(tpm.tcti, async (x) => {
      await x.nvDefineCounter(INDEX);
      return x.nvIncrement(INDEX);
    });
    assert.equal(await Tpm.with(tpm.tcti, (x) => x.nvReadCounter(INDEX)), v, "a new connection reads the same value");
    await tpm.stop();
    await tpm.start();
    assert.equal(await Tpm.with(tpm.tcti, (x) => x.nvReadCounter(INDEX)), v, "after a restart the value is unchanged");
    assert.equal(await Tpm.with(tpm.tcti, (x) => x.nvIncrement(INDEX)), v + 1n, "and it goes on from there");
  });

  test("a second TPM has its own counter", async (t) => {
    const [a, b] = await Promise.all([startSwtpm(t), startSwtpm(t)]);
    const ca = counter(a);
    const cb = counter(b);
    const { value: a0 } = await ca.ensure();
    for (let i = 0; i < 4; i++) await ca.bump();
    assert.equal(await Tpm.with(b.tcti, (x) => x.nvReadCounter(INDEX)), undefined, "the other TPM has no counter yet");
    const { value: b0, created } = await cb.ensure();
    assert.equal(created, true);
    assert.equal(await ca.read(), a0 + 4);
    assert.equal(await cb.read(), b0, "bumping one TPM's counter leaves the other's alone");
    await cb.bump();
    assert.equal(await ca.read(), a0 + 4);
    assert.equal(await cb.read(), b0 + 1);
  });
});

describe("the anti-rollback counter (src/seal/rollback.ts) against swtpm", () => {
  test("ensure defines it once; bump, read and checkRollback catch an older copy of the database", async (t) => {
    const tpm = await startSwtpm(t);
    const c = counter(tpm);
    const info0 = await c.describe();
    assert.equal(info0.ok, true);
    assert.match(info0.detail, /0x01005343 is not defined yet/);
    assert.equal(await Tpm.with(tpm.tcti, (x) => x.nvReadPublic(INDEX)), undefined, "describe() defined nothing");
    await refused(c.read(), /anti-rollback counter \(TPM NV index 0x01005343\) does not exist/);

    const first = await c.ensure();
    assert.equal(first.created, true);
    const again = await c.ensure();
    assert.deepEqual(again, { value: first.value, created: false }, "a second start finds the same counter");
    assert.equal(checkRollback(undefined, again.value), "advance", "first run: the database records the value");

    // The database recorded `first.value`; a revoke records the next one, then bumps.
    const copy = first.value; // an operator's backup taken now
    const next = (await c.read()) + 1;
    assert.equal(await c.bump(), next);
    assert.equal(checkRollback(next, await c.read()), "ok", "the newest database passes");
    const verdict = checkRollback(copy, await c.read());
    assert.equal(verdict, "rolled_back", "the backup from before the revoke is refused");
    assert.match(
      rolledBackError({ index: INDEX, recorded: copy, tpm: await c.read() }).message,
      new RegExp(`records value ${copy}, the counter \\(NV index 0x01005343\\) is at ${next}`),
    );

    const info = await c.describe();
    assert.deepEqual({ ok: info.ok, value: info.value }, { ok: true, value: next });
    assert.match(info.detail, new RegExp(`0x01005343 is at ${next}`));
    await c.close();
  });

  test("a database ahead of the counter (a crash before the increment) is repaired by advanceTo, within limits", async (t) => {
    const tpm = await startSwtpm(t);
    const c = counter(tpm, INDEX, 8);
    const { value } = await c.ensure();
    assert.equal(checkRollback(value + 1, value), "advance");
    assert.equal(await c.advanceTo(value + 1), value + 1);
    assert.equal(await c.read(), value + 1);
    assert.equal(await c.advanceTo(value), value + 1, "a target already reached increments nothing");
    assert.equal(await c.advanceTo(value + 4), value + 4);
    await refused(
      c.advanceTo(value + 100),
      /records anti-rollback value \d+ but the TPM counter \(NV index 0x01005343\) is at \d+: 96 increments behind, more than the 8/,
      /seal\.counter_index/,
    );
    assert.equal(await c.read(), value + 4, "a refused advance increments nothing");
  });

  test("a counter defined again after removal starts above the old value: the old database is refused", async (t) => {
    const tpm = await startSwtpm(t);
    const c = counter(tpm);
    await c.ensure();
    const recorded = await c.bump();
    await tpm.tool("tpm2_nvundefine", [IDX, "-C", "o"]);
    const { value, created } = await c.ensure();
    assert.equal(created, true, "the daemon learns the counter was missing");
    assert.ok(value > recorded, `${value} > ${recorded}`);
    assert.equal(checkRollback(recorded, value), "rolled_back");
    assert.match(rolledBackError({ index: INDEX, recorded, tpm: value, created }).message, /was missing and has been defined again/);
  });

  test("an index of sealcache's shape that was never incremented (an interrupted first start) is incremented by ensure", async (t) => {
    const tpm = await startSwtpm(t);
    await tpm.tool("tpm2_nvdefine", [IDX, "-C", "o", "-s", "8", "-a", "nt=counter|ownerwrite|authread|no_da"]);
    const c = counter(tpm);
    assert.match((await c.describe()).detail, /defined, not yet incremented/);
    await refused(c.read(), /never incremented/);
    const { value, created } = await c.ensure();
    assert.equal(created, true);
    assert.equal(await c.read(), value);
  });

  for (const [what, args, shown] of [
    [
      "an ordinary 32-byte index",
      ["-s", "32", "-a", "ownerwrite|ownerread|authread"],
      /32 bytes, sha256, attributes nt=ordinary\|ownerwrite\|ownerread\|authread/,
    ],
    [
      "a counter with other attributes",
      ["-s", "8", "-a", "nt=counter|ownerwrite|ownerread|authwrite|authread"],
      /8 bytes, sha256, attributes nt=counter\|ownerwrite\|authwrite\|ownerread\|authread/,
    ],
  ] as const) {
    test(`an index already holding ${what} is refused with its attributes and how to pick another; it is left untouched`, async (t) => {
      const tpm = await startSwtpm(t);
      await tpm.tool("tpm2_nvdefine", [IDX, "-C", "o", ...args]);
      const before = await toolPublic(tpm, IDX);
      const c = counter(tpm);
      const advice = [
        /TPM NV index 0x01005343 \(seal\.counter_index\) is in use by something else/,
        shown,
        /sealcache's anti-rollback counter is nt=counter\|ownerwrite\|authread\|no_da, 8 bytes/,
        /Set seal\.counter_index to a free index in 0x01000000–0x013fffff \(tpm2_getcap handles-nv-index/,
        /tpm2_nvundefine 0x01005343 -C o/,
      ];
      await refused(c.ensure(), ...advice);
      await refused(c.bump(), ...advice);
      await refused(c.read(), ...advice);
      await refused(c.advanceTo(5), ...advice);
      const info = await c.describe();
      assert.equal(info.ok, false);
      for (const re of advice) assert.match(info.detail, re);
      assert.equal(await toolPublic(tpm, IDX), before, "the other program's index is unchanged");
      assert.deepEqual(await tpm.handles(), { transient: [], sessions: [] });
    });
  }

  for (const persistentSrk of [false, true]) {
    test(`an owner hierarchy with a password is reported as such (${persistentSrk ? "persistent SRK: the NV define is refused" : "no persistent SRK: deriving the SRK is refused"})`, async (t) => {
      const tpm = await startSwtpm(t);
      if (persistentSrk) {
        await tpm.tool("tpm2_createprimary", ["-C", "o", "-c", "srk.ctx"], tpm.stateDir);
        await tpm.tool("tpm2_evictcontrol", ["-C", "o", "-c", "srk.ctx", "0x81000001"], tpm.stateDir);
      }
      await tpm.tool("tpm2_changeauth", ["-c", "o", "owner-secret"]);
      const c = counter(tpm);
      const e = await refused(
        c.ensure(),
        /owner hierarchy/,
        persistentSrk ? /TPM NV index 0x01005343.*refused the owner authorization.*must be empty.*tpm2_changeauth -c o -p OLD_PASSWORD/ : /storage root key/,
      );
      assert.doesNotMatch(e.message, /owner-secret/);
      assert.equal(await Tpm.with(tpm.tcti, (x) => x.nvReadPublic(INDEX)), undefined, "nothing was defined");
      await tpm.tool("tpm2_changeauth", ["-c", "o", "-p", "owner-secret"]);
      assert.equal((await c.ensure()).created, true, "with the owner password cleared as advised, the counter is defined");
    });
  }

  test("an unreachable TPM is a SealError naming the TCTI", async (t) => {
    const tpm = await startSwtpm(t);
    const c = counter(tpm);
    await c.ensure();
    await tpm.stop();
    await refused(c.read(), /TPM unavailable/, new RegExp(tpm.tcti.replace(/[.*+?^${}()|[\]\\]/gu, "\\$&")));
    assert.equal((await c.describe()).ok, false);
  });
});

/**
 * The session handle of every `cc` command in a pcap capture: the TPM command is
 * tag 0x8002 (with sessions) ‖ size ‖ cc ‖ `handles` handles ‖ authorizationSize ‖
 * the first session handle. A command without sessions (tag 0x8001) yields null.
 */
function sessionsOf(cap: Buffer, cc: number, handles: number): (number | null)[] {
  const out: (number | null)[] = [];
  const needle = Buffer.from([cc >>> 24, (cc >>> 16) & 0xff, (cc >>> 8) & 0xff, cc & 0xff]);
  for (let i = cap.indexOf(needle, 6); i >= 0; i = cap.indexOf(needle, i + 1)) {
    const tag = cap.readUInt16BE(i - 6);
    if (tag === 0x8001 && cap.readUInt32BE(i - 4) === 10 + 4 * handles) out.push(null);
    if (tag === 0x8002) out.push(cap.readUInt32BE(i + 4 + 4 * handles + 4));
  }
  return out;
}

// The counter is not secret, but a forged TPM answer would let an old database
// pass: every command that takes an authorization must run in an HMAC session
// (handle 0x02……), which authenticates the response, never with a plain password.
test("a bus capture shows the NV commands authorized in HMAC sessions, never by password", async (t) => {
  const tpm = await startSwtpm(t);
  const capture = path.join(tmpDir(t), "nv.pcap");
  process.env.TCTI_PCAP_FILE = capture;
  const c = openRollbackCounter({ tcti: `pcap:${tpm.tcti}`, index: INDEX, logger });
  await c.ensure();
  await c.bump();
  await c.read();
  await Tpm.with(`pcap:${tpm.tcti}`, (x) => x.nvUndefine(INDEX));
  const cap = fs.readFileSync(capture);
  const CC = { NV_DefineSpace: [0x12a, 1], NV_Increment: [0x134, 2], NV_Read: [0x14e, 2], NV_UndefineSpace: [0x122, 2] } as const;
  for (const [name, [cc, handles]] of Object.entries(CC)) {
    const sessions = sessionsOf(cap, cc, handles);
    assert.ok(sessions.length > 0, `the capture holds TPM2_${name}`);
    for (const h of sessions)
      assert.ok(h !== null && h >>> 24 === 0x02, `TPM2_${name} runs in an HMAC session, not ${h === null ? "without one" : `0x${h.toString(16)}`}`);
  }
});

const CYCLES = 200;

test(`${CYCLES} read/bump cycles, failures included, leave no transient object or session behind`, async (t) => {
  const tpm = await startSwtpm(t);
  const baseline = await tpm.handles();
  assert.deepEqual(baseline, { transient: [], sessions: [] });

  // Whole counter operations, a connection each.
  const c = counter(tpm);
  let value = (await c.ensure()).value;
  for (let i = 0; i < CYCLES; i++) {
    if (i % 2 === 0) assert.equal(await c.read(), value);
    else assert.equal(await c.bump(), ++value);
  }
  assert.deepEqual(await tpm.handles(), baseline, "after counter operations TPM2_CAP_HANDLES is back to the baseline");

  // One long connection, success and failure paths mixed (missing index, unwritten index, define over an existing one).
  await tpm.tool("tpm2_nvdefine", ["0x01005344", "-C", "o", "-s", "8", "-a", "nt=counter|ownerwrite|authread|no_da"]);
  const x = await Tpm.open(tpm.tcti);
  try {
    const outcomes = { read: 0, bump: 0, missing: 0, unwritten: 0, defined: 0 };
    for (let i = 0; i < CYCLES; i++) {
      const k = i % 10;
      if (k === 0) {
        await assert.rejects(x.nvIncrement(INDEX + 2), /no NV index/);
        assert.equal(await x.nvReadCounter(INDEX + 2), undefined);
        outcomes.missing++;
      } else if (k === 1) {
        await assert.rejects(x.nvReadCounter(0x01005344), /never been incremented/);
        outcomes.unwritten++;
      } else if (k === 2) {
        await assert.rejects(x.nvDefineCounter(INDEX), /already defined/);
        outcomes.defined++;
      } else if (k % 2 === 0) {
        assert.equal(await x.nvReadCounter(INDEX), BigInt(value));
        outcomes.read++;
      } else {
        assert.equal(await x.nvIncrement(INDEX), BigInt(++value));
        outcomes.bump++;
      }
      if (i % 50 === 49) {
        assert.deepEqual(await x.transientHandles(), [], `after ${i + 1} cycles no object is loaded`);
        assert.deepEqual(await x.sessionHandles(), [], `after ${i + 1} cycles no session is loaded`);
      }
    }
    assert.deepEqual(outcomes, { read: 60, bump: 80, missing: 20, unwritten: 20, defined: 20 });
  } finally {
    await x.close();
  }
  assert.equal(await c.read(), value);
  assert.deepEqual(await tpm.handles(), baseline, "TPM2_CAP_HANDLES is back to the baseline");
});
