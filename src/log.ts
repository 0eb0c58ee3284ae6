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
