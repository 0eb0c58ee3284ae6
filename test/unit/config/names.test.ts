import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { MAX_NAME_BYTES, isValidName, nameProblem } from "../../../src/config/names.js";

describe("secret names: [a-z0-9][a-z0-9._/-]*, at most 256 bytes, no '..' segments", () => {
  test("valid names", () => {
    for (const n of [
      "a",
      "0",
      "demo/api-token",
      "kafka/password",
      "db/prod/main.user_name-2",
      "a/b/c/d",
      "x..y",
      "v1.2/a..b",
      "a" + "b".repeat(MAX_NAME_BYTES - 1),
    ]) {
      assert.equal(nameProblem(n), undefined, n);
      assert.ok(isValidName(n), n);
    }
  });

  test("characters and first character", () => {
    const charset = "must match [a-z0-9][a-z0-9._/-]* (lower case letters, digits, '.', '_', '/', '-')";
    for (const n of ["Demo", "demo/API", "-x", ".hidden", "_x", "/abs", "a b", "a\nb", "kafka:pw", "é", "a*", "a\\b"]) {
      assert.equal(nameProblem(n), charset, JSON.stringify(n));
    }
  });

  test("'..', '.' and empty segments", () => {
    const segs = "must not contain empty, '.' or '..' path segments";
    for (const n of ["a/../b", "a/..", "a/.", "a/./b", "a//b", "a/", "0/.."]) {
      assert.equal(nameProblem(n), segs, n);
    }
  });

  test("empty and too long", () => {
    assert.equal(nameProblem(""), "is empty");
    assert.equal(nameProblem("a".repeat(MAX_NAME_BYTES + 1)), "is longer than 256 bytes");
    assert.ok(!isValidName("a".repeat(MAX_NAME_BYTES + 1)));
  });
});
