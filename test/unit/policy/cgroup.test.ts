// The systemd unit of a caller, read from /proc/PID/cgroup text. Fixtures are the
// shapes seen on real hosts: pure cgroup v2, hybrid, legacy v1, user sessions,
// containers and cgroup namespaces.
import assert from "node:assert/strict";
import { test } from "node:test";
import { normaliseUnit, unitFromCgroup, unitProblem } from "../../../src/policy/unit.js";

const V1_TAIL = "12:pids:/\n11:memory:/\n1:cpu,cpuacct:/\n";

test("cgroup v2: the first component that is not a slice is the unit", () => {
  assert.equal(unitFromCgroup("0::/system.slice/edge-agent.service\n"), "edge-agent.service");
  assert.equal(unitFromCgroup("0::/system.slice/edge-agent.service/payload\n"), "edge-agent.service", "a delegated sub-cgroup still belongs to its service");
  assert.equal(unitFromCgroup("0::/pipelines.slice/pipelines-kafka.slice/kafka-bridge.service\n"), "kafka-bridge.service", "nested slices are skipped");
  assert.equal(unitFromCgroup("0::/system.slice/docker-4f1c.scope\n"), "docker-4f1c.scope");
  assert.equal(unitFromCgroup("0::/init.scope\n"), "init.scope");
  assert.equal(unitFromCgroup("0::/system.slice/getty@tty1.service\n"), "getty@tty1.service", "template instances");
  assert.equal(unitFromCgroup("0::/system.slice/sys-devices-x\\x2dy.device\n"), "sys-devices-x\\x2dy.device", "escaped names");
  assert.equal(unitFromCgroup("0::/system.slice/_cpu.service\n"), "cpu.service", "systemd's _ escape for names that clash with kernel files");
});

test("a user's own services are below user@UID.service: they cannot pose as a system service", () => {
  assert.equal(unitFromCgroup("0::/user.slice/user-1000.slice/user@1000.service/app.slice/edge-agent.service\n"), "user@1000.service");
  assert.equal(unitFromCgroup("0::/user.slice/user-1000.slice/session-4.scope\n"), "session-4.scope", "a login shell is its session scope");
});

test("no unit: the root cgroup, slices only, odd components, namespaces, garbage", () => {
  for (const text of [
    "0::/\n",
    "0::/system.slice\n",
    "0::/system.slice/\n",
    "0::/system.slice/not-a-unit\n",
    "0::/system.slice/edge agent.service\n",
    "0::/../../system.slice/edge-agent.service\n", // the reader sits in a cgroup namespace below it
    "0::/./edge-agent.service\n",
    "0::system.slice/edge-agent.service\n",
    "",
    "garbage",
    "0::/" + "a".repeat(300) + ".service\n",
  ]) {
    assert.equal(unitFromCgroup(text), undefined, JSON.stringify(text));
  }
});

test("hybrid and legacy v1 hierarchies: the unified line first, name=systemd otherwise", () => {
  assert.equal(unitFromCgroup(`${V1_TAIL}1:name=systemd:/system.slice/edge-agent.service\n0::/system.slice/edge-agent.service\n`), "edge-agent.service");
  assert.equal(unitFromCgroup(`${V1_TAIL}1:name=systemd:/system.slice/edge-agent.service\n`), "edge-agent.service", "legacy v1");
  assert.equal(unitFromCgroup(`9:name=systemd:/system.slice/a.service\n0::/\n`), "a.service", "hybrid with an empty unified line");
  assert.equal(unitFromCgroup(`4:memory:/system.slice/evil.service\n0::/\n`), undefined, "controller hierarchies other than name=systemd do not count");
  // This test machine's shape: v1 controllers at the root, the unified hierarchy holding the process.
  assert.equal(unitFromCgroup("9:name=systemd:/\n4:memory:/process_api/1bd2\n0::/sc-test.slice/sc-edge-1.service\n"), "sc-edge-1.service");
});

test("rule names: a bare name means .service; slices and invalid names are reported", () => {
  assert.equal(normaliseUnit("edge-agent"), "edge-agent.service");
  assert.equal(normaliseUnit("edge-agent.service"), "edge-agent.service");
  assert.equal(normaliseUnit("docker-1.scope"), "docker-1.scope");
  assert.equal(unitProblem("edge-agent.service"), undefined);
  assert.match(unitProblem("pipelines.slice") ?? "", /is a slice/);
  assert.match(unitProblem("edge agent.service") ?? "", /not a valid systemd unit name/);
  assert.match(unitProblem(".service") ?? "", /not a valid/);
});
