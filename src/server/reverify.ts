import type { Caller, CurrentExe } from "../policy/policy.js";
import type { ProcReader } from "./procfs.js";

/**
 * The executable of a connected process, checked again for rules that name one.
 *
 * Identity is read when a connection is accepted (peers.ts). The kernel's uid, gid
 * and pid are those of connect() and no later call changes them; groups, exe and
 * unit were read from /proc at accept. A process can still exec another program
 * after connecting and keep the socket (a wrapper that execs its payload, a program
 * that execs a helper, or one that passed the descriptor on and then exec'd), and
 * an exe rule grants to a program, not to whatever that process runs next. So
 * before a rule naming an exe is allowed to match, /proc/PID/exe is read again and
 * must still be the program identified at accept. One readlink (~4 µs here), and
 * only when every other key of an exe rule has matched: a policy without exe rules
 * reads nothing per request.
 *
 * Once the program has changed, exe rules never match this connection again, even
 * if the process later exec's the original program back (it may have handed the
 * socket on in between). What cannot be seen: an exec and a return to the same
 * program between two requests, and an exec of the same program (`python3 a.py`
 * then `python3 b.py` is the same exe, which is what an interpreter rule means).
 */
export class ExeWatch implements CurrentExe {
  readonly #pid: number;
  readonly #accepted: string;
  readonly #proc: ProcReader;
  readonly #alive: () => boolean;
  #changed: string | undefined;

  /** `alive`: the connection's process is still the one that connected (the pidfd or start-time check). */
  constructor(o: { pid: number; accepted: string; proc: ProcReader; alive: () => boolean }) {
    this.#pid = o.pid;
    this.#accepted = o.accepted;
    this.#proc = o.proc;
    this.#alive = o.alive;
  }

  get changed(): string | undefined {
    return this.#changed;
  }

  exe(): string | undefined {
    if (this.#changed !== undefined) return undefined;
    const now = this.#proc.exe(this.#pid);
    // Asked again after the read: the link read must belong to the process that
    // connected, not to a later one given its pid in between.
    if (now === this.#accepted && this.#alive()) return now;
    this.#changed =
      now === undefined || !this.#alive()
        ? `its executable can no longer be read, so rules naming an exe no longer match this connection`
        : `it runs ${quote(now)} now, not ${quote(this.#accepted)} as when it connected, so rules naming an exe no longer match this connection`;
    return undefined;
  }
}

/**
 * The caller of one request: the identity read at accept, with the exe read again
 * at most once (the first time a rule asks), however many names the request checks.
 */
export function requestCaller(c: Caller, watch: ExeWatch): Caller {
  let asked = false;
  let exe: string | undefined;
  const current: CurrentExe = {
    exe: () => {
      if (!asked) {
        asked = true;
        exe = watch.exe();
      }
      return exe;
    },
    get changed() {
      return watch.changed;
    },
  };
  return { uid: c.uid, gid: c.gid, pid: c.pid, groups: c.groups, exe: c.exe, unit: c.unit, current };
}

/** A path for a message: at most ~60 characters, the end kept (where the program's name is). */
function quote(p: string): string {
  return JSON.stringify(p.length > 60 ? `…${p.slice(-59)}` : p);
}
