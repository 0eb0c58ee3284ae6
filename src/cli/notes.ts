import type { Io } from "./context.js";
import type { FollowReport } from "./follow.js";

/**
 * What exec and render say about themselves while they run, on stderr (exec's
 * stdout is CMD's; render's carries its results): `sealcache exec: MESSAGE`, or
 * with --json one line `{"event":EVENT,"message":...}`. Names and causes only:
 * the messages come from the daemon's errors and our own, never from a value.
 */
export type Note = (event: string, message: string) => void;

export function noter(command: "exec" | "render", json: boolean, io: Io): Note {
  return (event, message) => io.err(json ? JSON.stringify({ event, message }) + "\n" : `sealcache ${command}: ${message}\n`);
}

/** The follow loop's reports as notes; a problem that repeats with the same cause is said once until it clears. */
export function followNotes(note: Note, keeps: string): FollowReport {
  let last: string | undefined;
  return {
    problem(message, retryMs) {
      if (message !== last) note("watch_failed", `cannot watch for changes (${message}); ${keeps}; retrying with backoff (next in ${seconds(retryMs)})`);
      last = message;
    },
    recovered() {
      last = undefined;
      note("watch_resumed", "watching for changes again");
    },
    applyFailed(message, retryMs) {
      note("change_failed", `a change could not be applied (${message}); ${keeps}; trying again in ${seconds(retryMs)}`);
    },
  };
}

function seconds(ms: number): string {
  return `${Math.max(1, Math.round(ms / 1000))} s`;
}
