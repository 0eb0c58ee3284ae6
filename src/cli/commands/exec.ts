import os from "node:os";
import { parseDuration } from "../../config/duration.js";
import { SealcacheError } from "../../errors.js";
import { socketFor, type GlobalOptions, type Io } from "../context.js";
import { FORWARDED, StartError, Supervisor } from "../exec/supervisor.js";
import { UsageError } from "../exit.js";
import { follow, watchRevision } from "../follow.js";
import { followNotes, noter } from "../notes.js";
import { checkSecretName, checkWatchable, fetchAll, waitingThrough, type Fetched } from "../secrets.js";

const SYNOPSIS = "sealcache exec --env VAR=NAME... [--on-change restart|signal:SIG|none] [--wait DURATION] -- CMD ARGS";
const VAR = /^[A-Za-z_][A-Za-z0-9_]*$/;

interface Binding {
  readonly variable: string;
  readonly name: string;
}

type OnChange = { readonly kind: "restart" } | { readonly kind: "none" } | { readonly kind: "signal"; readonly signal: NodeJS.Signals };

export interface ExecFlags {
  readonly env: readonly string[] | undefined;
  readonly onChange: string | undefined;
  readonly wait: string | undefined;
}

/**
 * `exec`: CMD with secrets in its environment, supervised. The values go into
 * CMD's environment only: never its argv, a file, or exec's own environment or
 * output. Exits with CMD's status (128 + N for a signal), 127/126 when CMD cannot
 * be started, or the error's exit code when a secret cannot be had before CMD runs.
 */
export async function execCommand(g: GlobalOptions, flags: ExecFlags, rest: readonly string[] | undefined, io: Io): Promise<number> {
  const bindings = parseBindings(flags.env);
  if (!rest || rest.length === 0) throw new UsageError(`exec needs the command to run after --: ${SYNOPSIS}`);
  const onChange = parseOnChange(flags.onChange);
  const waitMs = flags.wait === undefined ? 0 : parseDuration(flags.wait);
  if (waitMs === undefined)
    throw new UsageError(`--wait must be a duration such as 30s, 5m or 1h, got ${JSON.stringify(flags.wait!.slice(0, 40))}: ${SYNOPSIS}`);
  const names = [...new Set(bindings.map((b) => b.name))];
  const target = socketFor(g);
  const note = noter("exec", g.json, io);
  const label = (name: string) =>
    `--env ${bindings
      .filter((b) => b.name === name)
      .map((b) => `${b.variable}=${name}`)
      .join(" --env ")}`;
  const [cmd, ...args] = rest as [string, ...string[]];

  const stop = new AbortController();
  let finish!: (status: number) => void;
  const finished = new Promise<number>((r) => (finish = r));
  const sup = new Supervisor({ cmd, args, onExit: (status) => finish(status) });
  // Installed first: a SIGTERM while waiting for the cache ends exec as it would have ended CMD.
  let started = false;
  const onSignal = (sig: NodeJS.Signals) => {
    if (started) return sup.forward(sig);
    if (sig === "SIGTERM" || sig === "SIGINT" || sig === "SIGQUIT" || sig === "SIGHUP") finish(128 + os.constants.signals[sig]);
  };
  for (const s of FORWARDED) process.on(s, onSignal);
  const cleanup = () => {
    stop.abort();
    for (const s of FORWARDED) process.off(s, onSignal);
  };
  void finished.then(cleanup);

  try {
    const boot = waitingThrough(
      () => firstValues(target, names, onChange.kind !== "none", label),
      waitMs,
      (e) => note("waiting", `waiting up to ${flags.wait} for the secrets: ${e.message}`),
      stop.signal,
    );
    const first = await Promise.race([boot, finished]);
    if (typeof first === "number") return first;
    const env = environment(bindings, first.values);
    let current = digests(first.values);
    started = true;
    await sup.start(env);
    if (first.since !== undefined) {
      void follow({
        target,
        names,
        since: first.since,
        signal: stop.signal,
        report: followNotes(note, `${cmd} keeps running with the values it has`),
        apply: async () => {
          const fresh = await fetchAll(target, names, label);
          const moved = names.filter((n) => fresh.get(n)!.digest !== current.get(n));
          if (moved.length === 0) return;
          const nextEnv = environment(bindings, fresh);
          if (onChange.kind === "signal") {
            sup.signal(onChange.signal);
            note("signalled", `sent ${onChange.signal} to ${cmd} (pid ${sup.pid}) after a change of ${moved.join(", ")}`);
          } else {
            const before = sup.pid;
            try {
              if ((await sup.restart(nextEnv)) === "restarted")
                note("restarted", `restarted ${cmd} (pid ${before} -> ${sup.pid}) after a change of ${moved.join(", ")}`);
            } catch (e) {
              if (!(e instanceof StartError)) throw e;
              io.err(failureLine(e, g.json));
              finish(e.status);
            }
          }
          current = digests(fresh);
        },
      });
    }
    return await finished;
  } catch (e) {
    cleanup();
    if (e instanceof StartError) {
      io.err(failureLine(e, g.json));
      return e.status;
    }
    throw e;
  }
}

/** The revision to follow from (taken first, so no change slips in between) and the values. */
async function firstValues(target: ReturnType<typeof socketFor>, names: readonly string[], watching: boolean, label: (n: string) => string) {
  let since: number | undefined;
  if (watching) {
    try {
      since = await watchRevision(target, names);
    } catch (e) {
      // The reads name the --env that asked for a refused or unknown secret; the watch's refusal does not.
      await fetchAll(target, names, label);
      throw e;
    }
  }
  return { since, values: await fetchAll(target, names, label) };
}

/** CMD's environment: exec's own plus the secrets. A NUL cannot be in an environment variable, so it is refused, by name. */
function environment(bindings: readonly Binding[], values: ReadonlyMap<string, Fetched>): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env };
  for (const b of bindings) {
    const v = values.get(b.name)!;
    if (v.text.includes("\0")) {
      throw new SealcacheError(
        "bad_value",
        `--env ${b.variable}=${b.name}: the value of secret ${JSON.stringify(b.name)} contains a NUL byte, which an environment variable cannot ` +
          `hold; use sealcache render to put it in a file, or read it from the socket`,
      );
    }
    env[b.variable] = v.text;
  }
  return env;
}

function digests(values: ReadonlyMap<string, Fetched>): Map<string, string> {
  return new Map([...values].map(([n, v]) => [n, v.digest]));
}

function parseBindings(env: readonly string[] | undefined): Binding[] {
  if (!env || env.length === 0) throw new UsageError(`exec needs at least one --env VAR=NAME: ${SYNOPSIS}`);
  const out: Binding[] = [];
  for (const e of env) {
    const eq = e.indexOf("=");
    const variable = eq < 0 ? e : e.slice(0, eq);
    const name = eq < 0 ? "" : e.slice(eq + 1);
    if (eq < 0 || !VAR.test(variable))
      throw new UsageError(
        `--env ${JSON.stringify(e.slice(0, 80))}: expected VAR=NAME, VAR a variable name ([A-Za-z_][A-Za-z0-9_]*) and NAME a secret name: ${SYNOPSIS}`,
      );
    checkSecretName(name, `--env ${variable}=${name.slice(0, 64)}`);
    if (out.some((b) => b.variable === variable)) throw new UsageError(`--env ${variable} is given twice`);
    out.push({ variable, name });
  }
  checkWatchable([...new Set(out.map((b) => b.name))], "exec");
  return out;
}

function parseOnChange(raw: string | undefined): OnChange {
  if (raw === undefined || raw === "restart") return { kind: "restart" };
  if (raw === "none") return { kind: "none" };
  const m = /^signal:(?:SIG)?([A-Z0-9]+)$/i.exec(raw);
  const sig = m ? (`SIG${m[1]!.toUpperCase()}` as NodeJS.Signals) : undefined;
  if (sig && sig in os.constants.signals && sig !== "SIGKILL" && sig !== "SIGSTOP") return { kind: "signal", signal: sig };
  throw new UsageError(
    `--on-change must be restart, none or signal:SIG with SIG a signal name such as HUP or SIGUSR1, got ${JSON.stringify(raw.slice(0, 40))}`,
  );
}

/** A CMD that cannot start, reported as a shell would (127/126), or as one JSON line with --json. */
function failureLine(e: StartError, json: boolean): string {
  const code = e.status === 127 ? "command_not_found" : "command_not_executable";
  return json ? JSON.stringify({ error: code, message: e.message }) + "\n" : `sealcache: exec: ${e.message}\n`;
}
