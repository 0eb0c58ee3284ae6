// koffi bindings for the sd_notify(3) wire protocol: one AF_UNIX datagram per
// message, sent to the address in $NOTIFY_SOCKET. Node has no Unix datagram
// sockets, so this is the only way to speak it without linking libsystemd.
// Loaded on first use, so importing this module has no side effects.
import os from "node:os";
import koffi from "koffi";

// asm-generic values, the same on x86_64, arm64 and armhf.
const AF_UNIX = 1;
const SOCK_DGRAM = 2;
const SOCK_CLOEXEC = 0o2000000;
const MSG_DONTWAIT = 0x40;
const MSG_NOSIGNAL = 0x4000;
const EINTR = 4;
/** sizeof(sockaddr_un.sun_path) on Linux, every architecture. */
const SUN_PATH_LEN = 108;

interface Lib {
  socket: koffi.KoffiFunction;
  sendto: koffi.KoffiFunction;
  close: koffi.KoffiFunction;
  /** offsetof(struct sockaddr_un, sun_path), as the C compiler lays it out. */
  pathOffset: number;
}

let lib: Lib | undefined;

function load(): Lib {
  if (!lib) {
    const c = koffi.load("libc.so.6");
    // struct sockaddr_un { sa_family_t sun_family; char sun_path[108]; }: koffi lays it
    // out with the platform's C rules, so no offsets are hard-coded here.
    const sockaddrUn = koffi.struct({ sun_family: "uint16", sun_path: koffi.array("uint8", SUN_PATH_LEN) });
    lib = {
      socket: c.func("int socket(int domain, int type, int protocol)"),
      // ssize_t is long on every Linux ABI.
      sendto: c.func("sendto", "long", ["int", "const uint8_t *", "size_t", "int", koffi.pointer(sockaddrUn), "uint32_t"]),
      close: c.func("int close(int fd)"),
      pathOffset: koffi.offsetof(sockaddrUn, "sun_path"),
    };
  }
  return lib;
}

/** A NOTIFY_SOCKET value encoded as the sun_path bytes and the address length sendto() takes. */
export interface UnixAddress {
  readonly path: Buffer;
  readonly length: number;
}

/**
 * Encodes a NOTIFY_SOCKET value: an absolute path, or `@name` for an abstract
 * socket (a leading NUL byte; the name is not NUL-terminated, its length is the
 * address length). Returns why it cannot be used otherwise (e.g. `vsock:`, which
 * only a VM's systemd sets and this build does not speak).
 */
export function unixAddress(address: string, pathOffset = 2): UnixAddress | string {
  const path = Buffer.alloc(SUN_PATH_LEN);
  if (address.startsWith("@")) {
    const name = Buffer.from(address.slice(1), "utf8");
    if (name.length === 0 || name.length > SUN_PATH_LEN - 1) return `abstract socket name must be 1 to ${SUN_PATH_LEN - 1} bytes`;
    name.copy(path, 1);
    return { path, length: pathOffset + 1 + name.length };
  }
  if (!address.startsWith("/")) return "not an absolute path or @abstract socket name";
  const name = Buffer.from(address, "utf8");
  if (name.includes(0)) return "path contains a NUL byte";
  if (name.length > SUN_PATH_LEN - 1) return `path is longer than the ${SUN_PATH_LEN - 1} bytes a Unix socket path may have`;
  name.copy(path, 0);
  return { path, length: pathOffset + name.length + 1 };
}

/** A datagram socket bound to nothing, close-on-exec; the fd, or the errno that refused it. */
export function openDatagramSocket(): { fd: number } | { errno: number } {
  const fd = load().socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0) as number;
  return fd >= 0 ? { fd } : { errno: koffi.errno() };
}

/** The address as it will be sent, with the sun_path offset of this platform's sockaddr_un. */
export function notifyAddress(address: string): UnixAddress | string {
  return unixAddress(address, load().pathOffset);
}

/**
 * Sends one datagram without blocking (a full receive queue is EAGAIN, never a
 * stalled event loop) and without SIGPIPE. Returns 0, or the errno.
 */
export function sendDatagram(fd: number, to: UnixAddress, message: Buffer): number {
  const l = load();
  for (;;) {
    const rc = l.sendto(fd, message, message.length, MSG_DONTWAIT | MSG_NOSIGNAL, { sun_family: AF_UNIX, sun_path: to.path }, to.length) as number;
    if (rc >= 0) return 0;
    const errno = koffi.errno();
    if (errno !== EINTR) return errno;
  }
}

export function closeSocket(fd: number): void {
  load().close(fd);
}

/** `ENOENT`, `ECONNREFUSED`, ...: the symbolic name of an errno, for log lines. */
export function errnoName(errno: number): string {
  for (const [name, n] of Object.entries(os.constants.errno)) if (n === errno) return name;
  return `errno ${errno}`;
}

export const ERRNO_EAGAIN = os.constants.errno.EAGAIN;
