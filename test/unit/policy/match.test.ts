// Policy rules on every key at once: uid/user, gid/group, unit and exe must all
// match; unit and exe are active (not "matches nobody" any more); doctor's warnings
// for rules that match nothing or everyone.
import assert from "node:assert/strict";
import { test } from "node:test";
import type { Accounts } from "../../../src/policy/accounts.js";
import { everyoneWarnings, Policy, type Caller, type PolicyHost } from "../../../src/policy/policy.js";
import type { PolicyRule } from "../../../src/config/schema.js";

const accounts: Accounts = {
  uidOf: (u) => ({ expanso: 1001, ops: 1002 })[u],
  gidOf: (g) => ({ pipelines: 2001, sealcache: 2002 })[g],
};
// /usr/bin/python3 is a symlink to python3.11; /opt/agent/bin/agent exists; nothing else does.
const host: PolicyHost = {
  resolveExe: (p) =>
    ({ "/usr/bin/python3": "/usr/bin/python3.11", "/usr/bin/python3.11": "/usr/bin/python3.11", "/opt/agent/bin/agent": "/opt/agent/bin/agent" })[p],
};
const rule = (match: PolicyRule["match"], allow: string[] = ["**"], admin = false): PolicyRule => ({ match, allow, admin });
const who = (o: Partial<Caller> = {}): Caller => ({ uid: 1001, gid: 1001, pid: 4242, groups: [], ...o });

test("a unit rule matches only callers in that unit; a bare name means .service", () => {
  const p = new Policy([rule({ unit: "edge-agent" }, ["kafka/*"])], accounts, 0, host);
  assert.deepEqual(
    p.warnings.filter((w) => !w.includes("allows every")),
    [],
  );
  assert.ok(p.canRead(who({ unit: "edge-agent.service" }), "kafka/password"));
  assert.ok(p.canRead(who({ uid: 5, unit: "edge-agent.service" }), "kafka/password"), "any account in the unit, since the rule names no account");
  assert.ok(!p.canRead(who({ unit: "other.service" }), "kafka/password"));
  assert.ok(!p.canRead(who({ unit: undefined }), "kafka/password"), "a caller in no unit");
  assert.ok(!p.canRead(who({ unit: "user@1001.service" }), "kafka/password"));
});

test("an exe rule matches the program /proc/PID/exe shows, also through a symlink in the config", () => {
  const p = new Policy([rule({ exe: "/opt/agent/bin/agent" }, ["db/*"]), rule({ exe: "/usr/bin/python3" }, ["py/*"])], accounts, 0, host);
  assert.ok(p.canRead(who({ exe: "/opt/agent/bin/agent" }), "db/x"));
  assert.ok(!p.canRead(who({ exe: "/opt/agent/bin/agent2" }), "db/x"));
  assert.ok(!p.canRead(who({ exe: "/opt/agent/bin/agent (deleted)" }), "db/x"));
  assert.ok(!p.canRead(who({ exe: undefined }), "db/x"), "an unreadable exe matches no exe rule");
  assert.ok(p.canRead(who({ exe: "/usr/bin/python3.11" }), "py/x"), "the kernel reports the symlink's target");
  assert.ok(p.canRead(who({ exe: "/usr/bin/python3" }), "py/x"), "and the path as written still matches");
});

test("every key a rule names must match; the first rule that matches decides", () => {
  const p = new Policy(
    [
      rule({ user: "expanso", group: "pipelines", unit: "edge-agent.service", exe: "/opt/agent/bin/agent" }, ["all/*"], true),
      rule({ user: "expanso", exe: "/opt/agent/bin/agent" }, ["exe/*"]),
      rule({ user: "expanso", unit: "edge-agent.service" }, ["unit/*"]),
      rule({ user: "expanso" }, ["user/*"]),
    ],
    accounts,
    0,
    host,
  );
  const full = who({ groups: [2001], unit: "edge-agent.service", exe: "/opt/agent/bin/agent" });
  assert.ok(p.canRead(full, "all/x") && p.isAdmin(full));
  assert.ok(!p.canRead(full, "user/x"), "first match wins: later rules are not consulted");
  assert.ok(p.canRead(who({ unit: "edge-agent.service", exe: "/opt/agent/bin/agent" }), "exe/x"), "without the group: the second rule");
  assert.ok(!p.isAdmin(who({ unit: "edge-agent.service", exe: "/opt/agent/bin/agent" })));
  assert.ok(p.canRead(who({ unit: "edge-agent.service", exe: "/usr/bin/bash" }), "unit/x"), "another program in the unit: the third rule");
  assert.ok(p.canRead(who({ exe: "/usr/bin/bash" }), "user/x"), "the account alone: the fourth");
  assert.ok(
    !p.canRead(who({ uid: 1002, groups: [2001], unit: "edge-agent.service", exe: "/opt/agent/bin/agent" }), "all/x"),
    "another account in the same unit and exe matches none",
  );
});

test("rules that match nothing are reported and fail closed", () => {
  const p = new Policy(
    [
      rule({ user: "ghost" }),
      rule({ group: "nogroup-here" }),
      rule({ uid: 1001, user: "ops" }),
      rule({ gid: 7, group: "pipelines" }),
      rule({ unit: "pipelines.slice" }),
      rule({ unit: "bad name" }),
      rule({ uid: 1001, exe: "/opt/missing/agent" }, ["m/*"]),
      rule({ uid: 1001 }, [], false),
    ],
    accounts,
    0,
    host,
  );
  const w = p.warnings.join("\n");
  assert.match(w, /policy\[0\]\.match\.user: no local user "ghost"; the rule matches nobody/);
  assert.match(w, /policy\[1\]\.match\.group: no local group "nogroup-here"/);
  assert.match(w, /policy\[2\] names uid 1001 and user ops \(uid 1002\); the rule matches nobody/);
  assert.match(w, /policy\[3\] names gid 7 and group pipelines \(gid 2001\)/);
  assert.match(w, /policy\[4\]\.match\.unit: "pipelines.slice" is a slice/);
  assert.match(w, /policy\[5\]\.match\.unit: "bad name" is not a valid systemd unit name/);
  assert.match(w, /policy\[6\]\.match\.exe: \/opt\/missing\/agent is not an executable file \(yet\)/);
  assert.match(w, /policy\[7\] allows nothing/);
  for (const c of [who({ uid: 0 }), who({ gid: 7 }), who({ unit: "pipelines.slice" }), who({ unit: "bad name" })])
    assert.ok(!p.canRead(c, "x"), JSON.stringify(c));
  // A program installed after start still matches its path as written.
  assert.ok(p.canRead(who({ exe: "/opt/missing/agent" }), "m/x"));
});

test("broad rules: every secret to any account of a unit or exe, or to the socket's whole group", () => {
  const p = new Policy([rule({ unit: "edge-agent.service" }), rule({ exe: "/opt/agent/bin/agent" }, ["**"]), rule({ user: "expanso" })], accounts, 0, host);
  assert.match(p.warnings.join("\n"), /policy\[0\] allows every secret to every account running unit edge-agent.service; add a user or group/);
  assert.match(p.warnings.join("\n"), /policy\[1\] allows every secret to every account running exe \/opt\/agent\/bin\/agent/);
  assert.ok(!p.warnings.some((w) => w.startsWith("policy[2]")), "a rule naming an account is not broad");

  const rules = [rule({ group: "sealcache" }), rule({ gid: 2002 }, ["a/*"], true), rule({ group: "sealcache", user: "expanso" }), rule({ group: "pipelines" })];
  const e = everyoneWarnings(rules, accounts, 2002);
  assert.equal(e.length, 2, e.join("\n"));
  assert.match(e[0]!, /^policy\[0\] matches every account that can open the socket \(gid 2002 is the socket's group\) and allows every secret;/);
  assert.match(e[1]!, /^policy\[1\] .* allows a\/\*, with admin;/);
  assert.deepEqual(everyoneWarnings(rules, accounts, undefined), [], "no socket yet: nothing to compare with");
});
