import fs from "node:fs";
import { O_CLOEXEC, O_FLAGS, RESOLVE_BENEATH, RESOLVE_NO_MAGICLINKS, openat, openat2, readlinkat, type OpenResult } from "../../../native/openat2.js";

/**
 * Opening a path under a directory so that no symlink (nor a rename racing the
 * open) can lead outside it: the check and the open are one operation.
 *
 * - `openat2`: the kernel resolves the path beneath the directory's descriptor
 *   (RESOLVE_BENEATH: symlinks are followed only while they stay inside, ".."
 *   never climbs above it, an absolute symlink is EXDEV; RESOLVE_NO_MAGICLINKS:
 *   no /proc/PID/fd/N jumps). Linux 5.6 and later.
 * - `walk`: older kernels. Each component is opened with O_NOFOLLOW relative to
 *   the descriptor of the one before; a symlink is read (readlinkat) and its text
 *   followed by this code, ".." by popping a descriptor it holds, so nothing is
 *   ever resolved by the kernel past a name this code has looked at.
 *
 * Both follow an absolute symlink only when its text names a place under the
 * directory (its configured or its real path), resolving the rest from the
 * directory's descriptor; `openat2` hands those (EXDEV) to the walk.
 */
export type Resolution = "openat2" | "walk";

/** The read-only, non-blocking (a FIFO or device must not block), close-on-exec open of a file. */
const FILE_FLAGS = O_FLAGS.RDONLY | O_FLAGS.NONBLOCK | O_CLOEXEC;
const MAX_LINKS = 40; // as the kernel's own limit

/** Which resolution this kernel supports, probed once on a directory descriptor. */
export function probeResolution(dirFd: number): Resolution {
  const r = openat2(dirFd, ".", O_FLAGS.RDONLY | O_FLAGS.DIRECTORY | O_CLOEXEC, RESOLVE_BENEATH);
  if ("fd" in r) {
    fs.closeSync(r.fd);
    return "openat2";
  }
  // ENOSYS: before 5.6; EPERM: a seccomp filter (older container runtimes) refusing unknown calls.
  return r.errno === "ENOSYS" || r.errno === "EPERM" ? "walk" : "openat2";
}

/**
 * Opens `rel` (relative, without ".." — the caller checks) under `dirFd`. `prefixes`
 * are the absolute paths naming that directory (configured and real), for
 * absolute symlinks. An error is the errno name: EXDEV means "leads outside".
 */
export function openBeneath(dirFd: number, prefixes: readonly string[], rel: string, how: Resolution): OpenResult {
  if (how === "openat2") {
    for (let attempt = 0; ; attempt++) {
      const r = openat2(dirFd, rel, FILE_FLAGS, RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS);
      // EAGAIN: a rename elsewhere raced a ".." in the resolution; the kernel asks for a retry.
      if ("errno" in r && r.errno === "EAGAIN" && attempt < 3) continue;
      if ("errno" in r && r.errno === "EXDEV") return walk(dirFd, prefixes, rel);
      return r;
    }
  }
  return walk(dirFd, prefixes, rel);
}

function walk(dirFd: number, prefixes: readonly string[], rel: string): OpenResult {
  const held: number[] = []; // descriptors of the folders below dirFd, innermost last
  const top = () => held[held.length - 1] ?? dirFd;
  const parts = split(rel);
  let links = 0;
  try {
    while (parts.length > 0) {
      const name = parts.shift()!;
      if (name === ".") continue;
      if (name === "..") {
        if (held.length === 0) return { errno: "EXDEV" };
        fs.closeSync(held.pop()!);
        continue;
      }
      const last = parts.length === 0;
      const r = openat(top(), name, (last ? FILE_FLAGS : O_FLAGS.RDONLY | O_FLAGS.DIRECTORY | O_CLOEXEC) | O_FLAGS.NOFOLLOW);
      if ("fd" in r) {
        if (last) return r;
        held.push(r.fd);
        continue;
      }
      // O_NOFOLLOW on a symlink fails (ELOOP, or ENOTDIR with O_DIRECTORY); whether the
      // name is one is asked of readlinkat, not read from errno: errno is only as good
      // as nothing else on this thread having run since the call (V8 reserving memory
      // between the call and koffi.errno() was seen to leave ENOMEM there).
      const link = readlinkat(top(), name);
      if (!("target" in link)) return r; // not a symlink: the error stands
      if (++links > MAX_LINKS) return { errno: "ELOOP" };
      let target = link.target;
      if (target.startsWith("/")) {
        const base = prefixes.find((p) => target === p || target.startsWith(`${p}/`));
        if (base === undefined) return { errno: "EXDEV" };
        while (held.length > 0) fs.closeSync(held.pop()!);
        target = target.slice(base.length);
      }
      const expanded = split(target);
      parts.unshift(...expanded);
    }
    // The path (or the link it ended on) names a folder: opened, and refused by the caller's type check.
    return openat(top(), ".", FILE_FLAGS);
  } finally {
    for (const fd of held) fs.closeSync(fd);
  }
}

function split(p: string): string[] {
  return p.split("/").filter((s) => s !== "");
}
