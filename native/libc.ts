// The only place that touches the C ABI for libc: koffi bindings, loaded on first
// use so importing this module has no side effects.
import koffi from "koffi";

interface Libc {
  getsockopt: koffi.KoffiFunction;
  prctl: koffi.KoffiFunction;
  poll: koffi.KoffiFunction;
  close: koffi.KoffiFunction;
  flock: koffi.KoffiFunction;
  mallocTrim: koffi.KoffiFunction | null;
  mallopt: koffi.KoffiFunction | null;
}

let lib: Libc | undefined;

function libc(): Libc {
  if (!lib) {
    const c = koffi.load("libc.so.6");
    lib = {
      getsockopt: c.func("int getsockopt(int fd, int level, int name, _Out_ uint8_t *val, _Inout_ uint32_t *len)"),
      prctl: c.func("int prctl(int option, unsigned long a2, unsigned long a3, unsigned long a4, unsigned long a5)"),
      poll: c.func("int poll(_Inout_ uint8_t *fds, unsigned long nfds, int timeout)"),
      close: c.func("int close(int fd)"),
      flock: c.func("int flock(int fd, int op)"),
      // glibc only; musl has neither and needs neither.
      mallocTrim: optional(() => c.func("int malloc_trim(size_t pad)")),
      mallopt: optional(() => c.func("int mallopt(int param, int value)")),
    };
  }
  return lib;
}

function optional(fn: () => koffi.KoffiFunction): koffi.KoffiFunction | null {
  try {
    return fn();
  } catch {
    return null;
  }
}

const M_ARENA_MAX = -8;

/**
 * glibc gives each thread that mallocs its own arena and keeps freed memory in
 * them; on a gateway that is tens of MB of RSS after a large sync. Two arenas
 * (main + libuv's pool) and a trim after sync bursts return it.
 */
export function limitMallocArenas(): boolean {
  const f = libc().mallopt;
  return f !== null && (f(M_ARENA_MAX, 2) as number) === 1;
}

export function trimMalloc(): void {
  libc().mallocTrim?.(0);
}

// asm-generic values, the same on x86_64, arm64 and armhf.
const SOL_SOCKET = 1;
const SO_PEERCRED = 17;
const SO_PEERPIDFD = 77;
const PR_SET_DUMPABLE = 4;
const POLLIN = 0x1;
const ENOPROTOOPT = 92;
const EINTR = 4;
const LOCK_EX = 2;
const LOCK_NB = 4;
const EWOULDBLOCK = 11;

export interface PeerCred {
  readonly pid: number;
  readonly uid: number;
  readonly gid: number;
}

/** The connecting process's pid, uid and gid as the kernel recorded them at connect(). */
export function peerCred(fd: number): PeerCred | undefined {
  const buf = Buffer.alloc(12);
  const len = [12];
  const rc = libc().getsockopt(fd, SOL_SOCKET, SO_PEERCRED, buf, len) as number;
  if (rc !== 0 || len[0] !== 12) return undefined;
  return { pid: buf.readInt32LE(0), uid: buf.readUInt32LE(4), gid: buf.readUInt32LE(8) };
}

/**
 * A pidfd for the process that called connect() (SO_PEERPIDFD, Linux 6.5+). The
 * caller owns the descriptor and closes it with closeFd. `unsupported` means the
 * kernel has no SO_PEERPIDFD (fall back to start times); `gone` means the peer
 * process has already exited and been reaped.
 */
export function peerPidfd(fd: number): { pidfd: number } | "unsupported" | "gone" {
  const buf = Buffer.alloc(4);
  const len = [4];
  const rc = libc().getsockopt(fd, SOL_SOCKET, SO_PEERPIDFD, buf, len) as number;
  if (rc === 0 && len[0] === 4) return { pidfd: buf.readInt32LE(0) };
  return koffi.errno() === ENOPROTOOPT ? "unsupported" : "gone";
}

/** One struct pollfd, reused: the check runs before every request, so it allocates nothing. */
const pfd = Buffer.alloc(8);

/**
 * Whether the process a pidfd refers to has exited (the pidfd polls readable then).
 * Called before each request: a zero-timeout poll(2), 0.6–0.9 µs through koffi on
 * the development machine, about 1% of a lookup's CPU. A watcher thread could flag
 * exits without a call per request, but its news would race the request it should
 * stop; the call keeps the check exact.
 */
export function pidfdExited(pidfd: number): boolean {
  for (;;) {
    pfd.writeInt32LE(pidfd, 0);
    pfd.writeInt16LE(POLLIN, 4);
    pfd.writeInt16LE(0, 6);
    const rc = libc().poll(pfd, 1, 0) as number;
    if (rc === 0) return false;
    if (rc > 0) return true; // POLLIN: exited; POLLERR/POLLNVAL: not a usable pidfd either way
    if (koffi.errno() !== EINTR) return true;
  }
}

/** Closes a descriptor this process owns that node does not manage (a pidfd). */
export function closeFd(fd: number): void {
  libc().close(fd);
}

/** Makes the process non-dumpable: no core file, no ptrace by same-uid processes. */
export function disableCoreDumps(): boolean {
  return (libc().prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) as number) === 0;
}

/**
 * Takes an exclusive flock(2) on an open descriptor without waiting: true when
 * taken, false when another open file description holds it. The lock lasts as long
 * as the descriptor stays open (node opens with O_CLOEXEC, so children never
 * inherit it). Other failures throw with the errno.
 */
export function tryLockExclusive(fd: number): boolean {
  for (;;) {
    if ((libc().flock(fd, LOCK_EX | LOCK_NB) as number) === 0) return true;
    const errno = koffi.errno();
    if (errno === EWOULDBLOCK) return false;
    if (errno !== EINTR) throw Object.assign(new Error(`flock failed (errno ${errno})`), { errno });
  }
}
