import { SealError } from "../errors.js";
import { hex, isTpmError, type TpmError } from "../../native/tpm2/index.js";

/**
 * Turns a TpmError into a SealError that says what failed and what the operator
 * can do about it. `what` is the operation ("unsealing the cache key").
 */
export function sealErrorFromTpm(e: unknown, what: string, tcti: string): SealError {
  if (!isTpmError(e)) {
    if (e instanceof SealError) return e;
    return new SealError(`${what} with the TPM (${tcti}) failed: ${e instanceof Error ? e.message : String(e)}`, { cause: e });
  }
  return new SealError(`${what}: ${advice(e, tcti)}`, { cause: e });
}

function advice(e: TpmError, tcti: string): string {
  switch (e.kind) {
    case "lockout":
      return (
        `the TPM (${tcti}) is in dictionary-attack lockout (TPM_RC_LOCKOUT) and refuses authorizations. It leaves lockout by itself after its ` +
        `recovery time; with the lockout authorization you can clear it now (tpm2_dictionarylockout --clear-lockout). ${e.message}`
      );
    case "policy":
      return (
        `the TPM (${tcti}) refused the PCR policy of the sealed cache key although the PCR values recorded with it match the current ones: ` +
        `kek.sealed was altered, or the PCRs changed during the attempt (${e.message}). Retry; if it persists, open the cache with the recovery ` +
        `key and reseal`
      );
    case "integrity":
      return (
        `the TPM (${tcti}) rejected the sealed cache key as not belonging to its storage root key: it was sealed by another TPM, the TPM was ` +
        `cleared, or kek.sealed is corrupt (${e.message}). Restore data_dir on its original device, or open the cache with the recovery key`
      );
    case "tampered":
      return (
        `a response from the TPM (${tcti}) failed its integrity check: something between sealcache and the TPM altered the traffic. Refusing ` +
        `to continue (${e.message})`
      );
    case "memory":
      return (
        `the TPM (${tcti}) has no free object or session slots; another process holds them (use the resource manager /dev/tpmrm0 rather than ` +
        `/dev/tpm0) (${e.message})`
      );
    case "format":
      return (
        `the TPM (${tcti}) refused the sealed cache key as malformed; kek.sealed is corrupt (${e.message}). Restore it from a backup, or open ` +
        `the cache with the recovery key`
      );
    case "auth":
      return `the TPM (${tcti}) refused the authorization (${e.message})`;
    case "library-missing":
    case "tcti-missing":
    case "no-device":
    case "permission":
    case "unreachable":
      return `TPM unavailable: ${e.message}`;
    default:
      return `the TPM (${tcti}) failed: ${e.message}`;
  }
}

/** The refusal when PCR values differ from those recorded at seal time. */
export function pcrChangedError(changed: readonly { pcr: number; sealed: Uint8Array; now: Uint8Array }[], bound: readonly number[]): SealError {
  const list = changed.map((c) => c.pcr).join(", ");
  const detail = changed.map((c) => `PCR ${c.pcr}: sealed ${short(c.sealed)}, now ${short(c.now)}`).join("; ");
  return new SealError(
    `the TPM refuses to unseal the cache key: it is sealed to sha256 PCR ${bound.join(", ")} and PCR ${list} changed since it was sealed (${detail}). ` +
      `If the change is expected (a firmware, bootloader, kernel or boot-configuration update), reseal the cache key to the current values: open ` +
      `it with the recovery key (data_dir/kek.recovery) and seal it again (sealcache init --reseal --recovery-key-file FILE). ` +
      `Otherwise restore the previous boot state; if nobody changed it, treat the device as tampered with.`,
  );
}

function short(v: Uint8Array): string {
  const h = hex(v);
  return `${h.slice(0, 8)}…${h.slice(-4)}`;
}
