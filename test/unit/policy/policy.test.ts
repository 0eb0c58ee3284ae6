import assert from "node:assert/strict";
import { test } from "node:test";
import { compileGlob } from "../../../src/policy/glob.js";
import { Policy, type Caller } from "../../../src/policy/policy.js";
import type { Accounts } from "../../../src/policy/accounts.js";

const accounts: Accounts = {
  uidOf: (u) => ({ expanso: 1001, ops: 1002 })[u],
  gidOf: (g) => ({ pipelines: 2001 })[g],
};
const caller = (uid: number, gid = uid, groups: number[] = []): Caller => ({ uid, gid, pid: 1, groups });

test("globs: * stays within a segment, ** crosses segments", () => {
  const one = compileGlob("kafka/*");
  assert.ok(one.test("kafka/password"));
  assert.ok(!one.test("kafka/a/b"));
  assert.ok(!one.test("kafkax/password"));
  const deep = compileGlob("db/**");
  assert.ok(deep.test("db/a"));
  assert.ok(deep.test("db/a/b/c"));
  assert.ok(!deep.test("dbx/a"));
  const mid = compileGlob("a/**/z");
  assert.ok(mid.test("a/z"));
  assert.ok(mid.test("a/b/c/z"));
  assert.ok(!mid.test("a/b/c/y"));
  assert.ok(compileGlob("**").test("any/thing.at/all"));
  assert.ok(compileGlob("demo/api-*").test("demo/api-token"));
  assert.ok(!compileGlob("demo/api.token").test("demo/apiXtoken"), "dots are literal");
});

test("first matching rule wins and nothing matching is a denial", () => {
  const p = new Policy(
    [
      { match: { user: "expanso" }, allow: ["kafka/*"], admin: false },
      { match: { uid: 1001 }, allow: ["**"], admin: true },
      { match: { group: "pipelines" }, allow: ["db/**"], admin: false },
      { match: { uid: 0 }, allow: ["**"], admin: true },
    ],
    accounts,
    999,
  );
  assert.ok(p.canRead(caller(1001), "kafka/password"));
  assert.ok(!p.canRead(caller(1001), "db/x"), "the first rule for uid 1001 does not allow db/**; later rules are not consulted");
  assert.ok(!p.isAdmin(caller(1001)));
  assert.ok(p.canRead(caller(1500, 2001), "db/a/b"), "primary group matches");
  assert.ok(p.canRead(caller(1500, 100, [2001]), "db/a"), "supplementary group matches");
  assert.ok(!p.canRead(caller(1500, 100), "db/a"));
  assert.ok(p.isAdmin(caller(0)));
  assert.ok(!p.canRead(caller(999), "kafka/password"), "the daemon's own uid has no rights once a policy exists");
});

test("without a policy only the daemon's own uid may read and administer; root is not special", () => {
  const p = new Policy(undefined, accounts, 1234);
  assert.ok(p.canRead(caller(1234), "anything/at/all"));
  assert.ok(p.isAdmin(caller(1234)));
  assert.ok(!p.canRead(caller(0), "anything"));
  assert.ok(!p.isAdmin(caller(0)));
});

test("unknown accounts match nobody and are reported; a unit rule does not match a caller outside the unit", () => {
  const p = new Policy(
    [
      { match: { user: "ghost" }, allow: ["**"], admin: true },
      { match: { unit: "edge-agent.service" }, allow: ["**"], admin: false },
      { match: { uid: 5 }, allow: [], admin: false },
    ],
    accounts,
    0,
  );
  assert.ok(!p.canRead(caller(0), "x"));
  assert.ok(!p.canRead(caller(5), "x"));
  assert.ok(p.warnings.some((w) => w.includes("policy[0].match.user") && w.includes("ghost")));
  assert.ok(p.warnings.some((w) => w.includes("policy[2] allows nothing")));
});
