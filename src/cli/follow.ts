import { describeError } from "../errors.js";
import { replyError, request, type Target } from "./client.js";
import { sleep } from "./secrets.js";

/** How long a watch request waits for a change before the daemon answers 304 (its limit is 300 s). */
const WATCH_TIMEOUT_S = 60;
/** Reconnect backoff after the daemon went away or refused a watch: 1 s doubling to 30 s, with jitter. */
const BACKOFF_MIN_MS = 1_000;
const BACKOFF_MAX_MS = 30_000;
/** Changes closer together than this are one change: a rotation often touches several secrets. */
export const DEBOUNCE_MS = 2_000;
/** ...but a steady stream of changes still gets applied this long after the first. */
const DEBOUNCE_MAX_MS = 10_000;

/** What exec and render say while following changes (never a value: names and causes only). */
export interface FollowReport {
  /** The watch failed (daemon down, restarted, refusing); `retryMs` until the next attempt. */
  problem(message: string, retryMs: number): void;
  /** The watch answers again after a problem. */
  recovered(): void;
  /** Applying a change failed; it is tried again in `retryMs`. */
  applyFailed(message: string, retryMs: number): void;
}

/**
 * The revision to watch from: `GET /v1/watch` without `since` answers at once with
 * the store's revision (and checks every name exists and may be read). Taken
 * before the values are fetched, so a change in between is seen, not lost.
 */
export async function watchRevision(target: Target, names: readonly string[], signal?: AbortSignal): Promise<number> {
  const r = await request(target, "GET", `/v1/watch?names=${names.map(encodeURIComponent).join(",")}`, 15_000, signal);
  if (r.status !== 200) throw replyError(r);
  return (JSON.parse(r.body.toString("utf8")) as { revision: number }).revision;
}

/**
 * Follows changes of `names` from `since` until `signal` aborts, and calls `apply`
 * with the names that changed, once per burst of changes (DEBOUNCE_MS of quiet, at
 * most DEBOUNCE_MAX_MS after the first). A failing `apply` keeps its names pending
 * and is retried with backoff. The long-poll reconnects with backoff through daemon
 * restarts; the revision survives them (it is stored in the cache), so a change made
 * while the daemon was down is seen at the first answer after it is back.
 */
export async function follow(o: {
  target: Target;
  names: readonly string[];
  since: number;
  signal: AbortSignal;
  apply(changed: ReadonlySet<string>): Promise<void>;
  report: FollowReport;
}): Promise<void> {
  const pending = new Set<string>();
  let timer: NodeJS.Timeout | undefined;
  let firstAt = 0;
  let running = false;
  let applyDelay = BACKOFF_MIN_MS;

  const schedule = (ms: number) => {
    if (timer) clearTimeout(timer);
    timer = setTimeout(() => void run(), ms);
  };
  const poke = (changed: readonly string[]) => {
    for (const n of changed) pending.add(n);
    if (running) return; // run() looks at pending again when it ends
    const now = Date.now();
    if (timer === undefined) firstAt = now;
    schedule(Math.max(0, Math.min(DEBOUNCE_MS, firstAt + DEBOUNCE_MAX_MS - now)));
  };
  const run = async () => {
    timer = undefined;
    if (o.signal.aborted || pending.size === 0) return;
    const batch = new Set(pending);
    pending.clear();
    running = true;
    try {
      await o.apply(batch);
      applyDelay = BACKOFF_MIN_MS;
    } catch (e) {
      for (const n of batch) pending.add(n);
      const wait = jitter(applyDelay);
      applyDelay = Math.min(applyDelay * 2, BACKOFF_MAX_MS);
      if (!o.signal.aborted) o.report.applyFailed(describeError(e), wait);
      running = false;
      if (!o.signal.aborted) schedule(wait);
      return;
    }
    running = false;
    if (pending.size > 0 && !o.signal.aborted) {
      firstAt = Date.now();
      schedule(DEBOUNCE_MS);
    }
  };
  o.signal.addEventListener("abort", () => timer && clearTimeout(timer), { once: true });

  let since = o.since;
  let delay = BACKOFF_MIN_MS;
  let failing = false;
  const query = `names=${o.names.map(encodeURIComponent).join(",")}&timeout=${WATCH_TIMEOUT_S}s`;
  while (!o.signal.aborted) {
    try {
      if (failing) {
        // A long-poll answers only when something changes: ask for the revision
        // (answered at once) to know the daemon is back, then wait from `since`.
        await watchRevision(o.target, o.names, o.signal);
        o.report.recovered();
        failing = false;
        delay = BACKOFF_MIN_MS;
      }
      const r = await request(o.target, "GET", `/v1/watch?${query}&since=${since}`, (WATCH_TIMEOUT_S + 15) * 1000, o.signal);
      if (r.status !== 200 && r.status !== 304) throw replyError(r);
      if (r.status === 200) {
        const j = JSON.parse(r.body.toString("utf8")) as { revision: number; changed: string[] };
        since = j.revision;
        if (j.changed.length > 0) poke(j.changed);
      }
    } catch (e) {
      if (o.signal.aborted) break;
      const wait = jitter(delay);
      delay = Math.min(delay * 2, BACKOFF_MAX_MS);
      o.report.problem(describeError(e), wait);
      failing = true;
      await sleep(wait, o.signal);
    }
  }
  if (timer) clearTimeout(timer);
}

/** `ms` give or take 20 %, so a fleet of clients reconnecting after a daemon restart spread out. */
function jitter(ms: number): number {
  return Math.round(ms * (0.8 + Math.random() * 0.4));
}
