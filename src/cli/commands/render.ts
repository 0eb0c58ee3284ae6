import { spawn } from "node:child_process";
import { socketFor, type GlobalOptions, type Io } from "../context.js";
import { UsageError } from "../exit.js";
import { follow, watchRevision } from "../follow.js";
import { followNotes, noter, type Note } from "../notes.js";
import { loadTargets, parseMode, writeIfChanged, type Target } from "../render/targets.js";
import { checkWatchable, fetchAll, waitingThrough } from "../secrets.js";

const SYNOPSIS = "sealcache render --template T --out F [--mode 0600] [--watch] [--on-change CMD]";

export interface RenderFlags {
  readonly templates: readonly string[] | undefined;
  readonly outs: readonly string[] | undefined;
  readonly mode: string | undefined;
  readonly watch: boolean;
  readonly onChange: string | undefined;
}

/**
 * `render`: each template with its secrets, written whole or not at all. One pass
 * fetches every name its templates use before writing anything, so a name that is
 * unknown, not synced, forbidden or revoked fails the pass and leaves every file as
 * it was. `--watch` then follows the names and renders again on a change.
 */
export async function render(g: GlobalOptions, flags: RenderFlags, io: Io): Promise<number> {
  const mode = parseMode(flags.mode);
  if (flags.onChange !== undefined && flags.onChange.trim() === "") throw new UsageError(`--on-change needs a command: ${SYNOPSIS}`);
  const targets = loadTargets(flags.templates, flags.outs, SYNOPSIS);
  const names = [...new Set(targets.flatMap((t) => t.template.names))];
  if (flags.watch) checkWatchable(names, "render");
  const target = socketFor(g);
  const note = noter("render", g.json, io);

  const pass = async (these: readonly Target[]) => {
    const values = await fetchAll(
      target,
      new Set(these.flatMap((t) => t.template.names)),
      (n) => `${these.find((t) => t.template.names.includes(n))!.template.file} names ${JSON.stringify(n)}`,
    );
    // Every file's text first: one that fails to render leaves all of them untouched.
    const texts = new Map(these.map((t) => [t, t.template.render(new Map(t.template.names.map((n) => [n, values.get(n)!.text])))]));
    const written: Target[] = [];
    for (const [t, text] of texts) {
      const changed = writeIfChanged(t.out, text, mode);
      if (changed) written.push(t);
      io.out(
        g.json
          ? JSON.stringify({ out: t.out, template: t.template.file, written: changed, secrets: t.template.names }) + "\n"
          : `${changed ? "rendered" : "unchanged"} ${t.out}\n`,
      );
    }
    texts.clear();
    if (written.length > 0 && flags.onChange !== undefined) await runOnChange(flags.onChange, note);
  };

  if (!flags.watch) {
    await pass(targets);
    return 0;
  }

  const stop = new AbortController();
  const onSignal = () => stop.abort();
  process.on("SIGTERM", onSignal);
  process.on("SIGINT", onSignal);
  try {
    // A companion unit may start before the cache has filled, or before the daemon:
    // it waits for those; an unknown or forbidden name ends it with its exit code.
    const since = await waitingThrough(
      async () => {
        const rev = names.length === 0 ? 0 : await watchRevision(target, names);
        await pass(targets);
        return rev;
      },
      Number.POSITIVE_INFINITY,
      (e) => note("waiting", `waiting for the secrets: ${e.message}`),
      stop.signal,
    ).catch((e: unknown) => {
      if (stop.signal.aborted) return undefined;
      throw e;
    });
    if (since === undefined || names.length === 0) return 0;
    await follow({
      target,
      names,
      since,
      signal: stop.signal,
      report: followNotes(note, "the files keep their last rendering"),
      apply: async (changed) => {
        if (stop.signal.aborted) return;
        await pass(targets.filter((t) => t.template.names.some((n) => changed.has(n))));
      },
    });
    return 0;
  } finally {
    process.off("SIGTERM", onSignal);
    process.off("SIGINT", onSignal);
  }
}

/**
 * `--on-change CMD` through /bin/sh -c, after a pass wrote at least one file, one
 * at a time. Its output goes to stderr: render's stdout carries results (JSON
 * lines with --json). A failure is reported, not retried: the files are written.
 */
function runOnChange(cmd: string, note: Note): Promise<void> {
  return new Promise((resolve) => {
    const child = spawn("/bin/sh", ["-c", cmd], { stdio: ["ignore", 2, 2] });
    child.once("error", (e) => {
      note("on_change_failed", `--on-change could not start /bin/sh: ${e.message}`);
      resolve();
    });
    child.once("exit", (code, signal) => {
      if (code !== 0) note("on_change_failed", `--on-change command ${signal ? `was killed by ${signal}` : `exited with ${code}`}`);
      resolve();
    });
  });
}
