import { SealError } from "../errors.js";
import type { Sealer, SealerInit, SealerModule } from "./sealer.js";

// Adding a sealer is adding a module and one line here.
const sealers: Record<string, (() => Promise<SealerModule>) | undefined> = {
  host: () => import("./host.js"),
  tpm2: () => import("./tpm2.js"),
  "tpm2+host": () => import("./tpm2-host.js"),
};

export async function createSealer(init: SealerInit): Promise<Sealer> {
  const load = sealers[init.seal.type];
  if (!load) {
    throw new SealError(
      `seal.type ${init.seal.type} is not active in this build yet; set seal.type: host on hardware without a TPM (the KEK is then only as safe as the disk)`,
    );
  }
  return (await load()).create(init);
}

export function isActiveSealer(type: string): boolean {
  return sealers[type] !== undefined;
}
