import type { Envelope } from "../crypto/envelope.js";
import { RowDigest } from "./digest.js";
import { rewrapLease } from "./lease.js";
import { toggleRow } from "./plan.js";
import { recordElement, rewrapRecord, type SealedRecord } from "./records.js";
import { ciphertextOf, type MetaEntry, sealedRow, wrappedDekOf } from "./rows.js";

/**
 * Every row and record as it is under `next` (rotate-kek): data keys re-wrapped,
 * value MACs recomputed (each value opened once and zeroed at once), leases and
 * records re-sealed, and the digest over them. Values are re-encrypted nowhere:
 * only their data keys move. Pure: the store writes the result in one transaction.
 */
export function rekeyed(
  old: Envelope,
  next: Envelope,
  rows: Iterable<MetaEntry>,
  sealedRecords: Iterable<SealedRecord>,
): { meta: Map<string, MetaEntry>; records: Map<string, SealedRecord>; digest: RowDigest } {
  const digest = new RowDigest();
  const meta = new Map<string, MetaEntry>();
  for (const m of rows) {
    const value = old.openValue(m.name, m.version, wrappedDekOf(m), ciphertextOf(m));
    let valueMac: Uint8Array;
    try {
      valueMac = next.mac("value", m.name, value);
    } finally {
      value.fill(0);
    }
    const wrappedDek = old.rewrapDek(m.name, m.version, wrappedDekOf(m), next);
    const sealedLease = m.sealedLease ? rewrapLease(old, next, m.name, m.version, m.sealedLease) : null;
    const entry: MetaEntry = { ...m, sealed: sealedRow(valueMac, wrappedDek, ciphertextOf(m)), dekLen: wrappedDek.length, sealedLease };
    toggleRow(digest, next, entry);
    meta.set(m.name, entry);
  }
  const records = new Map<string, SealedRecord>();
  for (const r of sealedRecords) {
    const moved = rewrapRecord(old, next, r);
    digest.toggle(recordElement(next, moved));
    records.set(r.key, moved);
  }
  return { meta, records, digest };
}
