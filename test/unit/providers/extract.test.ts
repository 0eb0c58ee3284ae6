import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { extractKey, parseDotenv } from "../../../src/providers/extract.js";
import { isProviderError, type ProviderError } from "../../../src/providers/provider.js";
import { assertNoLeaks, planted } from "../../support/planted.js";

const enc = new TextEncoder();
const dec = new TextDecoder();
const WHERE = "/run/secrets/x";

const pick = (content: string | Uint8Array, key: string) => dec.decode(extractKey(typeof content === "string" ? enc.encode(content) : content, key, WHERE));

/** Extraction must fail as a permanent ProviderError whose message names where and the key, never the content. */
function refused(content: string | Uint8Array, key: string, message: RegExp): ProviderError {
  try {
    extractKey(typeof content === "string" ? enc.encode(content) : content, key, WHERE);
  } catch (e) {
    assert.ok(isProviderError(e), String(e));
    assert.equal(e.kind, "permanent");
    assert.match(e.message, message);
    assert.ok(e.message.startsWith(`${WHERE}: `), e.message);
    assertNoLeaks(e.message + String(e.stack) + String(e.cause ?? ""), "extract error");
    return e;
  }
  assert.fail(`key ${key} was extracted; it must be refused`);
}

describe("JSON key extraction", () => {
  test("a string value, exactly", () => {
    const pw = planted("json");
    assert.equal(pick(JSON.stringify({ username: "pipeline", password: pw }), "password"), pw);
    assert.equal(pick(`  \n{"password": "  spaced\\n\\u00e9 "}\n`, "password"), "  spaced\n\u00e9 ");
  });

  test("numbers and booleans as their text; nested objects and arrays as compact JSON", () => {
    const doc = JSON.stringify({ port: 5432, ratio: 0.5, tls: true, conn: { host: "db", port: 5432 }, hosts: ["a", "b"] }, null, 2);
    assert.equal(pick(doc, "port"), "5432");
    assert.equal(pick(doc, "ratio"), "0.5");
    assert.equal(pick(doc, "tls"), "true");
    assert.equal(pick(doc, "conn"), '{"host":"db","port":5432}');
    assert.equal(pick(doc, "hosts"), '["a","b"]');
  });

  test("a missing key names the key, not the content", () => {
    const pw = planted("json-missing");
    refused(JSON.stringify({ passwd: pw }), "password", /JSON object has no key "password"$/);
  });

  test("inherited properties are not keys", () => {
    refused(JSON.stringify({ a: planted("proto") }), "constructor", /has no key "constructor"/);
    refused(JSON.stringify({ a: planted("proto") }), "toString", /has no key "toString"/);
  });

  test("a null value is an error", () => {
    refused('{"password": null, "other": "' + planted("null") + '"}', "password", /JSON key "password" is null$/);
  });

  test("JSON that does not parse is reported without the parser's message (which quotes the input)", () => {
    const pw = planted("broken");
    refused(`{"password": "${pw}", }`, "password", /value looks like JSON but does not parse$/);
    refused(`{"password": ${pw}}`, "password", /does not parse$/);
  });
});

describe(".env key extraction", () => {
  test("plain, export, quotes, comments, blank lines, CRLF", () => {
    const kafka = planted("kafka");
    const text = [
      "# a comment",
      "",
      `KAFKA_PASSWORD=${kafka}`,
      "export EXPORTED=yes",
      'DOUBLE="two words # not a comment"',
      "SINGLE='it''s \\n literal'",
      'ESCAPED="line1\\nline2 \\"q\\" back\\\\slash"',
      "INLINE=value # trailing comment",
      "HASH=abc#def",
      "SPACED = around equals ",
      "EMPTY=",
      "WIN=crlf\r",
    ].join("\n");
    assert.equal(pick(text, "KAFKA_PASSWORD"), kafka);
    assert.equal(pick(text, "EXPORTED"), "yes");
    assert.equal(pick(text, "DOUBLE"), "two words # not a comment");
    assert.equal(pick(text, "SINGLE"), "it''s \\n literal");
    assert.equal(pick(text, "ESCAPED"), 'line1\nline2 "q" back\\slash');
    assert.equal(pick(text, "INLINE"), "value");
    assert.equal(pick(text, "HASH"), "abc#def");
    assert.equal(pick(text, "SPACED"), "around equals");
    assert.equal(pick(text, "EMPTY"), "");
    assert.equal(pick(text, "WIN"), "crlf");
  });

  test("the last of a repeated key wins (as a shell sourcing the file would)", () => {
    assert.equal(pick("A=1\nA=2\n", "A"), "2");
  });

  test("a missing key names the key, not the content", () => {
    refused(`KAFKA_USER=pipeline\nKAFKA_PASS=${planted("env")}\n`, "KAFKA_PASSWORD", /no line KAFKA_PASSWORD=\.\.\. in the \.env value$/);
  });

  test("parseDotenv gives up on anything that is not KEY=VALUE lines", () => {
    assert.equal(parseDotenv("just a token"), undefined);
    assert.deepEqual([...parseDotenv("# only comments\n\n")!], []);
  });
});

describe("content that is neither JSON nor .env", () => {
  test("a plain token, a PEM block, a JSON array: refused, content not quoted", () => {
    const tok = planted("plain");
    refused(`${tok}\n`, "password", /key "password" requested but the value is neither a JSON object nor KEY=VALUE lines$/);
    refused(`-----BEGIN PRIVATE KEY-----\n${tok}\n-----END PRIVATE KEY-----\n`, "key", /neither a JSON object nor KEY=VALUE lines$/);
    refused(`["${tok}"]`, "0", /neither a JSON object nor KEY=VALUE lines$/);
  });

  test("bytes that are not UTF-8", () => {
    const bytes = new Uint8Array([0x50, 0x4c, 0x41, 0xff, 0xfe, 0x3d, 0x80]);
    refused(bytes, "password", /key "password" requested but the value is not UTF-8 text$/);
  });
});
