// Typed errors with stable codes. They become HTTP statuses and CLI exit codes only
// at the edges (src/server, src/cli). A message says what failed, where, and what
// to do next; it never contains a secret value.

export type ErrorCode =
  | "not_found"
  | "forbidden"
  | "not_synced"
  | "expired"
  /** Shredded by revoke; answered until the secret is fetched (or imported) again. */
  | "revoked"
  | "bad_request"
  | "sealed"
  | "config"
  | "unavailable"
  | "rate_limited"
  /** data_dir is held by another process (the daemon, or an offline command). */
  | "locked"
  /** A value that cannot be used where it was asked for: a NUL byte for an environment variable, bytes that are not text for a template. */
  | "bad_value"
  /** A render template that cannot be read, does not parse, or uses more than {{ secret "NAME" }}. */
  | "bad_template"
  | "internal";

export class SealcacheError extends Error {
  readonly code: ErrorCode;
  /** Seconds a client should wait before retrying, where that is meaningful. */
  readonly retryAfter: number | undefined;
  /** The secret the error is about (a refused read among several names), for the audit trail. */
  readonly subject: string | undefined;

  constructor(code: ErrorCode, message: string, opts: { retryAfter?: number; cause?: unknown; subject?: string } = {}) {
    super(message, opts.cause === undefined ? undefined : { cause: opts.cause });
    this.name = "SealcacheError";
    this.code = code;
    this.retryAfter = opts.retryAfter;
    this.subject = opts.subject;
  }
}

export function isSealcacheError(e: unknown): e is SealcacheError {
  return e instanceof SealcacheError;
}

/**
 * A config file that cannot be used: names the file and the key path. `from:
 * "overrides"` when every issue is an environment variable's or a flag's (each
 * issue names it), so the header does not blame a file that is fine.
 */
export class ConfigError extends SealcacheError {
  readonly issues: readonly string[];
  constructor(file: string, issues: readonly string[], from?: "overrides") {
    const head = from === "overrides" ? `invalid config overrides (environment or flags) for ${file}` : `invalid config ${file}`;
    super("config", `${head}:\n  ${issues.join("\n  ")}`);
    this.name = "ConfigError";
    this.issues = issues;
  }
}

export function isConfigError(e: unknown): e is ConfigError {
  return e instanceof ConfigError;
}

/** The cache key could not be unsealed (or sealed); the cache is left untouched. */
export class SealError extends SealcacheError {
  constructor(message: string, opts: { cause?: unknown } = {}) {
    super("sealed", message, opts);
    this.name = "SealError";
  }
}

export function isSealError(e: unknown): e is SealError {
  return e instanceof SealError;
}

/** The database failed an integrity or authenticity check; it is quarantined, never served. */
export class IntegrityError extends SealcacheError {
  constructor(message: string, opts: { cause?: unknown } = {}) {
    super("internal", message, opts);
    this.name = "IntegrityError";
  }
}

export function isIntegrityError(e: unknown): e is IntegrityError {
  return e instanceof IntegrityError;
}

/** Text of an unknown thrown value, for logs. Never pass values that may hold secrets. */
export function describeError(e: unknown): string {
  if (e instanceof Error) return e.message;
  return String(e);
}
