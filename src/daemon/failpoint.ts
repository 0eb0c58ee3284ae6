/**
 * Crash-consistency tests kill the process at named steps of multi-step work
 * (rotate-kek). Inert unless SEALCACHE_FAILPOINT names the step; it is read at
 * each call so nothing happens at import.
 */
export function failpoint(step: string): void {
  if (process.env.SEALCACHE_FAILPOINT === step) process.kill(process.pid, "SIGKILL");
}
