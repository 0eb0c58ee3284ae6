import { isUtf8 } from "node:buffer";
import { createHash } from "node:crypto";
import { nameProblem } from "../config/names.js";
import { SealcacheError, isSealcacheError } from "../errors.js";
import { replyError, request, type Target } from "./client.js";
import { UsageError } from "./exit.js";

/** Most names one watch request may carry (the daemon's limit on /v1/watch). */
export const MAX_WATCHED = 256;
/** The daemon refuses request URLs over 2048 bytes; what a watch's names may take of that. */
const MAX_WATCH_QUERY_BYTES = 1900;

/** Refuses, before anything runs, a set of names one watch request cannot carry. */
export function checkWatchable(names: readonly string[], command: "exec" | "render"): void {
  const query = names.map(encodeURIComponent).join(",");
  if (names.length > MAX_WATCHED || query.length > MAX_WATCH_QUERY_BYTES) {
    throw new UsageError(
      `${command} follows at most ${MAX_WATCHED} secrets whose names take at most ${MAX_WATCH_QUERY_BYTES} bytes together (one watch request); ` +
        `these are ${names.length} taking ${query.length}: split them over several ${command} processes`,
    );
  }
}

/** A secret as exec and render use it: the value as text, and a digest to tell a change from a repeat. */
export interface Fetched {
  readonly name: string;
  readonly text: string;
  /** SHA-256 of the value: what is kept between fetches instead of the value. */
  readonly digest: string;
}

/** Checks a secret name given on the command line; `where` says which flag named it. */
export function checkSecretName(name: string, where: string): void {
  const problem = nameProblem(name);
  if (problem) throw new UsageError(`${where}: secret name ${JSON.stringify(name.slice(0, 64))} ${problem}`);
}

/**
 * One secret's value, read as the exact bytes (`?format=raw`) and decoded as
 * UTF-8 text: an environment variable and a rendered config file are text, and
 * a value that is not would come out changed, so it is refused, by name.
 * The daemon's errors already name the secret and never a value.
 */
export async function fetchSecret(target: Target, name: string): Promise<Fetched> {
  const r = await request(target, "GET", `/v1/secrets/${encodeURIComponent(name).replace(/%2F/g, "/")}?format=raw`);
  if (r.status !== 200) throw replyError(r);
  try {
    if (!isUtf8(r.body))
      throw new SealcacheError(
        "bad_value",
        `the value of secret ${JSON.stringify(name)} is not UTF-8 text, so it cannot be used as text; read it with sealcache get ${name} --raw`,
      );
    return { name, text: r.body.toString("utf8"), digest: createHash("sha256").update(r.body).digest("hex") };
  } finally {
    r.body.fill(0);
  }
}

/**
 * Every name's value, or the first failure (asked one after another: a refusal
 * stops the rest). `label` puts what asked for a name in front of its error
 * (`--env VAR=NAME`, a template's path), keeping the code and Retry-After.
 */
export async function fetchAll(target: Target, names: Iterable<string>, label?: (name: string) => string): Promise<Map<string, Fetched>> {
  const out = new Map<string, Fetched>();
  for (const n of names) {
    if (out.has(n)) continue;
    try {
      out.set(n, await fetchSecret(target, n));
    } catch (e) {
      if (!label || !isSealcacheError(e)) throw e;
      throw new SealcacheError(e.code, `${label(n)}: ${e.message}`, { retryAfter: e.retryAfter });
    }
  }
  return out;
}

/**
 * Errors worth waiting through at boot (`--wait`): the cache is still filling, the
 * daemon is not up yet or still unsealing, or it asks to slow down. Unknown,
 * forbidden, expired and revoked names are answers, not delays.
 */
export function isBootDelay(e: unknown): boolean {
  return isSealcacheError(e) && ["not_synced", "unavailable", "sealed", "rate_limited"].includes(e.code);
}

/**
 * `attempt`, retried through boot delays with backoff (0.25 s doubling to 5 s, or
 * the daemon's Retry-After when sooner) until `waitMs` has passed; `onWait` is told
 * once, with the reason, when waiting starts. `waitMs` 0: one attempt.
 */
export async function waitingThrough<T>(attempt: () => Promise<T>, waitMs: number, onWait: (e: SealcacheError) => void, signal?: AbortSignal): Promise<T> {
  const until = Date.now() + waitMs;
  let delay = 250;
  let told = false;
  for (;;) {
    try {
      return await attempt();
    } catch (e) {
      const left = until - Date.now();
      if (!isBootDelay(e) || left <= 0 || signal?.aborted) throw e;
      const err = e as SealcacheError;
      if (!told) onWait(err);
      told = true;
      await sleep(Math.min(delay, left, (err.retryAfter ?? Infinity) * 1000), signal);
      delay = Math.min(delay * 2, 5_000);
    }
  }
}

export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal?.aborted) return resolve();
    const done = () => {
      clearTimeout(timer);
      signal?.removeEventListener("abort", done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    signal?.addEventListener("abort", done, { once: true });
  });
}
