import type { Logger } from "../log.js";
import type { SealConfig } from "../config/schema.js";
import type { Sodium } from "../crypto/sodium.js";

/** What `status` and `doctor` show about the sealer, without unsealing anything. */
export interface SealerInfo {
  readonly type: string;
  readonly ok: boolean;
  readonly detail: string;
  /** Things an operator must know, such as "the KEK is only as safe as this disk". */
  readonly warnings: readonly string[];
}

/** The one seam for protecting the KEK at rest: a TPM, a host key, or both. */
export interface Sealer {
  readonly type: string;
  seal(kek: Uint8Array): Promise<Uint8Array>;
  /** Returns the KEK; throws SealError with what to do when it cannot. */
  unseal(blob: Uint8Array): Promise<Uint8Array>;
  describe(): Promise<SealerInfo>;
  close?(): Promise<void>;
}

export interface SealerInit {
  readonly dataDir: string;
  readonly seal: SealConfig;
  readonly sodium: Sodium;
  readonly logger: Logger;
}

export interface SealerModule {
  create(init: SealerInit): Sealer;
}
