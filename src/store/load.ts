import type { Envelope } from "../crypto/envelope.js";
import { IntegrityError } from "../errors.js";
import type { CacheDb } from "./database.js";
import { RowDigest } from "./digest.js";
import { DIGEST_V1, DIGEST_V2, decodeDigest, encodeDigest, kekCheck } from "./integrity.js";
import { toggleRow, toggleRowV1 } from "./plan.js";
import { RECORD_PREFIX, decodeRecord, recordElement, type SealedRecord } from "./records.js";
import { sealedRow, type MetaEntry, type SecretError } from "./rows.js";
import type { SqlRow } from "./statements.js";

/** What the store holds in memory, read from an open cache.db and checked. */
export interface Loaded {
  readonly meta: Map<string, MetaEntry>;
  readonly errors: Map<string, SecretError>;
  readonly records: Map<string, SealedRecord>;
  readonly digest: RowDigest;
  readonly generation: number;
}

/**
 * Reads every row and record into memory and checks them all against the key
 * and the digest: anything edited, swapped, removed, added or restored from an
 * older copy throws IntegrityError (the caller quarantines). A fresh database
 * gets its key check.
 */
export function loadCache(db: CacheDb, env: Envelope): Loaded {
  const s = db.stmts;
  const stored = s.getMeta.get("kek_check") as { value: Buffer } | undefined;
  const count = (s.count.get() as { n: number }).n;
  if (!stored) {
    if (count > 0) throw new IntegrityError("cache.db has secrets but no key check: it was not written by this sealcache");
    db.write(() => s.setMeta.run("kek_check", kekCheck(env)));
  } else if (!env.equal(new Uint8Array(stored.value), kekCheck(env))) {
    throw new IntegrityError("cache.db was written under a different cache key (kek.sealed was replaced or re-initialised)");
  }
  // Format 2 (one MAC per row) is what this version writes; a cache.db that only
  // has a format 1 digest is checked by format 1 and upgraded in the same open.
  const head2 = s.getMeta.get(DIGEST_V2) as { value: Buffer } | undefined;
  const head1 = head2 ? undefined : (s.getMeta.get(DIGEST_V1) as { value: Buffer } | undefined);
  const toggle = head1 ? toggleRowV1 : toggleRow;
  const meta = new Map<string, MetaEntry>();
  const digest = new RowDigest();
  const upgraded = head1 ? new RowDigest() : undefined;
  // Iterated, not loaded whole: at 10,000 secrets the rows' ciphertexts were
  // megabytes of garbage the heap then kept.
  for (const r of s.all.iterate() as IterableIterator<SqlRow>) {
    if ((r.lease_dek === null) !== (r.lease === null))
      throw new IntegrityError(`row ${JSON.stringify(r.name)} has half a lease (lease_dek and lease are set together)`);
    const sealedLease = r.lease_dek && r.lease ? { dek: new Uint8Array(r.lease_dek), ct: new Uint8Array(r.lease) } : null;
    const entry: MetaEntry = {
      name: r.name,
      version: r.version,
      sourceVersion: r.source_version,
      held: r.held,
      origin: r.origin,
      leased: sealedLease !== null,
      sealedLease,
      changedRev: r.changed_rev,
      changedAt: r.changed_at,
      fetchedAt: r.fetched_at,
      sealed: sealedRow(r.value_mac, r.wrapped_dek, r.ciphertext),
      dekLen: r.wrapped_dek.length,
    };
    toggle(digest, env, entry);
    if (upgraded) toggleRow(upgraded, env, entry);
    meta.set(r.name, entry);
  }
  const records = new Map<string, SealedRecord>();
  for (const r of s.records.all(`${RECORD_PREFIX}%`) as { key: string; value: Buffer }[]) {
    const rec = decodeRecord(r.key.slice(RECORD_PREFIX.length), r.value);
    const element = recordElement(env, rec);
    digest.toggle(element);
    upgraded?.toggle(element);
    records.set(rec.key, rec);
  }
  const head = head2 ?? head1;
  let generation = 0;
  if (head) {
    const d = decodeDigest(env, head.value, head1 ? 1 : 2);
    generation = d.generation;
    if (!env.equal(d.acc, digest.acc))
      throw new IntegrityError("cache.db rows do not match the digest: rows were edited, swapped, removed or restored from an older copy");
    if (upgraded) {
      db.write(() => {
        s.setMeta.run(DIGEST_V2, encodeDigest(env, generation, upgraded.acc));
        s.removeMeta.run(DIGEST_V1);
      });
    }
  } else if (count > 0 || records.size > 0) {
    throw new IntegrityError("cache.db has secrets but no digest record");
  }
  const errors = new Map<string, SecretError>();
  for (const r of s.errors.all() as { name: string; error_kind: string; error: string; error_at: number }[]) {
    errors.set(r.name, { kind: r.error_kind, message: r.error, at: r.error_at });
  }
  return { meta, errors, records, digest: upgraded ?? digest, generation };
}
