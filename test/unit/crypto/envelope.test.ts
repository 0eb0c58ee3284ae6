import { createHmac } from "node:crypto";
import assert from "node:assert/strict";
import { before, describe, test } from "node:test";
import { Envelope, KEK_BYTES } from "../../../src/crypto/envelope.js";
import { loadSodium, type Sodium } from "../../../src/crypto/sodium.js";
import { IntegrityError, isIntegrityError } from "../../../src/errors.js";
import { planted } from "../../support/planted.js";

const enc = new TextEncoder();
const dec = new TextDecoder();

let sodium: Sodium;
before(async () => {
  sodium = await loadSodium();
});

function newKek(): Uint8Array {
  return sodium.randombytes_buf(KEK_BYTES);
}

/** An envelope over a copy of `kek`, so the caller keeps its own bytes. */
function envelopeOf(kek: Uint8Array): Envelope {
  return new Envelope(sodium, kek.slice());
}

function flip(b: Uint8Array, at: number): Uint8Array {
  const c = b.slice();
  c[at]! ^= 0x01;
  return c;
}

function refused(fn: () => unknown, what: string): void {
  assert.throws(fn, (e: unknown) => {
    assert.ok(isIntegrityError(e), `${what}: expected IntegrityError, got ${String(e)}`);
    assert.ok(e instanceof IntegrityError);
    return true;
  });
}

describe("Envelope", () => {
  test("seals and opens a value; ciphertext holds no plaintext and carries the format byte", () => {
    const env = envelopeOf(newKek());
    const value = planted("envelope-roundtrip");
    const { wrappedDek, ciphertext } = env.sealValue("app/db", 1, enc.encode(value));
    assert.equal(ciphertext[0], 1, "format version byte");
    assert.equal(wrappedDek[0], 1, "format version byte");
    assert.equal(ciphertext.length, 1 + 24 + enc.encode(value).length + 16);
    assert.equal(wrappedDek.length, 1 + 24 + 32 + 16);
    assert.ok(!Buffer.from(ciphertext).toString("latin1").includes(value));
    const opened = env.openValue("app/db", 1, wrappedDek, ciphertext);
    assert.equal(dec.decode(opened), value);
  });

  test("round-trips empty and binary values", () => {
    const env = envelopeOf(newKek());
    const empty = env.sealValue("e", 3, new Uint8Array(0));
    assert.equal(env.openValue("e", 3, empty.wrappedDek, empty.ciphertext).length, 0);
    const bin = sodium.randombytes_buf(4096);
    const s = env.sealValue("b", 7, bin);
    assert.deepEqual(env.openValue("b", 7, s.wrappedDek, s.ciphertext), bin);
  });

  test("each seal uses a fresh DEK and nonce", () => {
    const env = envelopeOf(newKek());
    const v = enc.encode(planted("fresh"));
    const a = env.sealValue("n", 1, v);
    const b = env.sealValue("n", 1, v);
    assert.notDeepEqual(a.ciphertext, b.ciphertext);
    assert.notDeepEqual(a.wrappedDek, b.wrappedDek);
    // A's DEK does not open B's ciphertext: the two are independent.
    refused(() => env.openValue("n", 1, a.wrappedDek, b.ciphertext), "mixed DEK/ciphertext of two seals");
  });

  test("a flipped bit anywhere in the ciphertext is refused", () => {
    const env = envelopeOf(newKek());
    const { wrappedDek, ciphertext } = env.sealValue("s", 1, enc.encode(planted("flip-ct")));
    // Format byte, nonce, body and tag.
    for (const at of [0, 1, 24, 25, Math.floor(ciphertext.length / 2), ciphertext.length - 1]) {
      refused(() => env.openValue("s", 1, wrappedDek, flip(ciphertext, at)), `ciphertext bit flip at ${at}`);
    }
    refused(() => env.openValue("s", 1, wrappedDek, ciphertext.subarray(0, ciphertext.length - 1)), "truncated ciphertext");
    refused(() => env.openValue("s", 1, wrappedDek, new Uint8Array(0)), "empty ciphertext");
  });

  test("a flipped bit anywhere in the wrapped DEK is refused", () => {
    const env = envelopeOf(newKek());
    const { wrappedDek, ciphertext } = env.sealValue("s", 1, enc.encode(planted("flip-dek")));
    for (const at of [0, 1, 24, 25, 40, wrappedDek.length - 1]) {
      refused(() => env.openValue("s", 1, flip(wrappedDek, at), ciphertext), `wrapped DEK bit flip at ${at}`);
    }
  });

  test("a row's ciphertext under another name is refused (swap)", () => {
    const env = envelopeOf(newKek());
    const a = env.sealValue("app/a", 1, enc.encode(planted("swap-a")));
    const b = env.sealValue("app/b", 1, enc.encode(planted("swap-b")));
    refused(() => env.openValue("app/b", 1, a.wrappedDek, a.ciphertext), "row of a opened as b");
    refused(() => env.openValue("app/a", 1, b.wrappedDek, b.ciphertext), "row of b opened as a");
    // Swapping only one of the two columns fails as well.
    refused(() => env.openValue("app/a", 1, a.wrappedDek, b.ciphertext), "ciphertext of b under a's DEK");
    refused(() => env.openValue("app/a", 1, b.wrappedDek, a.ciphertext), "DEK of b with a's ciphertext");
    // Names that only differ by a separator must not collide.
    const c = env.sealValue("x\u0000", 1, enc.encode("v"));
    refused(() => env.openValue("x", 1, c.wrappedDek, c.ciphertext), "name with trailing NUL");
  });

  test("opening with another version number is refused (rollback / relabel)", () => {
    const env = envelopeOf(newKek());
    const v1 = env.sealValue("app/db", 1, enc.encode(planted("v1")));
    const v2 = env.sealValue("app/db", 2, enc.encode(planted("v2")));
    refused(() => env.openValue("app/db", 2, v1.wrappedDek, v1.ciphertext), "v1 relabelled as v2");
    refused(() => env.openValue("app/db", 1, v2.wrappedDek, v2.ciphertext), "v2 relabelled as v1");
    refused(() => env.openValue("app/db", 11, v1.wrappedDek, v1.ciphertext), "v1 relabelled as v11");
    assert.ok(env.openValue("app/db", 2, v2.wrappedDek, v2.ciphertext).length > 0);
  });

  test("a different KEK is refused", () => {
    const mine = envelopeOf(newKek());
    const other = envelopeOf(newKek());
    const { wrappedDek, ciphertext } = mine.sealValue("s", 1, enc.encode(planted("kek")));
    refused(() => other.openValue("s", 1, wrappedDek, ciphertext), "other KEK");
  });

  test("a KEK of the wrong length is refused", () => {
    assert.throws(() => new Envelope(sodium, new Uint8Array(16)), IntegrityError);
    assert.throws(() => new Envelope(sodium, new Uint8Array(33)), IntegrityError);
  });

  test("error messages name the secret and never contain the value", () => {
    const env = envelopeOf(newKek());
    const value = planted("msg");
    const { wrappedDek, ciphertext } = env.sealValue("app/msg", 1, enc.encode(value));
    try {
      env.openValue("app/msg", 2, wrappedDek, ciphertext);
      assert.fail("expected a refusal");
    } catch (e) {
      assert.ok(isIntegrityError(e));
      assert.match(e.message, /app\/msg/);
      assert.ok(!e.message.includes(value));
      assert.ok(!e.message.includes("PLANTED-"));
    }
  });

  test("rewrapDek moves a DEK to another KEK; the old KEK no longer opens the new row", () => {
    const from = envelopeOf(newKek());
    const to = envelopeOf(newKek());
    const value = planted("rewrap");
    const { wrappedDek, ciphertext } = from.sealValue("s", 4, enc.encode(value));
    const rewrapped = from.rewrapDek("s", 4, wrappedDek, to);
    assert.equal(dec.decode(to.openValue("s", 4, rewrapped, ciphertext)), value);
    refused(() => from.openValue("s", 4, rewrapped, ciphertext), "old KEK on rewrapped DEK");
    refused(() => to.openValue("s", 4, wrappedDek, ciphertext), "new KEK on old wrapped DEK");
    refused(() => from.rewrapDek("s", 5, wrappedDek, to), "rewrap with the wrong version");
  });

  test("mac() is deterministic per key, length-framed, and differs across keys", () => {
    const kek = newKek();
    const a1 = envelopeOf(kek);
    const a2 = envelopeOf(kek);
    const b = envelopeOf(newKek());
    const m = a1.mac("row", "name", "1", new Uint8Array([1, 2, 3]));
    assert.equal(m.length, 32);
    assert.deepEqual(a1.mac("row", "name", "1", new Uint8Array([1, 2, 3])), m, "same envelope, same input");
    assert.deepEqual(a2.mac("row", "name", "1", new Uint8Array([1, 2, 3])), m, "same KEK, another envelope");
    assert.notDeepEqual(b.mac("row", "name", "1", new Uint8Array([1, 2, 3])), m, "another KEK");
    assert.notDeepEqual(a1.mac("head", "name", "1", new Uint8Array([1, 2, 3])), m, "another label");
    assert.notDeepEqual(a1.mac("row", "name", "2", new Uint8Array([1, 2, 3])), m, "another part");
    // Parts are length-framed: moving a boundary changes the MAC.
    assert.notDeepEqual(a1.mac("row", "ab", "c"), a1.mac("row", "a", "bc"));
    assert.notDeepEqual(a1.mac("row", "abc"), a1.mac("row", "ab", "c"));
    // A string part and its UTF-8 bytes are the same input.
    assert.deepEqual(a1.mac("row", "héllo"), a1.mac("row", enc.encode("héllo")));
    // The MAC key is not the KEK itself.
    const plain = sodium.crypto_generichash(32, enc.encode("row"), kek);
    assert.notDeepEqual(a1.mac("row"), plain);
  });

  test("equal() compares in full", () => {
    const env = envelopeOf(newKek());
    const m = env.mac("x");
    assert.equal(env.equal(m, m.slice()), true);
    assert.equal(env.equal(m, flip(m, 31)), false);
    assert.equal(env.equal(m, m.subarray(0, 31)), false);
  });

  test("destroy() zeroes the KEK it owns and the MAC key; nothing opens afterwards", () => {
    const kek = newKek();
    const owned = kek.slice();
    const env = new Envelope(sodium, owned);
    const { wrappedDek, ciphertext } = env.sealValue("s", 1, enc.encode(planted("destroy")));
    const macBefore = env.mac("x", "y");
    env.destroy();
    assert.deepEqual(owned, new Uint8Array(KEK_BYTES), "the KEK buffer handed to the envelope is all zero");
    refused(() => env.openValue("s", 1, wrappedDek, ciphertext), "open after destroy");
    const macAfter = env.mac("x", "y");
    assert.notDeepEqual(macAfter, macBefore);
    // The MAC key is now 32 zero bytes: the MAC equals HMAC-SHA256 keyed with zeros.
    const zeroKey = new Uint8Array(32);
    const expected = createHmac("sha256", zeroKey)
      .update("x")
      .update(new Uint8Array([0, 0, 0, 1]))
      .update("y")
      .digest();
    assert.deepEqual(Buffer.from(macAfter), expected, "the MAC key was zeroed");
    // The caller's own copy is untouched; a new envelope on it still opens the row.
    assert.ok(envelopeOf(kek).openValue("s", 1, wrappedDek, ciphertext).length > 0);
  });
});
