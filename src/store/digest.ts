/**
 * A running XOR of per-row keyed MACs: updating one row costs two XORs, and
 * recomputing it over the whole table at open detects any row that was edited,
 * deleted, added or restored from an older copy, since only the KEK holder can
 * produce the MACs. Rolling back the whole file stays possible; the TPM counter
 * (seal.type tpm2) is what closes that.
 */
export class RowDigest {
  readonly acc = new Uint8Array(32);

  toggle(element: Uint8Array): void {
    for (let i = 0; i < 32; i++) this.acc[i]! ^= element[i]!;
  }

  reset(): void {
    this.acc.fill(0);
  }

  copy(): RowDigest {
    const d = new RowDigest();
    d.acc.set(this.acc);
    return d;
  }
}
