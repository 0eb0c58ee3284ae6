/**
 * Exponential backoff with "equal jitter": the delay doubles per failure up to
 * `max`, and a random half of it is added so a fleet that lost its link at the
 * same moment does not come back in lock step.
 */
export function backoffDelay(failures: number, min: number, max: number, random: () => number): number {
  const exp = Math.min(max, min * 2 ** Math.max(0, failures - 1));
  return Math.round(exp / 2 + random() * (exp / 2));
}

/** `interval` spread uniformly over ±jitter. */
export function jittered(interval: number, jitter: number, random: () => number): number {
  return Math.max(1, Math.round(interval * (1 - jitter + 2 * jitter * random())));
}

/**
 * How long after a restart a cached secret is next due, given its age (ms since
 * its recorded fetch; undefined when unknown: fetched_at in the future, from a
 * clock that is now behind): on schedule if its refresh is still ahead, otherwise
 * spread over a jittered window, so a fleet rebooting after a power cut does not
 * refetch everything in the same second. An unknown age is treated as overdue.
 */
export function resumeDelay(age: number | undefined, interval: number, jitter: number, random: () => number): number {
  if (age !== undefined) {
    const left = jittered(interval, jitter, random) - age;
    if (left > 0) return left;
  }
  return overdueSpread(interval, jitter, random);
}

/** The window an overdue secret is spread over (at start, after a wall-clock step): jitter × min(interval, 5 min). */
export function overdueSpread(interval: number, jitter: number, random: () => number): number {
  return Math.round(random() * jitter * Math.min(interval, 5 * 60_000));
}

/** The age past which a value counts as stale even without a recorded failure. */
export function staleAfter(interval: number, jitter: number, timeout: number): number {
  return Math.round(interval * (1 + jitter)) + timeout;
}

/** The soonest a leased value is fetched again, however short its remaining lifetime. */
export const MIN_LEASE_REFRESH_MS = 500;

/**
 * The delay until the next fetch after a success: the jittered interval, or about
 * 2/3 of the remaining lifetime of a value that expires (a Vault lease, STS
 * credentials) when that comes first, so it is renewed or replaced in time.
 */
export function refreshDelay(interval: number, jitter: number, random: () => number, now: number, expiresAt?: number): number {
  const d = jittered(interval, jitter, random);
  if (expiresAt === undefined) return d;
  return Math.min(Math.max(d, MIN_LEASE_REFRESH_MS), leaseDelay(now, expiresAt));
}

/** About 2/3 of a lease's remaining lifetime (at least MIN_LEASE_REFRESH_MS): when it is renewed or replaced. */
export function leaseDelay(now: number, expiresAt: number): number {
  return Math.max(MIN_LEASE_REFRESH_MS, Math.floor(((expiresAt - now) * 2) / 3));
}

/**
 * When a cached leased value is next due after a restart: as resumeDue says, or at
 * 2/3 of what is left of the lease recorded with it if that comes first, so a lease
 * still running is renewed on the same schedule as within one process, and one
 * that ran out while the daemon was down is replaced at once.
 */
export function resumeLeaseDue(resumed: number, now: number, expiresAt: number): number {
  return Math.min(resumed, now + leaseDelay(now, expiresAt));
}
