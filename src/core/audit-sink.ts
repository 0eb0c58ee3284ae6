import type { AuditEntry, AuditLog } from "../store/audit.js";

/** Entries held while the cache is sealed (no database yet); beyond this the oldest go. */
const MAX_HELD = 1_000;

/**
 * Where audit entries go: the store's audit log once the cache is
 * unsealed. Denials answered while it is still sealed are held (bounded) and
 * written when it opens; they are in the warn log either way.
 */
export class AuditSink {
  readonly #target: () => AuditLog | undefined;
  #held: AuditEntry[] = [];

  constructor(target: () => AuditLog | undefined) {
    this.#target = target;
  }

  record(e: AuditEntry): void {
    const log = this.#target();
    if (!log) {
      this.#held.push(e);
      if (this.#held.length > MAX_HELD) this.#held.shift();
      return;
    }
    if (this.#held.length > 0) {
      for (const h of this.#held) log.record(h);
      this.#held = [];
    }
    log.record(e);
  }
}
