import fs from "node:fs";
import os from "node:os";
import path from "node:path";

/** A private temp folder removed when the test (or suite) ends. Short, so socket paths fit in 107 bytes. */
export function tmpDir(t: { after(fn: () => void | Promise<void>): void }, prefix = "sc-"): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), prefix));
  fs.chmodSync(dir, 0o700);
  t.after(() => fs.rmSync(dir, { recursive: true, force: true }));
  return dir;
}
