import { nameProblem } from "../config/names.js";
import { parseDuration } from "../config/duration.js";
import { SealcacheError } from "../errors.js";

/**
 * The rules for what a request may ask, shared by every channel: name syntax,
 * watch and audit bounds. Adapters turn their own syntax (a query string, CLI
 * flags, a command's claims) into these shapes; the core checks them.
 */

export const WATCH_DEFAULT_MS = 30_000;
export const WATCH_MAX_MS = 300_000;
export const WATCH_MAX_NAMES = 256;
export const AUDIT_DEFAULT_LIMIT = 100;
export const AUDIT_MAX_LIMIT = 10_000;
/** The largest value `import` takes (PUT /v1/secrets/{name}). */
export const IMPORT_MAX_BYTES = 64 * 1024;

/** Throws `bad_request` for a name that breaks the name rules (quoting at most 64 characters of it). */
export function checkName(name: string): void {
  const problem = nameProblem(name);
  if (problem) throw new SealcacheError("bad_request", `secret name ${JSON.stringify(name.slice(0, 64))} ${problem}`);
}

export interface WatchQuery {
  readonly names: readonly string[];
  /** The revision of an earlier answer; undefined: answer at once with the current revision. */
  readonly since: number | undefined;
  readonly timeoutMs: number;
}

/** A watch from its text form (`names=a,b&since=REV&timeout=30s`). */
export function parseWatch(get: (key: string) => string | null): WatchQuery {
  const names = (get("names") ?? "").split(",").filter(Boolean);
  const t = get("timeout");
  const timeoutMs = t === null ? WATCH_DEFAULT_MS : parseDuration(t);
  if (timeoutMs === undefined || timeoutMs > WATCH_MAX_MS) throw new SealcacheError("bad_request", `timeout must be a duration up to ${WATCH_MAX_MS / 1000}s`);
  const s = get("since");
  const since = s === null ? undefined : Number(s);
  if (since !== undefined && (!Number.isSafeInteger(since) || since < 0))
    throw new SealcacheError("bad_request", "since must be a revision number from an earlier answer");
  return { names, since, timeoutMs };
}

/** Checks a watch's names: present, bounded, each valid and readable (`mayRead` throws for one that is not). */
export function watchArgs(q: WatchQuery, mayRead: (name: string) => void): WatchQuery {
  if (q.names.length === 0) throw new SealcacheError("bad_request", "names is required: /v1/watch?names=a,b&since=REV");
  if (q.names.length > WATCH_MAX_NAMES) throw new SealcacheError("bad_request", `at most ${WATCH_MAX_NAMES} names per watch`);
  for (const n of q.names) {
    checkName(n);
    mayRead(n);
  }
  return q;
}

/** An audit query from its text form (`since=1h&name=N&limit=L`). */
export function parseAudit(get: (key: string) => string | null, now: number): { since: number | undefined; name: string | undefined; limit: number } {
  const since = parseSince(get("since"), now);
  const name = get("name") ?? undefined;
  const l = get("limit");
  const limit = l === null ? AUDIT_DEFAULT_LIMIT : Number(l);
  if (!Number.isSafeInteger(limit) || limit < 1 || limit > AUDIT_MAX_LIMIT)
    throw new SealcacheError("bad_request", `limit must be a whole number from 1 to ${AUDIT_MAX_LIMIT}`);
  return { since, name, limit };
}

/** `since` as an ISO 8601 time or a duration back from now ("1h", "30m", "90" seconds). */
export function parseSince(raw: string | null, now: number): number | undefined {
  if (raw === null || raw === "") return undefined;
  const ms = parseDuration(raw);
  if (ms !== undefined) return now - ms;
  const t = /^\d{4}-\d{2}-\d{2}/.test(raw) ? Date.parse(raw) : Number.NaN;
  if (Number.isNaN(t))
    throw new SealcacheError("bad_request", `since must be an ISO 8601 time or a duration such as 1h, got ${JSON.stringify(raw.slice(0, 40))}`);
  return t;
}
