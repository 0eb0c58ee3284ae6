// The idle bench's reading of strace output: calls joined across threads, epoll timeouts, who woke and why.
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { epollTimeoutMs, parseStrace, splitArgs, wakeups } from "../../../bench/support/strace.js";

// Shaped like `strace -f -ttt -qq -o FILE -p PID` on node 20 (x86-64 epoll_pwait; arm64 has no epoll_wait).
const TRACE = [
  "8507  1796195396.081748 epoll_pwait(14, [], 1024, 29000, NULL, 8) = 0",
  "8510  1796195396.081733 epoll_pwait(9,  <unfinished ...>",
  "8507  1796195396.100000 futex(0x566f9cc, FUTEX_WAKE_PRIVATE, 1) = 1",
  "8510  1796195397.081733 <... epoll_pwait resumed>[{events=EPOLLIN, data={u32=12, u64=12}}], 1024, -1, NULL, 8) = 1",
  "8507  1796195398.0 epoll_pwait(14, [], 1024, 998, NULL, 8) = 0",
  "8507  1796195399.0 epoll_pwait(14, [], 1024, 999, NULL, 8) = 0",
  "8507  1796195399.5 epoll_pwait(14, [{events=EPOLLIN, data={u32=20, u64=20}}], 1024, 499, NULL, 8) = 1",
  '8507  1796195399.6 read(20, "a, b) = 3", 65536) = 9',
  "8507  1796195399.7 epoll_pwait(14, [], 1024, 1000, NULL, 8) = -1 EINTR (Interrupted system call)",
  "8507  1796195399.75 epoll_pwait(14, [], 1024, 0, NULL, 8) = 0",
  "8507  1796195399.8 --- SIGTERM {si_signo=SIGTERM, si_code=SI_USER} ---",
  "8511  1796195399.9 <... futex resumed>) = 0",
  "8512  1796195400.0 epoll_pwait(9,  <detached ...>",
  "",
].join("\n");

describe("strace parsing", () => {
  test("complete calls, joined unfinished/resumed pairs, a resume whose start came before the attach; signals and detaches skipped", () => {
    const calls = parseStrace(TRACE);
    assert.deepEqual(
      calls.map((c) => `${c.tid} ${c.name} ${c.result}`),
      [
        "8507 epoll_pwait 0",
        "8507 futex 1",
        "8510 epoll_pwait 1",
        "8507 epoll_pwait 0",
        "8507 epoll_pwait 0",
        "8507 epoll_pwait 1",
        "8507 read 9",
        "8507 epoll_pwait -1",
        "8507 epoll_pwait 0",
        "8511 futex 0",
      ],
    );
    const joined = calls[2]!;
    assert.equal(joined.args[0], "9", "the head before <unfinished ...> is kept");
    assert.equal(joined.args.length, 6);
    assert.equal(calls[7]!.errno, "EINTR");
    assert.deepEqual(calls[9]!.args, [], "a resume with nothing before it has no arguments, not a crash");
    assert.equal(calls[6]!.args[1], '"a, b) = 3"', "a string holding ') = ' does not end the call");
  });

  test("arguments split at top-level commas only", () => {
    assert.deepEqual(splitArgs('14, [{events=EPOLLIN, data={u32=1, u64=1}}], 1024, f(a, b), "x,\\"y"'), [
      "14",
      "[{events=EPOLLIN, data={u32=1, u64=1}}]",
      "1024",
      "f(a, b)",
      '"x,\\"y"',
    ]);
  });

  test("epoll timeouts are read from the end of the arguments, for each epoll call", () => {
    const one = (line: string) => epollTimeoutMs(parseStrace(line)[0]!);
    assert.equal(one("1 epoll_wait(3, [], 1024, 997) = 0"), 997);
    assert.equal(one("1 epoll_pwait(3, [], 1024, -1, NULL, 8) = 1"), -1);
    assert.equal(one("1 epoll_pwait2(3, [], 1024, {tv_sec=2, tv_nsec=500000000}, NULL, 8) = 0"), 2500);
    assert.equal(one("1 epoll_pwait2(3, [], 1024, NULL, NULL, 8) = 0"), -1, "no timespec: wait forever");
  });
});

describe("wakeups", () => {
  test("per thread: timer expiries (returned 0), I/O, signals, and non-blocking polls apart; the timeouts of timer wakeups at 2 significant digits; syscalls by count", () => {
    const w = wakeups(parseStrace(TRACE), 4);
    assert.equal(w.windowS, 4);
    assert.deepEqual(w.threads[0], { tid: 8507, polls: 5, nonBlocking: 1, timers: 3, io: 1, interrupted: 1 }, "a timeout-0 poll never slept: not a wakeup");
    assert.deepEqual(w.threads[1], { tid: 8510, polls: 1, nonBlocking: 0, timers: 0, io: 1, interrupted: 0 });
    assert.deepEqual(
      w.timerTimeouts,
      [
        [1000, 2],
        [29000, 1],
      ],
      "998 and 999 ms are one 1 s timer",
    );
    assert.deepEqual(w.syscalls[0], ["epoll_pwait", 7]);
    assert.equal(w.calls, 10);
  });
});
