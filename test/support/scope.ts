/** What test helpers take to register their cleanup: a test's own `t`, or a suiteScope(). */
export interface Scope {
  after(fn: () => void | Promise<void>): void;
}

/**
 * Cleanups for parts a whole describe block shares (one daemon for many tests):
 * helpers register on it as on a test's `t`, and the block's `after` hook calls
 * run(), which undoes them in reverse order of registration.
 */
export function suiteScope(): Scope & { run(): Promise<void> } {
  const fns: (() => void | Promise<void>)[] = [];
  return {
    after: (fn) => void fns.push(fn),
    async run() {
      for (const fn of fns.splice(0).reverse()) await fn();
    },
  };
}
