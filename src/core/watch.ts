interface Waiter {
  readonly names: ReadonlySet<string>;
  readonly resolve: (changed: string[]) => void;
}

/**
 * Long-poll wake-ups: a waiter names the secrets it cares about and is woken by
 * the first store change touching one of them.
 */
export class WatchHub {
  readonly #waiters = new Set<Waiter>();

  get size(): number {
    return this.#waiters.size;
  }

  notify(names: readonly string[]): void {
    for (const w of this.#waiters) {
      const hit = names.filter((n) => w.names.has(n));
      if (hit.length > 0) {
        this.#waiters.delete(w);
        w.resolve(hit);
      }
    }
  }

  /** Resolves with the changed names, or with [] on timeout or cancel. */
  wait(names: ReadonlySet<string>, timeoutMs: number, cancel: AbortSignal): Promise<string[]> {
    return new Promise((resolve) => {
      const done = (changed: string[]) => {
        clearTimeout(timer);
        cancel.removeEventListener("abort", onAbort);
        this.#waiters.delete(waiter);
        resolve(changed);
      };
      const waiter: Waiter = { names, resolve: done };
      const onAbort = () => done([]);
      const timer = setTimeout(() => done([]), timeoutMs);
      cancel.addEventListener("abort", onAbort, { once: true });
      this.#waiters.add(waiter);
    });
  }

  /** Wakes every waiter with nothing changed (shutdown). */
  close(): void {
    for (const w of [...this.#waiters]) w.resolve([]);
  }
}
