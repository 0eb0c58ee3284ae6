// The bench's /proc readers: the parsers on captured text, the readers on this test's own process.
import assert from "node:assert/strict";
import fs from "node:fs";
import os from "node:os";
import { describe, test } from "node:test";
import { onTmpfs, parseIo, parseSchedstat, parseStatTicks, readIo, readThreads, statusField } from "../../../bench/support/procfs.js";
import { activity, sample } from "../../../bench/support/sampler.js";

describe("/proc parsers", () => {
  test("stat: utime + stime after a command name holding spaces and parentheses", () => {
    const stat = "4242 (node (x) y) S 1 4242 4242 0 -1 4194560 12345 0 0 0 731 269 0 0 20 0 11 0 100 1000 2000";
    assert.equal(parseStatTicks(stat), 731 + 269);
  });

  test("io: every counter, including cancelled_write_bytes; a missing one is an error", () => {
    const text = "rchar: 10\nwchar: 20\nsyscr: 3\nsyscw: 4\nread_bytes: 4096\nwrite_bytes: 81920\ncancelled_write_bytes: 8192\n";
    assert.deepEqual(parseIo(text), { rchar: 10, wchar: 20, syscr: 3, syscw: 4, read_bytes: 4096, write_bytes: 81920, cancelled_write_bytes: 8192 });
    assert.throws(() => parseIo("rchar: 10\n"), /no wchar line/);
  });

  test("status fields with and without a unit; schedstat's run time and run count", () => {
    const status = "Name:\tnode\nVmRSS:\t  51200 kB\nvoluntary_ctxt_switches:\t17\nnonvoluntary_ctxt_switches:\t2\n";
    assert.equal(statusField(status, "VmRSS"), 51200);
    assert.equal(statusField(status, "voluntary_ctxt_switches"), 17);
    assert.throws(() => statusField(status, "VmHWM"), /no VmHWM line/);
    assert.deepEqual(parseSchedstat("618249542 160690 8\n"), { cpuNs: 618249542, runs: 8 });
  });
});

describe("/proc readers on a live process", () => {
  test("a busy second in this process shows as CPU time in both clocks and as write_bytes on a real disk", () => {
    const a = sample(process.pid);
    const until = performance.now() + 300;
    while (performance.now() < until);
    const dir = fs.mkdtempSync(`${os.tmpdir()}/scb-procfs-`);
    try {
      const file = `${dir}/f`;
      fs.writeFileSync(file, Buffer.alloc(64 * 1024, 1));
      fs.fsyncSync(fs.openSync(file, "r+"));
      const b = sample(process.pid);
      const act = activity(a, b);
      assert.ok(act.cpuPercent > 50, `schedstat saw ${act.cpuPercent}% of a core while spinning`);
      assert.ok(act.statCpuPercent > 0);
      if (!onTmpfs(dir)) assert.ok(act.writeBytes >= 64 * 1024, `write_bytes grew by ${act.writeBytes}`);
      const t = readThreads(process.pid);
      assert.ok(t.threads >= 1 && t.mainVoluntary <= t.voluntary);
      assert.ok(readIo(process.pid).rchar > 0);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  test("tmpfs is told apart from a disk", () => {
    if (fs.existsSync("/dev/shm")) assert.equal(onTmpfs("/dev/shm"), true);
    assert.equal(onTmpfs("/proc"), false);
  });
});
