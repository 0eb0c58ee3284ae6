import { execFileSync } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";

/**
 * A small tmpfs mounted on a fresh folder (0700), for a data_dir that fills up as
 * an SD card does; unmounted and removed when the test ends. Needs root (the test
 * suite runs as root, as CI does).
 */
export function mountTmpfs(
  t: { after(fn: () => void | Promise<void>): void },
  sizeKiB: number,
): { dir: string; fill(): void; free(): void; used(file: string): number } {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "sc-fs-"));
  execFileSync("mount", ["-t", "tmpfs", "-o", `size=${sizeKiB}k,mode=0700`, "tmpfs", dir]);
  t.after(() => {
    execFileSync("umount", ["-l", dir]);
    fs.rmdirSync(dir);
  });
  const junk = path.join(dir, "junk");
  return {
    dir,
    /** Writes a file until the filesystem answers ENOSPC. */
    fill() {
      const fd = fs.openSync(junk, "a");
      const chunk = Buffer.alloc(16 * 1024, 0x55);
      try {
        for (;;) fs.writeSync(fd, chunk);
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== "ENOSPC") throw e;
      } finally {
        fs.closeSync(fd);
      }
      // Whatever partial block is left too.
      const fd2 = fs.openSync(junk, "a");
      try {
        for (;;) fs.writeSync(fd2, Buffer.alloc(512, 0x55));
      } catch {
        /* full */
      } finally {
        fs.closeSync(fd2);
      }
    },
    free() {
      fs.rmSync(junk, { force: true });
    },
    used(file: string) {
      try {
        return fs.statSync(path.join(dir, file)).size;
      } catch {
        return 0;
      }
    },
  };
}
