import fs from "node:fs";

// node's fs on a raw descriptor (one opened through native/openat2.ts, not a
// FileHandle): the calls run in libuv's thread pool like any fs promise.

export function fstatFd(fd: number): Promise<fs.BigIntStats> {
  return new Promise((resolve, reject) => fs.fstat(fd, { bigint: true }, (e, st) => (e ? reject(e) : resolve(st))));
}

export function readFd(fd: number, buf: Uint8Array, offset: number, length: number, position: number): Promise<number> {
  return new Promise((resolve, reject) => fs.read(fd, buf, offset, length, position, (e, n) => (e ? reject(e) : resolve(n))));
}

export function closeFd(fd: number): Promise<void> {
  return new Promise((resolve) => fs.close(fd, () => resolve()));
}

/**
 * The same file, unchanged: device, inode, size, and modification and change
 * times to the nanosecond. A writer that truncates and rewrites in place moves
 * mtime/ctime (and usually size) between two stats that bracket a read.
 */
export function sameFile(a: fs.BigIntStats, b: fs.BigIntStats): boolean {
  return a.dev === b.dev && a.ino === b.ino && a.size === b.size && a.mtimeNs === b.mtimeNs && a.ctimeNs === b.ctimeNs;
}
