import path from "node:path";
import { SealError } from "../errors.js";
import { exists } from "../fsutil.js";
import { create as createHost, HOST_KEY_FILE } from "./host.js";
import { peekSealedKek } from "./reseal.js";
import type { Sealer, SealerInfo, SealerInit } from "./sealer.js";
import { TpmSealCore } from "./tpm2.js";

/**
 * `seal.type: tpm2+host`: both the TPM and the root-only host key are needed.
 * The KEK is first sealed with the host key (src/seal/host.ts), and that blob is
 * then sealed to the TPM. Unsealing runs the other way: the TPM gives back the
 * host-sealed blob, which opens only with data_dir/host.key. The disk alone, the
 * TPM alone, or another device's TPM with this disk: none of them yields the key.
 */
export function create(init: SealerInit): Sealer {
  const host = createHost(init);
  const core = new TpmSealCore({ tcti: init.seal.tcti, pcrs: init.seal.pcrs, logger: init.logger });
  return {
    type: "tpm2+host",
    async seal(kek) {
      const hostBlob = await host.seal(kek);
      return core.seal(hostBlob);
    },
    async unseal(blob) {
      const hostBlob = await core.unseal(blob);
      try {
        return await host.unseal(hostBlob);
      } catch (e) {
        const why = e instanceof Error ? e.message : String(e);
        throw new SealError(`seal.type tpm2+host: the TPM opened its part, but the host key part failed: ${why}`, { cause: e });
      }
    },
    async describe(): Promise<SealerInfo> {
      const peek = peekSealedKek(init.dataDir);
      const sealed = peek?.type === "tpm2+host";
      const tpm = await core.inspect(sealed ? peek.blob : undefined);
      const h = await host.describe();
      // host.describe() accepts a key not created yet; here a sealed key without it can never open.
      const hostMissing = sealed && !exists(path.join(init.dataDir, HOST_KEY_FILE));
      const hostOk = h.ok && !hostMissing;
      const hostDetail = hostMissing
        ? `host key ${path.join(init.dataDir, HOST_KEY_FILE)} is missing: the cache key cannot be unsealed without it`
        : h.ok
          ? `host key ${HOST_KEY_FILE} present`
          : h.detail;
      return { type: "tpm2+host", ok: tpm.ok && hostOk, detail: `${tpm.detail}; ${hostDetail}`, warnings: tpm.warnings };
    },
    close: () => core.close(),
  };
}
