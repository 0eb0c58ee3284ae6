import { closeFd, peerCred, peerPidfd, pidfdExited, type PeerCred } from "../../native/libc.js";
import type { Caller } from "../policy/policy.js";
import { unitFromCgroup } from "../policy/unit.js";
import { procfs, type ProcReader } from "./procfs.js";
import { ExeWatch, requestCaller } from "./reverify.js";

/** The kernel calls the tracker needs; native/libc.ts in the daemon, a fake in tests. */
export interface PeerSys {
  peerCred(fd: number): PeerCred | undefined;
  peerPidfd(fd: number): { pidfd: number } | "unsupported" | "gone";
  pidfdExited(pidfd: number): boolean;
  closeFd(fd: number): void;
}

export const nativeSys: PeerSys = { peerCred, peerPidfd, pidfdExited, closeFd };

/** One accepted connection's caller, and whether it still speaks for that process. */
export interface Peer {
  /** Undefined when the caller could not be identified; every request is then refused. */
  readonly caller: Caller | undefined;
  /** Why `caller` is undefined. */
  readonly problem: string | undefined;
  /**
   * Undefined while the process that connected is alive; otherwise why this
   * connection no longer speaks for it (it exited, or its pid now names another).
   */
  check(): string | undefined;
  /**
   * The caller for one request: `caller`, with its exe checked again (at most once
   * per request, and only if a rule naming an exe asks) against what it runs now
   * (reverify.ts). Asked for only when the policy has an exe rule.
   */
  current(): Caller | undefined;
  /** Closes the pidfd, if one is held. Called once, when the connection closes. */
  release(): void;
}

export type TrackMode = "pidfd" | "starttime";

/**
 * Identifies the process at the other end of each connection at accept — uid, gid
 * and pid from SO_PEERCRED; groups, executable and systemd unit from /proc — and
 * keeps that identity honest for the connection's life. Where the kernel has
 * SO_PEERPIDFD the connection holds a pidfd, which cannot be fooled by pid reuse;
 * elsewhere the process start time is recorded and compared again before each
 * request, as SPIRE's peer tracker does.
 */
export class PeerTracker {
  readonly #sys: PeerSys;
  readonly #proc: ProcReader;
  #mode: TrackMode | undefined;

  constructor(o: { sys?: PeerSys; proc?: ProcReader; mode?: TrackMode } = {}) {
    this.#sys = o.sys ?? nativeSys;
    this.#proc = o.proc ?? procfs;
    this.#mode = o.mode;
  }

  /** "pidfd" once the kernel has shown it supports SO_PEERPIDFD; undefined before the first connection. */
  get mode(): TrackMode | undefined {
    return this.#mode;
  }

  /** The kernel's credentials only: cheap, for connection limits before the full identification. */
  credentials(fd: number): PeerCred | undefined {
    return this.#sys.peerCred(fd);
  }

  track(fd: number, cred: PeerCred | undefined): Peer {
    if (!cred) return unidentified("the kernel did not report the caller's credentials (SO_PEERCRED)");
    const { pid } = cred;
    // A process in a pid namespace the daemon cannot see: the kernel's uid and gid
    // still hold, but there is no process to read groups, exe or unit from.
    if (pid <= 0) {
      const caller: Caller = { uid: cred.uid, gid: cred.gid, pid, groups: [] };
      return { caller, problem: undefined, check: () => undefined, current: () => caller, release: () => undefined };
    }
    const gone = `the process that opened this connection (pid ${pid}) has exited; a connection speaks only for the process that opened it`;
    let pidfd: number | undefined;
    if (this.#mode !== "starttime") {
      const r = this.#sys.peerPidfd(fd);
      if (r === "unsupported") this.#mode = "starttime";
      else if (r === "gone") return refused(gone);
      else {
        this.#mode = "pidfd";
        pidfd = r.pidfd;
      }
    }
    const p = this.#proc;
    const before = pidfd === undefined ? p.stat(pid) : undefined;
    const status = p.status(pid);
    const exe = p.exe(pid);
    const cgroup = p.cgroup(pid);
    // What was read above belongs to the connecting process only if that process
    // is still the one behind the pid now: the pidfd says so exactly; otherwise the
    // start time must not have changed across the reads.
    const release = () => {
      if (pidfd !== undefined) this.#sys.closeFd(pidfd);
      pidfd = undefined;
    };
    const check =
      pidfd !== undefined
        ? () => (pidfd === undefined || this.#sys.pidfdExited(pidfd) ? gone : undefined)
        : () => {
            const now = p.stat(pid);
            return now && before && now.startTime === before.startTime && !isDead(now.state) ? undefined : gone;
          };
    // With a pidfd, a live process whose /proc entry cannot be read is hidden from
    // the daemon (hidepid), not gone: the kernel's uid and gid still stand.
    if ((!status && pidfd === undefined) || (pidfd === undefined && (!before || isDead(before.state))) || check() !== undefined) {
      release();
      return refused(gone);
    }
    if (status && status.uid !== cred.uid) {
      release();
      return refused(`pid ${pid} now belongs to uid ${status.uid}, not the uid ${cred.uid} that connected; the connecting process has gone`);
    }
    const caller: Caller = {
      uid: cred.uid,
      gid: cred.gid,
      pid,
      groups: status?.groups ?? [],
      exe: exe === undefined || exe.endsWith(" (deleted)") ? undefined : exe,
      unit: cgroup === undefined ? undefined : unitFromCgroup(cgroup),
    };
    let verdict: string | undefined;
    const alive = () => (verdict ??= check()) === undefined;
    let watch: ExeWatch | undefined;
    return {
      caller,
      problem: undefined,
      check: () => (alive() ? undefined : verdict),
      current: () => {
        if (caller.exe === undefined) return caller; // no exe rule can match it anyway
        watch ??= new ExeWatch({ pid, accepted: caller.exe, proc: p, alive });
        return requestCaller(caller, watch);
      },
      release,
    };
  }
}

/** Zombie or dead: the process has exited even if its pid is still listed. */
function isDead(state: string): boolean {
  return state === "Z" || state === "X" || state === "x";
}

/** The connecting process is gone (or its pid names another): every request is refused. */
function refused(problem: string): Peer {
  return { caller: undefined, problem, check: () => problem, current: () => undefined, release: () => undefined };
}

/** No identity at all: requests are answered, and policy refuses every read. */
function unidentified(problem: string): Peer {
  return { caller: undefined, problem, check: () => undefined, current: () => undefined, release: () => undefined };
}
