import { valueResult } from "../extract.js";
import type { ProviderError, FetchResult, SecretRef } from "../provider.js";

export { valueResult };

const enc = new TextEncoder();

export function textBytes(s: string): Uint8Array {
  return enc.encode(s);
}

export function failed(ref: SecretRef, error: ProviderError): FetchResult {
  return { name: ref.name, ok: false, error };
}
