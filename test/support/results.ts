import assert from "node:assert/strict";
import type { FetchResult } from "../../src/providers/provider.js";
import { assertNoLeaks } from "./planted.js";

const dec = new TextDecoder();

/** Assertions over a provider's FetchResults, shared by the backend tests. */
export const byName = (rs: FetchResult[]) => new Map(rs.map((r) => [r.name, r]));

export const field = (r: FetchResult | undefined, f: "version" | "unchanged") => (r?.ok ? r[f] : undefined);

export function text(r: FetchResult | undefined): string {
  assert.ok(r?.ok, `expected a value, got ${r && !r.ok ? r.error.message : "nothing"}`);
  assert.ok(!r.unchanged, "expected a value, got unchanged");
  return dec.decode(r.value);
}

/** The per-secret error, checked to hold no planted value. */
export function failure(r: FetchResult | undefined) {
  assert.ok(r && !r.ok, "expected an error");
  assertNoLeaks(r.error.message, "error message");
  return r.error;
}

/** The provider-level error a fetch threw, checked to hold no planted value. */
export async function thrown(p: Promise<unknown>) {
  try {
    await p;
  } catch (e) {
    assertNoLeaks(String((e as Error).message), "thrown error");
    return e as { kind: string; message: string; retryAfter?: number };
  }
  assert.fail("expected the fetch to throw");
}
