import { describeError, isConfigError, isSealcacheError, type ErrorCode } from "../errors.js";

/** The exit codes (README "CLI"): 0 ok, 1 failure, 2 usage, 3 not found, 4 forbidden, 5 unavailable. */
export const EXIT = { ok: 0, failure: 1, usage: 2, notFound: 3, forbidden: 4, unavailable: 5 } as const;

export function exitCodeFor(code: ErrorCode | string): number {
  switch (code) {
    case "not_found":
      return EXIT.notFound;
    case "forbidden":
      return EXIT.forbidden;
    case "sealed":
    case "not_synced":
    case "expired":
    case "revoked":
    case "unavailable":
    case "rate_limited":
      return EXIT.unavailable;
    case "bad_request":
      return EXIT.usage;
    default:
      return EXIT.failure;
  }
}

export class UsageError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "UsageError";
  }
}

/** The stable code a CLI error is reported with: the API's codes, plus `usage` and `config`. */
export function errorCodeOf(e: unknown): string {
  if (e instanceof UsageError) return "usage";
  if (isSealcacheError(e)) return e.code;
  return "internal";
}

/**
 * Reports a failed command and returns its exit code. With --json the error is one
 * line `{"error":CODE,"message":...}` on stderr: stdout carries only results, so
 * `sealcache --json get NAME > file` never writes an error where a value belongs,
 * and the exit code says which of the two to read.
 */
export function reportError(e: unknown, json: boolean, io: { err(text: string): void }): number {
  const code = errorCodeOf(e);
  const message = describeError(e);
  if (json) io.err(JSON.stringify({ error: code, message }) + "\n");
  else if (e instanceof UsageError || isConfigError(e) || !isSealcacheError(e)) io.err(`sealcache: ${message}\n`);
  else io.err(`sealcache: ${code}: ${message}\n`);
  return e instanceof UsageError ? EXIT.usage : isConfigError(e) || !isSealcacheError(e) ? EXIT.failure : exitCodeFor(code);
}
