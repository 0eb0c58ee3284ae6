import { extractKey } from "../extract.js";
import { ProviderError, type FetchResult, type SecretRef } from "../provider.js";

const enc = new TextEncoder();

/** Builds a secret's result from the bytes the backend answered, picking `key` when set. */
export function valueResult(ref: SecretRef, raw: Uint8Array, version: string | undefined, where: string, expiresAt?: number): FetchResult {
  if (ref.key === undefined) return { name: ref.name, ok: true, value: raw, version, expiresAt };
  try {
    return { name: ref.name, ok: true, value: extractKey(raw, ref.key, where), version, expiresAt };
  } catch (e) {
    return { name: ref.name, ok: false, error: e as ProviderError };
  } finally {
    raw.fill(0);
  }
}

export function textBytes(s: string): Uint8Array {
  return enc.encode(s);
}

export function failed(ref: SecretRef, error: ProviderError): FetchResult {
  return { name: ref.name, ok: false, error };
}
