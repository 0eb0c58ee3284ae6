import type { CacheDb } from "./database.js";

/** The sync engine's view of one provider, kept across restarts. */
export interface ProviderState {
  lastSuccess: number | null;
  lastError: string | null;
  lastErrorKind: string | null;
  lastErrorAt: number | null;
  failures: number;
}

interface Row {
  name: string;
  last_success: number | null;
  last_error: string | null;
  last_error_kind: string | null;
  last_error_at: number | null;
  failures: number;
}

/**
 * Provider health as the sync engine records it, in cache.db's `provider_state`
 * table: read once at start, written after each batch. Follows the database the
 * store has open, as the audit trail does.
 */
export class ProviderStates {
  readonly #db: () => CacheDb;

  constructor(db: () => CacheDb) {
    this.#db = db;
  }

  load(): Map<string, ProviderState> {
    const out = new Map<string, ProviderState>();
    for (const r of this.#db().stmts.providers.all() as Row[]) {
      out.set(r.name, {
        lastSuccess: r.last_success,
        lastError: r.last_error,
        lastErrorKind: r.last_error_kind,
        lastErrorAt: r.last_error_at,
        failures: r.failures,
      });
    }
    return out;
  }

  /** Throws StoreWriteError when data_dir takes no writes. */
  save(name: string, st: ProviderState): void {
    const db = this.#db();
    db.write(() => db.stmts.saveProvider.run(name, st.lastSuccess, st.lastError, st.lastErrorKind, st.lastErrorAt, st.failures));
  }
}
