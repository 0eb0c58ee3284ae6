import fs from "node:fs";
import path from "node:path";

/**
 * Runs a daemon with a wall clock of the test's choosing: libfaketime (Debian
 * `libfaketime`) preloaded, faking CLOCK_REALTIME only. The monotonic clock and
 * file timestamps stay real, as on a gateway whose RTC is wrong or whose clock NTP
 * steps. The offset is read from `file` on every call, so a test steps the clock
 * of a running daemon by writing to it ("-1d", "+2d", "+0").
 */
export function fakeWallClock(dir: string, initial = "+0"): { env: NodeJS.ProcessEnv; step(offset: string): void } {
  const lib = findLib();
  const file = path.join(dir, "faketime");
  fs.writeFileSync(file, `${initial}\n`);
  return {
    env: {
      LD_PRELOAD: lib,
      FAKETIME_TIMESTAMP_FILE: file,
      FAKETIME_NO_CACHE: "1",
      FAKETIME_DONT_FAKE_MONOTONIC: "1",
      NO_FAKE_STAT: "1",
    },
    step: (offset) => fs.writeFileSync(file, `${offset}\n`),
  };
}

function findLib(): string {
  for (const d of fs.readdirSync("/usr/lib")) {
    const p = path.join("/usr/lib", d, "faketime/libfaketime.so.1");
    if (fs.existsSync(p)) return p;
  }
  throw new Error("libfaketime is not installed (Debian package libfaketime; .ci/run installs it)");
}
