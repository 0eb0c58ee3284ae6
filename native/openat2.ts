// The only place that touches the C ABI for opening files relative to a directory
// descriptor: openat2(2) (Linux 5.6+, through syscall(2): glibc has no wrapper),
// and the openat(2) and readlinkat(2) a component-by-component walk needs where the
// kernel has no openat2. koffi bindings, loaded on first use so importing this
// module has no side effects. The resolution rules themselves live with their
// user (src/providers/file/beneath.ts): this file only makes the calls.
//
// The calls are synchronous, on the calling thread: koffi's async calls run on a
// worker thread whose errno is not readable afterwards, and the errno is what says
// "outside", "not there" or "a symlink". These calls only resolve names and open
// (O_NONBLOCK: a FIFO or device does not block); reading is left to node's async fs.
import { constants } from "node:fs";
import koffi from "koffi";

interface Calls {
  syscall: koffi.KoffiFunction;
  openat: koffi.KoffiFunction;
  readlinkat: koffi.KoffiFunction;
}

let lib: Calls | undefined;

function calls(): Calls {
  if (!lib) {
    const c = koffi.load("libc.so.6");
    lib = {
      // syscall(2) is variadic; every argument here is an integer or a pointer, which
      // the x86_64, arm64 and armhf Linux ABIs pass alike for variadic and fixed calls
      // (and glibc's syscall is assembly that only moves registers). koffi cannot
      // call a variadic function any other way than on this thread either.
      syscall: c.func("long syscall(long nr, int dirfd, const char *path, const uint8_t *how, size_t size)"),
      openat: c.func("int openat(int dirfd, const char *path, int flags, int mode)"),
      readlinkat: c.func("long readlinkat(int dirfd, const char *path, _Out_ uint8_t *buf, size_t size)"),
    };
  }
  return lib;
}

// SYS_openat2 is 437 on every architecture that took the unified syscall table
// (x86_64, arm64, armhf, riscv64...). RESOLVE_* from linux/openat2.h.
const SYS_OPENAT2 = 437;
export const RESOLVE_NO_MAGICLINKS = 0x02;
export const RESOLVE_BENEATH = 0x08;
/** O_CLOEXEC: 02000000 on x86_64, arm64 and armhf (node's fs.constants does not carry it). */
export const O_CLOEXEC = 0o2000000;
const PATH_MAX = 4096;

/** A descriptor, or the errno name (ENOENT, EXDEV, ELOOP, ENOSYS...) the call failed with. */
export type OpenResult = { fd: number } | { errno: string };

const names = new Map<number, string>(Object.entries(koffi.os.errno).map(([k, v]) => [v, k]));

function errnoName(): string {
  const e = koffi.errno();
  return names.get(e) ?? `errno ${e}`;
}

/** openat2(dirfd, path, {flags, mode: 0, resolve}); `ENOSYS` where the kernel is older than 5.6 (or a seccomp filter hides it). */
export function openat2(dirfd: number, path: string, flags: number, resolve: number): OpenResult {
  const how = Buffer.alloc(24); // struct open_how { u64 flags; u64 mode; u64 resolve; }
  how.writeBigUInt64LE(BigInt(flags), 0);
  how.writeBigUInt64LE(BigInt(resolve), 16);
  const fd = Number(calls().syscall(SYS_OPENAT2, dirfd, path, how, how.length));
  return fd >= 0 ? { fd } : { errno: errnoName() };
}

/** openat(dirfd, path, flags): one component, relative to a directory this process holds. */
export function openat(dirfd: number, path: string, flags: number): OpenResult {
  const fd = calls().openat(dirfd, path, flags, 0) as number;
  return fd >= 0 ? { fd } : { errno: errnoName() };
}

/** The target of the symlink `path` under dirfd (as bytes decoded UTF-8), or the errno name (EINVAL: not a symlink). */
export function readlinkat(dirfd: number, path: string): { target: string } | { errno: string } {
  const buf = Buffer.alloc(PATH_MAX);
  const n = Number(calls().readlinkat(dirfd, path, buf, buf.length));
  return n >= 0 ? { target: buf.subarray(0, n).toString("utf8") } : { errno: errnoName() };
}

export const O_FLAGS = {
  RDONLY: constants.O_RDONLY,
  NONBLOCK: constants.O_NONBLOCK,
  NOFOLLOW: constants.O_NOFOLLOW,
  DIRECTORY: constants.O_DIRECTORY,
} as const;
