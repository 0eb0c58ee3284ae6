import { ProviderError, isProviderError } from "../provider.js";

/** The HTTP status of a node-vault ApiResponseError (a 4xx that our transport let through). */
export function statusOf(e: unknown): number | undefined {
  const s = (e as { response?: { statusCode?: unknown } } | null)?.response?.statusCode;
  return typeof s === "number" ? s : undefined;
}

/** Vault's `{"errors": [...]}` texts, for classification only: never copied into a message. */
export function errorTexts(e: unknown): string[] {
  const errs = (e as { response?: { body?: { errors?: unknown } } } | null)?.response?.body?.errors;
  return Array.isArray(errs) ? errs.filter((x): x is string => typeof x === "string") : [];
}

/**
 * Turns what a Vault call threw into a ProviderError with our own message: the
 * transport's errors pass through; 4xx statuses become per-secret errors.
 */
export function classify(e: unknown, what: string): ProviderError {
  if (isProviderError(e)) return e;
  const status = statusOf(e);
  if (status === 403) return new ProviderError("permanent", `${what}: permission denied (HTTP 403); check the policy of the Vault role`);
  if (status === 404) return new ProviderError("permanent", `${what}: not found (HTTP 404)`);
  if (status !== undefined) return new ProviderError("permanent", `${what}: rejected (HTTP ${status})`);
  // node-vault validates arguments with tv4 before sending.
  return new ProviderError("permanent", `${what}: request not sent (${(e as Error)?.name ?? "error"})`);
}
