import fs from "node:fs";
import path from "node:path";
import DatabaseCtor, { type Database, type Statement } from "better-sqlite3";
import { IntegrityError, SealError, describeError } from "../errors.js";
import type { Envelope } from "../crypto/envelope.js";
import type { Logger } from "../log.js";
import { migrate } from "./migrations.js";
import { quarantineFiles, type QuarantineRecord } from "./quarantine.js";
import { RowDigest } from "./digest.js";
import { AuditLog, type AuditSettings } from "./audit.js";
import { sqliteNativeBinding } from "./sqlite-binding.js";
import { openLease, rewrapLease, sealLease, type SealedLease, type StoredLease } from "./lease.js";
import { StoreWriteError, describeDiskFailure, isDiskFailure, type WriteState } from "./disk.js";

export type { StoredLease } from "./lease.js";

export interface SecretMeta {
  readonly name: string;
  readonly version: number;
  readonly sourceVersion: string | null;
  readonly changedRev: number;
  readonly changedAt: number;
  readonly fetchedAt: number;
  /**
   * Fingerprint of the config entry (provider, backend, path, key, version) the value
   * was fetched under; with `sourceVersion`, what a cheap version check after a
   * restart may trust. Null for rows written before schema 3.
   */
  readonly held: string | null;
  /** For a parameter found under a hierarchy: the hierarchy's entry name. Null for a configured secret. */
  readonly origin: string | null;
  /** Whether a lease is recorded with the value (schema 4; read it with lease()). */
  readonly leased: boolean;
}

interface MetaEntry extends SecretMeta {
  readonly valueMac: Uint8Array;
  readonly element: Uint8Array;
  /** Keyed MAC over (name, version, sourceVersion, held, origin, sealed lease); null for a row with none of held, origin, lease. */
  readonly binding: Uint8Array | null;
  /** The lease as sealed in the row (kept sealed in memory too; opened by lease()). */
  readonly sealedLease: SealedLease | null;
  /** The wrapped DEK's random nonce as this store wrote it (see read()). */
  readonly dekNonce: Uint8Array;
}

export interface SecretError {
  readonly kind: string;
  readonly message: string;
  readonly at: number;
}

export interface ProviderState {
  lastSuccess: number | null;
  lastError: string | null;
  lastErrorKind: string | null;
  lastErrorAt: number | null;
  failures: number;
}

export type BatchItem =
  | {
      readonly name: string;
      readonly ok: true;
      readonly value: Uint8Array;
      readonly sourceVersion: string | undefined;
      readonly at: number;
      readonly held?: string | undefined;
      readonly origin?: string | undefined;
      /** The lease the value is held under; absent: none (a lease recorded before is dropped). */
      readonly lease?: StoredLease | undefined;
    }
  | { readonly name: string; readonly ok: false; readonly kind: string; readonly message: string; readonly at: number };

interface Row {
  name: string;
  version: number;
  source_version: string | null;
  wrapped_dek: Buffer;
  ciphertext: Buffer;
  value_mac: Buffer;
  changed_rev: number;
  changed_at: number;
  fetched_at: number;
  held: string | null;
  origin: string | null;
  lease_dek: Buffer | null;
  lease: Buffer | null;
}

/** Besides values and errors, what one sync transaction may change. */
export interface ApplyExtras {
  /**
   * Names deleted from the cache: parameters a hierarchy no longer holds, as the
   * backend answered in a complete walk. The only way a value ever leaves the cache
   * short of a quarantine or an operator's revoke.
   */
  readonly removed?: readonly string[];
  /** Names whose recorded error is cleared without a value (a hierarchy walked successfully). */
  readonly cleared?: readonly string[];
}

export interface StoreOptions {
  readonly file: string;
  readonly envelope: Envelope;
  readonly logger: Logger;
  /** Retention of the audit trail kept in the same database. */
  readonly audit?: AuditSettings;
}

type ChangeListener = (names: readonly string[], revision: number) => void;

/**
 * The only code that touches SQLite. Values go in and out through the envelope;
 * metadata is mirrored in memory so listing and staleness never hit the disk, and
 * a lookup is one indexed read plus two AEAD opens.
 */
export class SecretStore {
  readonly #file: string;
  #env: Envelope;
  readonly #log: Logger;
  readonly #quarantined: QuarantineRecord[] = [];
  readonly #listeners: ChangeListener[] = [];
  #db!: Database;
  #stmts!: ReturnType<typeof prepare>;
  #meta = new Map<string, MetaEntry>();
  #errors = new Map<string, SecretError>();
  #digest = new RowDigest();
  #generation = 0;
  readonly #audit: AuditLog;
  #write: WriteState = { writable: true, since: null, reason: null };

  constructor(opts: StoreOptions) {
    this.#file = opts.file;
    this.#env = opts.envelope;
    this.#log = opts.logger;
    this.#audit = new AuditLog({ settings: opts.audit, logger: opts.logger });
    try {
      this.#open();
    } catch (e) {
      if (!isCorruption(e)) throw e;
      this.#quarantine(describeError(e));
      this.#open();
    }
  }

  get revision(): number {
    return this.#generation;
  }

  /** Whether data_dir takes writes; when not, cached values are still served (see disk.ts). */
  get writeState(): WriteState {
    return this.#write;
  }

  get quarantined(): readonly QuarantineRecord[] {
    return this.#quarantined;
  }

  /** The audit trail, written to whichever database the store has open. */
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
   * Decrypts one secret. The caller owns and zeroes the returned bytes. A row that
   * fails its checks quarantines the whole database and throws IntegrityError.
   */
  read(name: string): { meta: SecretMeta; value: Uint8Array } | undefined {
    const meta = this.#meta.get(name);
    if (!meta) return undefined;
    return this.#guarded(() => {
      const row = this.#stmts.read.get(name) as Pick<Row, "version" | "wrapped_dek" | "ciphertext"> | undefined;
      if (!row) throw new IntegrityError(`row ${JSON.stringify(name)} disappeared from cache.db`);
      if (row.version !== meta.version) throw new IntegrityError(`row ${JSON.stringify(name)} has version ${row.version}, expected ${meta.version} (rolled back)`);
      // Every write gives the wrapped DEK a fresh random nonce, kept in memory: a row
      // that is not the one this store wrote (edited, swapped, or replayed from
      // another copy of cache.db, where versions restart at 1) carries another nonce,
      // and an edit that keeps the nonce fails the AEAD. Comparing 24 bytes costs a
      // fraction of re-MACing the row on every lookup.
      const dek = row.wrapped_dek;
      if (dek.length < 1 + NONCE_BYTES || dek.compare(meta.dekNonce, 0, NONCE_BYTES, 1, 1 + NONCE_BYTES) !== 0) {
        throw new IntegrityError(`row ${JSON.stringify(name)} is not the one this store wrote (edited, swapped or replayed from another copy of cache.db)`);
      }
      return { meta, value: this.#env.openValue(name, row.version, row.wrapped_dek, row.ciphertext) };
    });
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

  /**
   * Applies one sync batch in one transaction: new values are sealed (a fresh DEK
   * each), unchanged ones only have fetched_at (and their binding) moved, errors are
   * recorded against the secret, and `removed` names (parameters a hierarchy no
   * longer holds) are deleted. Returns the names whose value changed or went away.
   */
  apply(items: readonly BatchItem[], extras: ApplyExtras = {}): string[] {
    const env = this.#env;
    const nextGen = this.#generation + 1;
    const digest = this.#digest.copy();
    let digestMoved = false;
    const writes: { entry: MetaEntry; wrappedDek: Uint8Array; ciphertext: Uint8Array }[] = [];
    const touches: MetaEntry[] = [];
    const errors: { name: string; err: SecretError | null }[] = [];
    const removed: MetaEntry[] = [];
    for (const it of items) {
      if (!it.ok) {
        errors.push({ name: it.name, err: { kind: it.kind, message: it.message, at: it.at } });
        continue;
      }
      if (this.#errors.has(it.name)) errors.push({ name: it.name, err: null });
      const old = this.#meta.get(it.name);
      const valueMac = env.mac("value", it.name, it.value);
      const bound = { sourceVersion: it.sourceVersion ?? null, held: it.held ?? null, origin: it.origin ?? null };
      if (old && env.equal(old.valueMac, valueMac)) {
        // A lease given again is sealed again: it moved (a renewal is what confirms a leased value).
        const same = old.sourceVersion === bound.sourceVersion && old.held === bound.held && old.origin === bound.origin && !it.lease && !old.sealedLease;
        const sealedLease = it.lease ? sealLease(env, it.name, old.version, it.lease) : null;
        const binding = same ? old.binding : bindingMac(env, it.name, old.version, { ...bound, sealedLease });
        if (!same && (old.binding || binding)) {
          if (old.binding) digest.toggle(old.binding);
          if (binding) digest.toggle(binding);
          digestMoved = true;
        }
        touches.push({ ...old, ...bound, fetchedAt: it.at, binding, sealedLease, leased: sealedLease !== null });
        continue;
      }
      const version = (old?.version ?? 0) + 1;
      const { wrappedDek, ciphertext } = env.sealValue(it.name, version, it.value);
      const sealedLease = it.lease ? sealLease(env, it.name, version, it.lease) : null;
      const element = env.mac("row", it.name, String(version), wrappedDek, ciphertext);
      const binding = bindingMac(env, it.name, version, { ...bound, sealedLease });
      if (old) toggleRow(digest, old);
      digest.toggle(element);
      if (binding) digest.toggle(binding);
      digestMoved = true;
      writes.push({
        entry: { name: it.name, version, ...bound, leased: sealedLease !== null, sealedLease, changedRev: nextGen, changedAt: it.at, fetchedAt: it.at, valueMac, element, binding, dekNonce: nonceOf(wrappedDek) },
        wrappedDek,
        ciphertext,
      });
    }
    for (const name of extras.removed ?? []) {
      const old = this.#meta.get(name);
      if (!old || writes.some((w) => w.entry.name === name)) continue;
      toggleRow(digest, old);
      digestMoved = true;
      removed.push(old);
    }
    for (const name of extras.cleared ?? []) if (this.#errors.has(name)) errors.push({ name, err: null });
    // The generation (the revision watchers see) moves with values; a binding moved
    // alone only rewrites the digest under the same generation.
    const valuesChanged = writes.length > 0 || removed.length > 0;
    const generation = valuesChanged ? nextGen : this.#generation;
    const s = this.#stmts;
    this.#writing(() => {
      for (const w of writes) {
        const e = w.entry;
        s.upsert.run(e.name, e.version, e.sourceVersion, w.wrappedDek, w.ciphertext, e.valueMac, e.changedRev, e.changedAt, e.fetchedAt, e.held, e.origin, e.sealedLease?.dek ?? null, e.sealedLease?.ct ?? null);
      }
      for (const t of touches) s.touch.run(t.fetchedAt, t.sourceVersion, t.held, t.origin, t.sealedLease?.dek ?? null, t.sealedLease?.ct ?? null, t.name);
      for (const r of removed) {
        s.remove.run(r.name);
        s.clearError.run(r.name);
      }
      for (const { name, err } of errors) {
        if (err) s.setError.run(name, err.kind, err.message, err.at);
        else s.clearError.run(name);
      }
      if (digestMoved) this.#writeDigest(generation, digest);
    });
    // Memory follows only once the transaction has committed.
    for (const w of writes) this.#meta.set(w.entry.name, w.entry);
    for (const t of touches) this.#meta.set(t.name, t);
    for (const r of removed) {
      this.#meta.delete(r.name);
      this.#errors.delete(r.name);
    }
    for (const { name, err } of errors) {
      if (err) this.#errors.set(name, err);
      else this.#errors.delete(name);
    }
    const changed = [...writes.map((w) => w.entry.name), ...removed.map((r) => r.name)];
    if (digestMoved) {
      this.#digest = digest;
      this.#generation = generation;
    }
    if (changed.length > 0) this.#emit(changed);
    return changed;
  }

  /**
   * Re-wraps every DEK under `next` and recomputes every keyed MAC, in one
   * transaction, then switches to `next` (rotate-kek). Values are re-encrypted
   * nowhere: only their data keys move. If the transaction fails nothing changes;
   * the caller keeps the old sealed key until this returns.
   */
  rekey(next: Envelope, opts: { counter?: { index: number; value: number } } = {}): void {
    const old = this.#env;
    const rows = this.#stmts.all.all() as Row[];
    const digest = new RowDigest();
    const meta = new Map<string, MetaEntry>();
    const updates: { name: string; wrappedDek: Uint8Array; valueMac: Uint8Array; leaseDek: Uint8Array | null }[] = [];
    for (const r of rows) {
      const m = this.#meta.get(r.name);
      const element = old.mac("row", r.name, String(r.version), r.wrapped_dek, r.ciphertext);
      if (!m || !old.equal(element, m.element)) throw new IntegrityError(`row ${JSON.stringify(r.name)} is not the one this store wrote; rotation refused`);
      const value = old.openValue(r.name, r.version, r.wrapped_dek, r.ciphertext);
      let valueMac: Uint8Array;
      try {
        valueMac = next.mac("value", r.name, value);
      } finally {
        value.fill(0);
      }
      const wrappedDek = old.rewrapDek(r.name, r.version, r.wrapped_dek, next);
      // The lease as this store holds it (checked at open or written since), not as the file may now say.
      const sealedLease = m.sealedLease ? rewrapLease(old, next, r.name, r.version, m.sealedLease) : null;
      const nextElement = next.mac("row", r.name, String(r.version), wrappedDek, r.ciphertext);
      const binding = bindingMac(next, r.name, r.version, { ...m, sealedLease });
      digest.toggle(nextElement);
      if (binding) digest.toggle(binding);
      meta.set(r.name, { ...m, valueMac, element: nextElement, binding, sealedLease, dekNonce: nonceOf(wrappedDek) });
      updates.push({ name: r.name, wrappedDek, valueMac, leaseDek: sealedLease?.dek ?? null });
    }
    const counter = opts.counter ?? this.recordedCounter();
    const generation = this.#generation + 1;
    this.#writing(() => {
      for (const u of updates) {
        this.#stmts.rekeyRow.run(u.wrappedDek, u.valueMac, u.name);
        if (u.leaseDek) this.#stmts.rekeyLease.run(u.leaseDek, u.name);
      }
      this.#stmts.setMeta.run("kek_check", next.mac("kek-check"));
      this.#writeDigest(generation, digest, next);
      if (counter !== undefined) this.#stmts.setMeta.run("rollback_counter", counterRecord(counter, next));
    });
    this.#env = next;
    this.#meta = meta;
    this.#digest = digest;
    this.#generation = generation;
  }

  /**
   * The TPM anti-rollback counter (NV index and value) this cache last recorded,
   * authenticated under the KEK; undefined if never recorded.
   */
  recordedCounter(): { index: number; value: number } | undefined {
    const row = this.#stmts.getMeta.get("rollback_counter") as { value: Buffer } | undefined;
    if (!row) return undefined;
    const buf = new Uint8Array(row.value);
    if (buf.length !== 4 + 8 + 32) throw new IntegrityError("cache.db rollback counter record is malformed");
    const view = new DataView(buf.buffer, buf.byteOffset);
    const index = view.getUint32(0);
    const value = view.getBigUint64(4);
    if (!this.#env.equal(buf.subarray(12), this.#env.mac("rollback-counter", String(index), value.toString()))) {
      throw new IntegrityError("cache.db rollback counter record fails authentication");
    }
    return { index, value: Number(value) };
  }

  recordCounter(counter: { index: number; value: number }): void {
    this.#writing(() => this.#stmts.setMeta.run("rollback_counter", counterRecord(counter, this.#env)));
  }

  loadProviderStates(): Map<string, ProviderState> {
    const out = new Map<string, ProviderState>();
    for (const r of this.#stmts.providers.all() as { name: string; last_success: number | null; last_error: string | null; last_error_kind: string | null; last_error_at: number | null; failures: number }[]) {
      out.set(r.name, { lastSuccess: r.last_success, lastError: r.last_error, lastErrorKind: r.last_error_kind, lastErrorAt: r.last_error_at, failures: r.failures });
    }
    return out;
  }

  saveProviderState(name: string, st: ProviderState): void {
    this.#writing(() => this.#stmts.saveProvider.run(name, st.lastSuccess, st.lastError, st.lastErrorKind, st.lastErrorAt, st.failures));
  }

  /**
   * Runs one write transaction. A failure of the disk (full, read-only, I/O) rolls
   * it back, marks the store not writable and throws StoreWriteError: nothing in
   * memory moved, so what is cached keeps being served; the next write that
   * succeeds marks it writable again.
   */
  #writing<T>(fn: () => T): T {
    let out: T;
    try {
      out = this.#db.transaction(fn)();
    } catch (e) {
      if (!isDiskFailure(e)) throw e;
      const reason = describeDiskFailure(path.dirname(this.#file), e);
      if (this.#write.writable || this.#write.reason !== reason) {
        this.#log.error({ reason, code: (e as { code?: string }).code }, `${reason}: serving cached values, not recording new ones`);
      }
      this.#write = { writable: false, since: this.#write.since ?? Date.now(), reason };
      throw new StoreWriteError(`${reason}: serving cached values, not recording new ones`, { cause: e });
    }
    if (!this.#write.writable) {
      this.#log.info({ after_s: Math.round((Date.now() - (this.#write.since ?? Date.now())) / 1000) }, "data_dir takes writes again: recording new values");
      this.#write = { writable: true, since: null, reason: null };
    }
    return out;
  }

  close(): void {
    this.#audit.detach();
    if (this.#db?.open) this.#db.close();
  }

  #emit(names: readonly string[]): void {
    for (const fn of this.#listeners) fn(names, this.#generation);
  }

  /**
   * Opens the database. On a disk that takes no writes (full, read-only) the
   * normal open fails creating the WAL index (`-shm`); it is then opened again in
   * SQLite's exclusive locking mode, which keeps that index in memory, so the
   * cached values are served read-only (this process holds data_dir's lock, so no
   * other process reads the file meanwhile) and writes resume when space does.
   */
  #open(): void {
    refuseSymlinks(this.#file);
    try {
      this.#openDb(false);
    } catch (e) {
      if (!isDiskFailure(e)) throw e;
      const reason = describeDiskFailure(path.dirname(this.#file), e);
      try {
        this.#openDb(true);
      } catch (again) {
        if (!isDiskFailure(again)) throw again;
        throw new CacheOpenError(`${reason}: the cache cannot be opened (${String((again as { code?: string }).code)}); free some space`, { cause: again });
      }
      this.#write = { writable: false, since: Date.now(), reason };
      this.#log.error({ reason }, `${reason}: serving cached values, not recording new ones`);
    }
  }

  #openDb(exclusive: boolean): void {
    const db = new DatabaseCtor(this.#file, { fileMustExist: false, nativeBinding: sqliteNativeBinding() });
    try {
      chmodNoFollow(this.#file, 0o600);
      if (exclusive) db.pragma("locking_mode = EXCLUSIVE");
      db.pragma("journal_mode = WAL");
      db.pragma("synchronous = FULL");
      db.pragma("foreign_keys = ON");
      // Flash and small data_dirs: a checkpoint once the WAL holds WAL_CHECKPOINT_PAGES
      // pages, and the WAL file truncated back to WAL_LIMIT_BYTES after one (it would
      // otherwise keep its largest size forever).
      db.pragma(`wal_autocheckpoint = ${WAL_CHECKPOINT_PAGES}`);
      db.pragma(`journal_size_limit = ${WAL_LIMIT_BYTES}`);
      const check = db.pragma("integrity_check", { simple: true });
      if (check !== "ok") throw new IntegrityError(`SQLite integrity check failed: ${String(check)}`);
      migrate(db);
      this.#db = db;
      this.#stmts = prepare(db);
      this.#load();
      this.#audit.attach(db);
    } catch (e) {
      if (db.open) db.close();
      throw e;
    }
  }

  #load(): void {
    const env = this.#env;
    const s = this.#stmts;
    const kekCheck = env.mac("kek-check");
    const stored = s.getMeta.get("kek_check") as { value: Buffer } | undefined;
    const count = (s.count.get() as { n: number }).n;
    if (!stored) {
      if (count > 0) throw new IntegrityError("cache.db has secrets but no key check: it was not written by this sealcache");
      s.setMeta.run("kek_check", kekCheck);
    } else if (!env.equal(new Uint8Array(stored.value), kekCheck)) {
      throw new IntegrityError("cache.db was written under a different cache key (kek.sealed was replaced or re-initialised)");
    }
    const meta = new Map<string, MetaEntry>();
    const digest = new RowDigest();
    // Iterated, not loaded whole: at 10,000 secrets the rows' ciphertexts were
    // megabytes of garbage the heap then kept.
    for (const r of s.all.iterate() as IterableIterator<Row>) {
      const element = env.mac("row", r.name, String(r.version), r.wrapped_dek, r.ciphertext);
      const bound = { sourceVersion: r.source_version, held: r.held, origin: r.origin };
      if ((r.lease_dek === null) !== (r.lease === null)) throw new IntegrityError(`row ${JSON.stringify(r.name)} has half a lease (lease_dek and lease are set together)`);
      const sealedLease = r.lease_dek && r.lease ? { dek: new Uint8Array(r.lease_dek), ct: new Uint8Array(r.lease) } : null;
      const binding = bindingMac(env, r.name, r.version, { ...bound, sealedLease });
      digest.toggle(element);
      if (binding) digest.toggle(binding);
      meta.set(r.name, {
        name: r.name,
        version: r.version,
        ...bound,
        leased: sealedLease !== null,
        sealedLease,
        changedRev: r.changed_rev,
        changedAt: r.changed_at,
        fetchedAt: r.fetched_at,
        valueMac: new Uint8Array(r.value_mac),
        element,
        binding,
        dekNonce: nonceOf(r.wrapped_dek),
      });
    }
    const head = s.getMeta.get("digest") as { value: Buffer } | undefined;
    let generation = 0;
    if (head) {
      const buf = new Uint8Array(head.value);
      if (buf.length !== 8 + 32 + 32) throw new IntegrityError("cache.db digest record is malformed");
      generation = Number(new DataView(buf.buffer, buf.byteOffset).getBigUint64(0));
      const acc = buf.subarray(8, 40);
      const mac = buf.subarray(40);
      if (!env.equal(mac, env.mac("head", String(generation), acc))) throw new IntegrityError("cache.db digest record fails authentication");
      if (!env.equal(acc, digest.acc)) throw new IntegrityError("cache.db rows do not match the digest: rows were edited, swapped, removed or restored from an older copy");
    } else if (count > 0) {
      throw new IntegrityError("cache.db has secrets but no digest record");
    }
    const errors = new Map<string, SecretError>();
    for (const r of s.errors.all() as { name: string; error_kind: string; error: string; error_at: number }[]) {
      errors.set(r.name, { kind: r.error_kind, message: r.error, at: r.error_at });
    }
    this.#meta = meta;
    this.#errors = errors;
    this.#digest = digest;
    this.#generation = generation;
  }

  #writeDigest(generation: number, digest: RowDigest, env: Envelope = this.#env): void {
    const buf = new Uint8Array(8 + 32 + 32);
    new DataView(buf.buffer).setBigUint64(0, BigInt(generation));
    buf.set(digest.acc, 8);
    buf.set(env.mac("head", String(generation), digest.acc), 40);
    this.#stmts.setMeta.run("digest", buf);
  }

  /** Moves the database aside and forgets its contents; returns the names it held. */
  #quarantine(reason: string): string[] {
    const names = [...this.#meta.keys()];
    // Buffered audit entries go to the fresh database, not into the evidence.
    this.#audit.detach({ flush: false });
    this.close();
    const rec = quarantineFiles(this.#file, reason);
    this.#quarantined.push(rec);
    this.#meta = new Map();
    this.#errors = new Map();
    this.#digest = new RowDigest();
    this.#generation = 0;
    this.#log.error({ quarantined: rec.path, reason }, "cache database failed its checks; moved aside and never served (secrets will be fetched again)");
    return names;
  }
}

/**
 * The second digest element of a row that records what its backend version is
 * bound to (schema 3): the version check after a restart trusts `sourceVersion`
 * only under a matching `held`, and a hierarchy serves a row only with its
 * `origin`, so editing any of them in the file must be caught like an edited
 * value. Rows without either (written before schema 3) contribute none, which
 * keeps their digest valid; clearing both on a newer row removes an element the
 * digest expects. Kept apart from the row MAC so a touch that moves the version
 * needs neither the ciphertext nor a new DEK.
 */
function bindingMac(
  env: Envelope,
  name: string,
  version: number,
  b: { sourceVersion: string | null; held: string | null; origin: string | null; sealedLease: SealedLease | null },
): Uint8Array | null {
  if (b.held === null && b.origin === null && b.sealedLease === null) return null;
  const opt = (v: string | null) => (v === null ? "-" : `=${v}`);
  // The sealed lease (schema 4) is appended only when there is one, so rows without
  // a lease keep the MAC they had under schema 3.
  const lease = b.sealedLease ? [b.sealedLease.dek, b.sealedLease.ct] : [];
  return env.mac("binding", name, String(version), opt(b.sourceVersion), opt(b.held), opt(b.origin), ...lease);
}

function toggleRow(digest: RowDigest, m: MetaEntry): void {
  digest.toggle(m.element);
  if (m.binding) digest.toggle(m.binding);
}

function counterRecord(c: { index: number; value: number }, env: Envelope): Uint8Array {
  const buf = new Uint8Array(4 + 8 + 32);
  const view = new DataView(buf.buffer);
  view.setUint32(0, c.index);
  view.setBigUint64(4, BigInt(c.value));
  buf.set(env.mac("rollback-counter", String(c.index), String(c.value)), 12);
  return buf;
}

/**
 * Whether `envelope` is the key cache.db was written under, read without opening
 * the store (so a wrong key is not mistaken for tampering). Undefined when there
 * is no database or it records no key check yet.
 */
export function keyMatches(file: string, envelope: Envelope): boolean | undefined {
  if (!fs.existsSync(file)) return undefined;
  let db: Database | undefined;
  try {
    db = new DatabaseCtor(file, { fileMustExist: true, nativeBinding: sqliteNativeBinding() });
    const row = db.prepare("SELECT value FROM meta WHERE key = 'kek_check'").get() as { value: Buffer } | undefined;
    return row ? envelope.equal(new Uint8Array(row.value), envelope.mac("kek-check")) : undefined;
  } catch {
    return undefined;
  } finally {
    db?.close();
  }
}

const NONCE_BYTES = 24;
/** 128 pages of 4 KiB: a checkpoint after about half a MiB of WAL. */
const WAL_CHECKPOINT_PAGES = 128;
const WAL_LIMIT_BYTES = 512 * 1024;

/** The cache could not be opened (a symlink in data_dir, no space to open it): the daemon stays sealed with the reason and retries. */
export class CacheOpenError extends SealError {
  constructor(message: string, opts: { cause?: unknown } = {}) {
    super(message, opts);
    this.name = "CacheOpenError";
  }
}

/**
 * data_dir is root's (or the daemon user's) own: a symlink there (cache.db, or its
 * -wal, -shm or -journal) would make SQLite read and write a file elsewhere, and the
 * mode fix-up change that file's mode. Refused, never followed.
 */
function refuseSymlinks(file: string): void {
  for (const f of [file, `${file}-wal`, `${file}-shm`, `${file}-journal`]) {
    let st: fs.Stats;
    try {
      st = fs.lstatSync(f);
    } catch {
      continue;
    }
    if (st.isSymbolicLink()) throw new CacheOpenError(`${f} is a symbolic link; the cache is never opened through one (move the file itself there)`);
    if (!st.isFile()) throw new CacheOpenError(`${f} is not a regular file; move it away`);
  }
}

/** chmod that never follows a symlink (fchmod on a descriptor opened O_NOFOLLOW). */
function chmodNoFollow(file: string, mode: number): void {
  const fd = fs.openSync(file, fs.constants.O_RDONLY | fs.constants.O_NOFOLLOW);
  try {
    fs.fchmodSync(fd, mode);
  } finally {
    fs.closeSync(fd);
  }
}

/** The nonce of a wrapped DEK ([format 1][nonce 24][ct]), copied. */
function nonceOf(wrappedDek: Uint8Array): Uint8Array {
  return new Uint8Array(wrappedDek.subarray(1, 1 + NONCE_BYTES));
}

/** Damage to the file or its contents, as opposed to a busy, full or unreadable disk. */
function isCorruption(e: unknown): boolean {
  if (e instanceof IntegrityError) return true;
  const code = (e as { code?: unknown }).code;
  return typeof code === "string" && (code.startsWith("SQLITE_CORRUPT") || code === "SQLITE_NOTADB");
}

function prepare(db: Database) {
  const p = (sql: string): Statement => db.prepare(sql);
  return {
    read: p("SELECT version, wrapped_dek, ciphertext FROM secrets WHERE name = ?"),
    all: p("SELECT * FROM secrets"),
    count: p("SELECT count(*) AS n FROM secrets"),
    upsert: p(
      `INSERT INTO secrets (name, version, source_version, wrapped_dek, ciphertext, value_mac, changed_rev, changed_at, fetched_at, held, origin, lease_dek, lease)
       VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
       ON CONFLICT(name) DO UPDATE SET version = excluded.version, source_version = excluded.source_version,
         wrapped_dek = excluded.wrapped_dek, ciphertext = excluded.ciphertext, value_mac = excluded.value_mac,
         changed_rev = excluded.changed_rev, changed_at = excluded.changed_at, fetched_at = excluded.fetched_at,
         held = excluded.held, origin = excluded.origin, lease_dek = excluded.lease_dek, lease = excluded.lease`,
    ),
    touch: p("UPDATE secrets SET fetched_at = ?, source_version = ?, held = ?, origin = ?, lease_dek = ?, lease = ? WHERE name = ?"),
    remove: p("DELETE FROM secrets WHERE name = ?"),
    rekeyRow: p("UPDATE secrets SET wrapped_dek = ?, value_mac = ? WHERE name = ?"),
    rekeyLease: p("UPDATE secrets SET lease_dek = ? WHERE name = ?"),
    setError: p("INSERT OR REPLACE INTO secret_state (name, error_kind, error, error_at) VALUES (?, ?, ?, ?)"),
    clearError: p("DELETE FROM secret_state WHERE name = ?"),
    errors: p("SELECT name, error_kind, error, error_at FROM secret_state"),
    getMeta: p("SELECT value FROM meta WHERE key = ?"),
    setMeta: p("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)"),
    providers: p("SELECT * FROM provider_state"),
    saveProvider: p("INSERT OR REPLACE INTO provider_state (name, last_success, last_error, last_error_kind, last_error_at, failures) VALUES (?, ?, ?, ?, ?, ?)"),
  };
}
