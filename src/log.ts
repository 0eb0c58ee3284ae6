import { pino, type Logger, type DestinationStream } from "pino";

export type { Logger };
export type LogLevel = "fatal" | "error" | "warn" | "info" | "debug" | "trace" | "silent";

/**
 * Structured JSON to stdout for journald. Secret values are never arguments to a
 * logger anywhere in this code base: parts log names, versions and error classes.
 * The redact list is a second line of defence for fields that must never appear.
 */
export function createLogger(opts: { level: LogLevel; destination?: DestinationStream }): Logger {
  return pino(
    {
      level: opts.level,
      base: { svc: "sealcache" },
      timestamp: pino.stdTimeFunctions.isoTime,
      formatters: { level: (label) => ({ level: label }) },
      redact: { paths: ["value", "*.value", "password", "*.password", "token", "*.token"], censor: "[redacted]" },
    },
    opts.destination ?? pino.destination({ fd: 1, sync: true }),
  );
}

/**
 * Process warnings (`process.emitWarning`: deprecations, SDK notices) as log lines
 * instead of node's plain-text stderr, so the daemon's output stays JSON lines.
 * Node prints them through a 'warning' listener of its own; removing it is the
 * documented way to take that over (the event itself is still emitted). The text
 * is cut to its first line: a warning's body is a library's prose, not ours to
 * vouch for, and it never carries a value of ours.
 */
export function routeProcessWarnings(logger: Logger): void {
  process.removeAllListeners("warning");
  process.on("warning", (w: Error & { code?: string }) => {
    const first = String(w.message ?? "")
      .split("\n", 1)[0]!
      .slice(0, 200);
    // The AWS SDK's notice that a future release will need a newer Node: the packager's
    // concern (packaging/targets.json), not the gateway operator's.
    const notice = first.startsWith("NodeVersionSupportWarning");
    logger[notice ? "debug" : "warn"]({ warning: w.name, code: w.code, message: first }, "process warning");
  });
}
