import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { isSealError } from "../../../src/errors.js";
import { createLogger } from "../../../src/log.js";
import {
  checkRollback,
  DEFAULT_COUNTER_INDEX,
  openRollbackCounter,
  rolledBackError,
  rolledBackMessage,
  usesRollbackCounter,
} from "../../../src/seal/rollback.js";
import { COUNTER_ATTRIBUTES, counterPublic, isSealcacheCounter, nvAttributesText, parseNvPublic } from "../../../native/tpm2/nv.js";
import { NV } from "../../../native/tpm2/constants.js";

describe("checkRollback", () => {
  const cases: [recorded: number | undefined, tpm: number, verdict: string, why: string][] = [
    [undefined, 1, "advance", "first run: record the TPM's value"],
    [undefined, 0, "advance", "first run on a counter at 0"],
    [7, 7, "ok", "the database matches the counter"],
    [8, 7, "advance", "a crash after the database recorded the next value, before the increment"],
    [20, 7, "advance", "ahead by more than one: advanceTo decides whether that is plausible"],
    [6, 7, "rolled_back", "an older copy of the database"],
    [0, 1, "rolled_back", "older by one, from 0"],
    [1, Number.MAX_SAFE_INTEGER, "rolled_back", "far older"],
  ];
  for (const [recorded, tpm, verdict, why] of cases) {
    test(`recorded ${String(recorded)}, TPM ${tpm} → ${verdict} (${why})`, () => {
      assert.equal(checkRollback(recorded, tpm), verdict);
    });
  }

  test("refuses values that are not non-negative safe integers", () => {
    for (const bad of [-1, 1.5, Number.NaN, Number.POSITIVE_INFINITY, Number.MAX_SAFE_INTEGER + 1]) {
      assert.throws(() => checkRollback(1, bad), RangeError, `tpm ${bad}`);
      assert.throws(() => checkRollback(bad, 1), RangeError, `recorded ${bad}`);
    }
  });
});

describe("the rolled-back refusal", () => {
  test("names both values, the index, the database file and what to do", () => {
    const m = rolledBackMessage({ index: 0x01005343, recorded: 41, tpm: 43, dataDir: "/var/lib/sealcache/" });
    assert.match(m, /refusing to open the cache/);
    assert.match(m, /\/var\/lib\/sealcache\/cache\.db records value 41/);
    assert.match(m, /0x01005343\) is at 43/);
    assert.match(m, /restore the newest copy of \/var\/lib\/sealcache\/cache\.db \(it records 43 or more\)/);
    assert.match(m, /move \/var\/lib\/sealcache\/cache\.db and its -wal and -shm files aside to start with an empty cache/);
    assert.match(m, /tampered/);
  });

  test("says when the counter itself was missing and defined again", () => {
    const m = rolledBackMessage({ index: 0x01005343, recorded: 5, tpm: 9, created: true });
    assert.match(m, /was missing and has been defined again, at 9/);
    assert.match(m, /records anti-rollback value 5/);
    assert.match(m, /TPM was cleared, or the index was removed/);
  });

  test("is a SealError", () => {
    const e = rolledBackError({ index: 0x01005343, recorded: 1, tpm: 2 });
    assert.ok(isSealError(e));
    assert.equal(e.code, "sealed");
  });
});

describe("openRollbackCounter", () => {
  const logger = createLogger({ level: "silent" });
  test("accepts the default index, which lies in the owner NV range", () => {
    assert.ok(DEFAULT_COUNTER_INDEX >= 0x01000000 && DEFAULT_COUNTER_INDEX <= 0x013fffff);
    assert.equal(openRollbackCounter({ tcti: "swtpm:port=1", index: DEFAULT_COUNTER_INDEX, logger }).index, DEFAULT_COUNTER_INDEX);
  });

  test("refuses an index outside the owner NV range, naming it and the range, without touching a TPM", () => {
    for (const index of [0x01534300, 0x81000001, 0x00fffff0, 0x01400000, -1, 1.5]) {
      assert.throws(
        () => openRollbackCounter({ tcti: "swtpm:port=1", index, logger }),
        (e: unknown) => isSealError(e) && /seal\.counter_index .* is not in the owner NV index range 0x01000000–0x013fffff/.test(e.message),
        String(index),
      );
    }
  });

  test("applies to the seal types with a TPM", () => {
    assert.equal(usesRollbackCounter("tpm2"), true);
    assert.equal(usesRollbackCounter("tpm2+host"), true);
    assert.equal(usesRollbackCounter("host"), false);
  });
});

describe("the counter's NV public area", () => {
  test("round-trips and is recognised as sealcache's", () => {
    const pub = parseNvPublic(counterPublic(0x01005343));
    assert.equal(pub.index, 0x01005343);
    assert.equal(pub.dataSize, 8);
    assert.equal(pub.type, 1);
    assert.equal(pub.written, false);
    assert.ok(isSealcacheCounter(pub));
    assert.ok(isSealcacheCounter({ ...pub, attributes: pub.attributes | NV.WRITTEN }), "state bits do not matter");
    assert.ok(!isSealcacheCounter({ ...pub, attributes: pub.attributes | NV.ORDERLY }));
    assert.ok(!isSealcacheCounter({ ...pub, attributes: pub.attributes | NV.AUTHWRITE }));
    assert.ok(!isSealcacheCounter({ ...pub, dataSize: 32 }));
  });

  test("attributes are written the way tpm2_nvdefine spells them", () => {
    assert.equal(nvAttributesText(COUNTER_ATTRIBUTES), "nt=counter|ownerwrite|authread|no_da");
  });
});
