import { spawn, type ChildProcess } from "node:child_process";
import os from "node:os";

/** Signals exec passes on to CMD. SIGKILL and SIGSTOP cannot be caught; SIGTSTP/SIGTTIN/SIGTTOU stop exec itself, as for any job. */
export const FORWARDED: readonly NodeJS.Signals[] = ["SIGTERM", "SIGINT", "SIGHUP", "SIGQUIT", "SIGUSR1", "SIGUSR2", "SIGWINCH", "SIGALRM"];

/** How long CMD has to exit after SIGTERM before a restart kills it. */
export const RESTART_GRACE_MS = 10_000;

/** CMD could not be started: 127 not found, 126 found but not executable (as a shell answers). */
export class StartError extends Error {
  readonly status: 126 | 127;
  constructor(cmd: string, errno: string | undefined) {
    const status = errno === "ENOENT" || errno === "ENOTDIR" ? 127 : 126;
    super(
      status === 127 ? `${cmd}: command not found (${errno})` : `${cmd}: cannot run it (${errno ?? "spawn failed"}): not an executable file, or not allowed`,
    );
    this.name = "StartError";
    this.status = status;
  }
}

/** A child's end as a shell reports it: its exit code, or 128 + the signal's number. */
export function exitStatus(code: number | null, signal: NodeJS.Signals | null): number {
  if (code !== null) return code;
  const n = signal ? os.constants.signals[signal] : undefined;
  return n === undefined ? 1 : 128 + n;
}

/**
 * Runs CMD and replaces it on demand. CMD gets its own session and process group
 * (detached): a Ctrl-C on exec's terminal reaches CMD once, through exec, rather
 * than twice; signals go to CMD's own pid (as `kill PID` would), and a restart
 * kills whatever is left in CMD's group, so a helper CMD started cannot keep
 * running with the old secrets.
 */
export class Supervisor {
  readonly #cmd: string;
  readonly #args: readonly string[];
  readonly #onExit: (status: number) => void;
  #child: ChildProcess | undefined;
  #restarting = false;
  #stopping = false;
  #lastStatus = 0;

  constructor(opts: { cmd: string; args: readonly string[]; onExit(status: number): void }) {
    this.#cmd = opts.cmd;
    this.#args = opts.args;
    this.#onExit = opts.onExit;
  }

  get pid(): number | undefined {
    return this.#child?.pid;
  }

  /** Starts CMD with `env` (the only place the values go); rejects with a StartError. */
  start(env: NodeJS.ProcessEnv): Promise<void> {
    const child = spawn(this.#cmd, this.#args, { env, stdio: "inherit", detached: true });
    child.once("exit", (code, signal) => {
      const status = exitStatus(code, signal);
      this.#lastStatus = status;
      if (child === this.#child && !this.#restarting) {
        this.#child = undefined;
        this.#onExit(status);
      }
    });
    // The pid is known at once when the exec worked; a failure comes as an error event.
    if (child.pid !== undefined) {
      this.#child = child;
      // A terminating signal that came while CMD was being replaced.
      if (this.#stopping) this.#kill("SIGTERM");
      return Promise.resolve();
    }
    return new Promise((_, reject) => child.once("error", (e: NodeJS.ErrnoException) => reject(new StartError(this.#cmd, e.code))));
  }

  /** A signal exec received, passed to CMD. A terminating one also means: do not start CMD again. */
  forward(sig: NodeJS.Signals): void {
    // Between two CMDs of a restart there is no one to tell: the new one is told at its start.
    // SIGHUP is left out: agents take it as "reload", and one that dies of it ends exec anyway.
    if (sig === "SIGTERM" || sig === "SIGINT" || sig === "SIGQUIT") this.#stopping = true;
    this.#kill(sig);
  }

  /** `--on-change signal:SIG`. */
  signal(sig: NodeJS.Signals): void {
    this.#kill(sig);
  }

  /**
   * SIGTERM, up to RESTART_GRACE_MS for CMD to exit, SIGKILL to its group, then CMD
   * again with `env`. If exec was told to stop meanwhile, it ends with the old CMD's
   * status instead. Rejects with a StartError when the new CMD cannot be started.
   */
  async restart(env: NodeJS.ProcessEnv): Promise<"restarted" | "stopped"> {
    const old = this.#child;
    if (!old || this.#stopping) return "stopped";
    this.#restarting = true;
    try {
      await this.#terminate(old);
    } finally {
      this.#restarting = false;
    }
    this.#child = undefined;
    if (this.#stopping) {
      this.#onExit(this.#lastStatus);
      return "stopped";
    }
    await this.start(env);
    return "restarted";
  }

  async #terminate(child: ChildProcess): Promise<void> {
    const exited = new Promise<void>((r) => (child.exitCode !== null || child.signalCode !== null ? r() : child.once("exit", () => r())));
    this.#kill("SIGTERM");
    let timer: NodeJS.Timeout | undefined;
    const late = new Promise<"late">((r) => (timer = setTimeout(() => r("late"), RESTART_GRACE_MS)));
    const first = await Promise.race([exited, late]);
    clearTimeout(timer);
    killGroup(child.pid, "SIGKILL");
    if (first === "late") await exited;
  }

  #kill(sig: NodeJS.Signals): void {
    const pid = this.#child?.pid;
    if (pid === undefined) return;
    try {
      process.kill(pid, sig);
    } catch {
      // Already gone: its exit event is on its way.
    }
  }
}

function killGroup(pid: number | undefined, sig: NodeJS.Signals): void {
  if (pid === undefined) return;
  try {
    process.kill(-pid, sig);
  } catch {
    // No process left in the group.
  }
}
