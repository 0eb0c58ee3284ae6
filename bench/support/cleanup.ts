import type { ChildProcess } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";

// Everything a bench starts or creates is registered here, so a bench that throws
// (or a Ctrl-C) still leaves no daemon, client or temp dir behind.
const children = new Set<ChildProcess>();
const dirs = new Set<string>();

/** Registers a child process to be killed if the run ends before the bench stops it. */
export function track<T extends ChildProcess>(child: T): T {
  children.add(child);
  child.once("exit", () => children.delete(child));
  return child;
}

/** A private temp dir under `base` (os.tmpdir()), short enough for a Unix socket path (< 107 bytes). */
export function tempDir(prefix = "scb-", base = os.tmpdir()): string {
  const dir = fs.mkdtempSync(path.join(base, prefix));
  fs.chmodSync(dir, 0o700);
  dirs.add(dir);
  return dir;
}

export function removeDir(dir: string): void {
  fs.rmSync(dir, { recursive: true, force: true });
  dirs.delete(dir);
}

/** Synchronous on purpose: it also runs from process 'exit', where nothing async completes. */
function cleanupNow(): void {
  for (const child of children) {
    if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL");
  }
  children.clear();
  for (const dir of dirs) fs.rmSync(dir, { recursive: true, force: true });
  dirs.clear();
}

/** 'exit' also fires after an uncaught error; signals need their own handlers to get there. */
export function installCleanup(): void {
  process.once("exit", cleanupNow);
  for (const [signal, code] of [
    ["SIGINT", 130],
    ["SIGTERM", 143],
  ] as const) {
    process.once(signal, () => {
      cleanupNow();
      process.exit(code);
    });
  }
}
