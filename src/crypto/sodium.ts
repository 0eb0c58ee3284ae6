import sodium from "libsodium-wrappers";

export type Sodium = typeof sodium;

/** libsodium's WebAssembly is compiled on first use; every caller awaits this once. */
export async function loadSodium(): Promise<Sodium> {
  await sodium.ready;
  return sodium;
}
