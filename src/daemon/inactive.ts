import type { Config } from "../config/schema.js";
import { isActiveSealer } from "../seal/registry.js";

/**
 * Sections the config may already hold whose behaviour arrives in a later release.
 * They are validated, and reported here by status, doctor and the start-up log,
 * never silently ignored.
 */
export function inactiveSections(c: Config): string[] {
  const out: string[] = [];
  if (!isActiveSealer(c.seal.type)) out.push(`seal.type ${c.seal.type}: not active in this build yet; the daemon stays sealed (use seal.type: host without a TPM)`);
  if (c.mqtt) out.push("mqtt: configured but not active in this build yet; no status is published and no refresh/revoke is received");
  return out;
}
