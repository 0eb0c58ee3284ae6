// Longer than 300 lines on purpose: SecretStore is the one owner of the rows in memory
// and in cache.db, and each public method is a transaction plus the memory update that
// must follow it exactly. What can be pure is elsewhere: plan.ts, load.ts, rekey.ts,
// integrity.ts, records.ts, statements.ts.
import type { Envelope } from "../crypto/envelope.js";
import { IntegrityError, describeError } from "../errors.js";
import type { Logger } from "../log.js";
import path from "node:path";
import { AuditLog, type AuditSettings } from "./audit.js";
import { CacheDb, isCorruption } from "./database.js";
import { RowDigest } from "./digest.js";
import type { WriteState } from "./disk.js";
import { DIGEST_V2, decodeCounter, encodeCounter, encodeDigest, kekCheck } from "./integrity.js";
import { openLease, type StoredLease } from "./lease.js";
import { loadCache } from "./load.js";
import { RECORD_PREFIX, encodeRecord, openRecord, recordElement, sealRecord, type SealedRecord } from "./records.js";
import { planBatch, toggleRow, type BatchPlan } from "./plan.js";
import { rekeyed } from "./rekey.js";
import { upsertRow } from "./statements.js";
import { ProviderStates } from "./provider-state.js";
import { scrubQuarantined, type QuarantineRecord } from "./quarantine.js";
import { ciphertextOf, wrappedDekOf, type ApplyExtras, type BatchItem, type MetaEntry, type SecretError, type SecretMeta } from "./rows.js";

export type { StoredLease } from "./lease.js";

/** The audit trail's database, beside cache.db. */
export const AUDIT_FILE = "audit.db";
export type { ProviderState } from "./provider-state.js";
export type { ApplyExtras, BatchItem, SecretError, SecretMeta } from "./rows.js";

export interface StoreOptions {
  readonly file: string;
  readonly envelope: Envelope;
  readonly logger: Logger;
  /** Retention of the audit trail (kept beside cache.db, in audit.db). */
  readonly audit?: AuditSettings;
  /**
   * How old a value's recorded confirmation may get before a confirmation
   * rewrites its row (default 1 h): in between, confirmations live in memory
   * (Freshness), so an unchanged value costs no flash write per refresh.
   */
  readonly confirmWriteMs?: number;
}

type ChangeListener = (names: readonly string[], revision: number) => void;

const CONFIRM_WRITE_MS = 3_600_000;

/**
 * The cache of sealed values: the only code that touches SQLite (through
 * CacheDb), the in-memory mirror of every row's metadata (so listing and
 * staleness never hit the disk), the tamper evidence checked at open and kept
 * up to date by every write (integrity.ts), and quarantine. Values go in and out
 * through the envelope. Every row is also held in memory, still sealed, so a
 * lookup is two AEAD opens and no disk read: cache.db is the durable copy,
 * written per sync batch and checked against its digest whenever it is opened.
 * An edit to the file while the store runs is therefore never served, and is
 * caught (quarantine) at the next open.
 */
export class SecretStore {
  readonly #db: CacheDb;
  #env: Envelope;
  readonly #log: Logger;
  readonly #confirmWriteMs: number;
  readonly #quarantined: QuarantineRecord[] = [];
  readonly #listeners: ChangeListener[] = [];
  #meta = new Map<string, MetaEntry>();
  #errors = new Map<string, SecretError>();
  #records = new Map<string, SealedRecord>();
  #digest = new RowDigest();
  #generation = 0;
  /** Counts revokes in this process; each revoked name keeps the count of its last one (see revokedSince). */
  #revokes = 0;
  readonly #revokedAt = new Map<string, number>();
  /** The count of the last `revoke --all`: it covers names no row had yet (a parameter a walk in flight finds). */
  #allRevokedAt = 0;
  readonly #audit: AuditLog;
  /** Provider health as the sync engine records it, in the same database. */
  readonly providerStates: ProviderStates;

  constructor(opts: StoreOptions) {
    this.#env = opts.envelope;
    this.#log = opts.logger;
    this.#confirmWriteMs = opts.confirmWriteMs ?? CONFIRM_WRITE_MS;
    this.#db = new CacheDb(opts.file, opts.logger);
    this.#audit = new AuditLog({ file: path.join(path.dirname(opts.file), AUDIT_FILE), settings: opts.audit, logger: opts.logger });
    this.providerStates = new ProviderStates(() => this.#db);
    try {
      this.#open();
    } catch (e) {
      if (!isCorruption(e)) throw e;
      this.#quarantine(describeError(e));
      this.#open();
    }
    this.#audit.open();
  }

  get revision(): number {
    return this.#generation;
  }

  get quarantined(): readonly QuarantineRecord[] {
    return this.#quarantined;
  }

  /** Whether data_dir takes writes; when not, cached values are still served (see disk.ts). */
  get writeState(): WriteState {
    return this.#db.writeState;
  }

  /** The audit trail: its own database (a quarantine of cache.db leaves it as it is). */
  get audit(): AuditLog {
    return this.#audit;
  }

  onChange(fn: ChangeListener): void {
    this.#listeners.push(fn);
  }

  meta(name: string): SecretMeta | undefined {
    return this.#meta.get(name);
  }

  metas(): IterableIterator<SecretMeta> {
    return this.#meta.values();
  }

  secretError(name: string): SecretError | undefined {
    return this.#errors.get(name);
  }

  /**
   * Decrypts one secret from the sealed copy in memory. The caller owns and zeroes
   * the returned bytes. A row that fails to open (memory damage: it passed its
   * checks when it was loaded or written) quarantines the database and throws
   * IntegrityError.
   */
  read(name: string): { meta: SecretMeta; value: Uint8Array } | undefined {
    const meta = this.#meta.get(name);
    if (!meta) return undefined;
    return this.#guarded(() => ({ meta, value: this.#env.openValue(name, meta.version, wrappedDekOf(meta), ciphertextOf(meta)) }));
  }

  /**
   * The lease recorded with a secret's value (see BatchItem.lease), opened from the
   * sealed copy this store wrote or checked against the digest at open. A lease
   * that fails to open quarantines the database like a value would.
   */
  lease(name: string): StoredLease | undefined {
    const meta = this.#meta.get(name);
    if (!meta?.sealedLease) return undefined;
    const sealed = meta.sealedLease;
    return this.#guarded(() => openLease(this.#env, name, meta.version, sealed));
  }

  /**
   * Applies one sync batch in one transaction (see planBatch): new values sealed,
   * confirmations recorded when due, errors recorded against the secret, `removed`
   * names deleted. Memory follows only once the transaction has committed; a disk
   * that takes no writes throws StoreWriteError and changes nothing. Returns the
   * names whose value changed or went away.
   */
  apply(items: readonly BatchItem[], extras: ApplyExtras = {}): string[] {
    const nextGen = this.#generation + 1;
    const plan = planBatch({
      env: this.#env,
      meta: this.#meta,
      errors: this.#errors,
      digest: this.#digest,
      items,
      extras,
      generation: nextGen,
      confirmWriteMs: this.#confirmWriteMs,
    });
    // The generation (the revision watchers see) moves with values; a binding moved
    // alone only rewrites the digest under the same generation.
    const generation = plan.writes.length > 0 || plan.removed.length > 0 ? nextGen : this.#generation;
    if (plan.writes.length + plan.touches.length + plan.removed.length + plan.errors.length > 0 || plan.digestMoved) {
      this.#db.write(() => this.#record(plan, generation));
    }
    for (const w of plan.writes) this.#meta.set(w.entry.name, w.entry);
    for (const t of plan.touches) this.#meta.set(t.name, t);
    for (const r of plan.removed) {
      this.#meta.delete(r.name);
      this.#errors.delete(r.name);
    }
    for (const { name, err } of plan.errors) {
      if (err) this.#errors.set(name, err);
      else this.#errors.delete(name);
    }
    const changed = [...plan.writes.map((w) => w.entry.name), ...plan.removed.map((r) => r.name)];
    if (plan.digestMoved) {
      this.#digest = plan.digest;
      this.#generation = generation;
    }
    if (changed.length > 0) this.#emit(changed);
    return changed;
  }

  /** The plan's rows, inside the write transaction. */
  #record(plan: BatchPlan, generation: number): void {
    const s = this.#db.stmts;
    for (const w of plan.writes) upsertRow(s, w.entry);
    for (const t of plan.touches) s.touch.run(t.fetchedAt, t.sourceVersion, t.held, t.origin, t.sealedLease?.dek ?? null, t.sealedLease?.ct ?? null, t.name);
    for (const r of plan.removed) {
      s.remove.run(r.name);
      s.clearError.run(r.name);
    }
    for (const { name, err } of plan.errors) {
      if (err) s.setError.run(name, err.kind, err.message, err.at);
      else s.clearError.run(name);
    }
    if (plan.digestMoved) s.setMeta.run(DIGEST_V2, encodeDigest(this.#env, generation, plan.digest.acc));
  }

  /**
   * Re-wraps every DEK under `next` and recomputes every keyed MAC, in one
   * transaction, then switches to `next` (rotate-kek). Values are re-encrypted
   * nowhere: only their data keys move. If the transaction fails nothing changes;
   * the caller keeps the old sealed key until this returns.
   */
  rekey(next: Envelope, opts: { counter?: { index: number; value: number } } = {}): void {
    const { meta, records, digest } = rekeyed(this.#env, next, this.#meta.values(), this.#records.values());
    const counter = opts.counter ?? this.recordedCounter();
    const generation = this.#generation + 1;
    const s = this.#db.stmts;
    this.#db.write(() => {
      for (const r of records.values()) s.setMeta.run(RECORD_PREFIX + r.key, encodeRecord(r));
      // Whole rows, as memory holds them: the file ends up exactly what the digest says.
      for (const e of meta.values()) upsertRow(s, e);
      s.setMeta.run("kek_check", kekCheck(next));
      s.setMeta.run(DIGEST_V2, encodeDigest(next, generation, digest.acc));
      if (counter !== undefined) s.setMeta.run("rollback_counter", encodeCounter(next, counter));
    });
    this.#env = next;
    this.#meta = meta;
    this.#records = records;
    this.#digest = digest;
    this.#generation = generation;
  }

  /** A sealed record's bytes (see records.ts), which the caller zeroes; undefined when there is none. */
  record(key: string): Uint8Array | undefined {
    const r = this.#records.get(key);
    return r ? this.#guarded(() => openRecord(this.#env, r)) : undefined;
  }

  /** Seals and writes a record in one transaction with the digest that binds it. Throws StoreWriteError on a disk that takes no writes. */
  setRecord(key: string, plain: Uint8Array): void {
    const next = sealRecord(this.#env, key, plain);
    const digest = this.#digest.copy();
    const old = this.#records.get(key);
    if (old) digest.toggle(recordElement(this.#env, old));
    digest.toggle(recordElement(this.#env, next));
    const s = this.#db.stmts;
    this.#db.write(() => {
      s.setMeta.run(RECORD_PREFIX + key, encodeRecord(next));
      s.setMeta.run(DIGEST_V2, encodeDigest(this.#env, this.#generation, digest.acc));
    });
    this.#records.set(key, next);
    this.#digest = digest;
  }

  /**
   * Crypto-shreds: the rows of `names` (and, with `all`, every row) are deleted
   * with SQLite's secure_delete, the WAL is checkpointed and truncated and the
   * file vacuumed, so neither the sealed values, their data keys nor any older
   * version of them stay in cache.db or its WAL, nor in the quarantined copies.
   * Each name is marked revoked (410 until it is fetched again), also across a
   * restart, and a batch in flight does not bring it back. Returns the names
   * whose rows were deleted and those now marked. The caller rotates the key for `all`.
   */
  revoke(names: readonly string[], o: { all: boolean; at: number; reason: string }): { deleted: string[]; marked: string[] } {
    const gone = o.all ? [...this.#meta.values()] : names.map((n) => this.#meta.get(n)).filter((m): m is MetaEntry => m !== undefined);
    const marked = [...new Set([...names, ...gone.map((m) => m.name)])];
    const digest = this.#digest.copy();
    for (const m of gone) toggleRow(digest, this.#env, m);
    const generation = this.#generation + 1;
    const s = this.#db.stmts;
    const db = this.#db.db;
    db.pragma("secure_delete = ON");
    try {
      this.#db.write(() => {
        if (o.all) s.removeAll.run();
        else for (const m of gone) s.remove.run(m.name);
        for (const n of marked) s.setError.run(n, "revoked", o.reason, o.at);
        s.setMeta.run(DIGEST_V2, encodeDigest(this.#env, generation, digest.acc));
      });
    } finally {
      db.pragma("secure_delete = FAST");
    }
    for (const m of gone) this.#meta.delete(m.name);
    this.#revokes++;
    if (o.all) this.#allRevokedAt = this.#revokes;
    for (const n of marked) {
      this.#errors.set(n, { kind: "revoked", message: o.reason, at: o.at });
      this.#revokedAt.set(n, this.#revokes);
    }
    this.#digest = digest;
    this.#generation = generation;
    this.#db.compact();
    // The quarantined copies in data_dir hold the same rows, under the same key (quarantine.ts).
    try {
      const q = scrubQuarantined(this.#db.file, o.all ? "all" : marked);
      if (q.scrubbed.length + q.removed.length > 0)
        this.#log.warn({ scrubbed: q.scrubbed, removed: q.removed }, "revoked rows deleted from the quarantined copies of the cache too");
    } catch (e) {
      this.#log.error(
        { err: describeError(e) },
        "the quarantined copies of the cache could not be scrubbed of the revoked rows; remove data_dir/quarantine by hand",
      );
    }
    const deleted = gone.map((m) => m.name);
    if (deleted.length > 0) this.#emit(deleted);
    return { deleted, marked };
  }

  /** How many revokes this process has carried out: taken by a sync batch before it fetches (see revokedSince). */
  get revokeCount(): number {
    return this.#revokes;
  }

  /**
   * Whether `name` was revoked after revokeCount was `count`: a batch fetched before
   * that revoke must not bring its value back when it lands (the engine drops it).
   */
  revokedSince(name: string, count: number): boolean {
    return this.#allRevokedAt > count || (this.#revokedAt.get(name) ?? 0) > count;
  }

  /**
   * The TPM anti-rollback counter (NV index and value) this cache last recorded,
   * authenticated under the KEK; undefined if never recorded.
   */
  recordedCounter(): { index: number; value: number } | undefined {
    const row = this.#db.stmts.getMeta.get("rollback_counter") as { value: Buffer } | undefined;
    return row ? decodeCounter(this.#env, row.value) : undefined;
  }

  recordCounter(counter: { index: number; value: number }): void {
    const s = this.#db.stmts;
    this.#db.write(() => s.setMeta.run("rollback_counter", encodeCounter(this.#env, counter)));
  }

  close(): void {
    this.#audit.close();
    this.#db.close();
  }

  #emit(names: readonly string[]): void {
    for (const fn of this.#listeners) fn(names, this.#generation);
  }

  /** Runs a read; damage it finds quarantines the database (announcing the names lost) and throws IntegrityError. */
  #guarded<T>(fn: () => T): T {
    try {
      return fn();
    } catch (e) {
      if (!isCorruption(e)) throw e;
      const lost = this.#quarantine(describeError(e));
      this.#open();
      this.#emit(lost);
      throw e instanceof IntegrityError ? e : new IntegrityError(describeError(e), { cause: e });
    }
  }

  #open(): void {
    this.#db.open();
    try {
      const l = loadCache(this.#db, this.#env);
      this.#meta = l.meta;
      this.#errors = l.errors;
      this.#records = l.records;
      this.#digest = l.digest;
      this.#generation = l.generation;
    } catch (e) {
      this.#db.close();
      throw e;
    }
  }

  /** Moves the database aside and forgets its contents; returns the names it held. */
  #quarantine(reason: string): string[] {
    const names = [...this.#meta.keys()];
    const rec = this.#db.quarantine(reason);
    this.#quarantined.push(rec);
    this.#meta = new Map();
    this.#errors = new Map();
    this.#records = new Map();
    this.#digest = new RowDigest();
    this.#generation = 0;
    this.#log.error({ quarantined: rec.path, reason }, "cache database failed its checks; moved aside and never served (secrets will be fetched again)");
    return names;
  }
}
