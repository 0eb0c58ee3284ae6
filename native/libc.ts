// The only place that touches the C ABI for libc: koffi bindings, loaded on first
// use so importing this module has no side effects.
import koffi from "koffi";

let lib: { getsockopt: koffi.KoffiFunction; prctl: koffi.KoffiFunction } | undefined;

function libc() {
  if (!lib) {
    const c = koffi.load("libc.so.6");
    lib = {
      getsockopt: c.func("int getsockopt(int fd, int level, int name, _Out_ uint8_t *val, _Inout_ uint32_t *len)"),
      prctl: c.func("int prctl(int option, unsigned long a2, unsigned long a3, unsigned long a4, unsigned long a5)"),
    };
  }
  return lib;
}

// asm-generic values, the same on x86_64, arm64 and armhf.
const SOL_SOCKET = 1;
const SO_PEERCRED = 17;
const PR_SET_DUMPABLE = 4;

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

/** Makes the process non-dumpable: no core file, no ptrace by same-uid processes. */
export function disableCoreDumps(): boolean {
  return (libc().prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) as number) === 0;
}
