import nodeVault from "node-vault";
import type { VaultTransport } from "./transport.js";

export type VaultClient = nodeVault.client;

/**
 * A node-vault client over our transport. The token and namespace come from the
 * config only: VAULT_TOKEN / VAULT_ADDR / VAULT_NAMESPACE in the daemon's
 * environment are not picked up, and node-vault's debug output (which prints
 * request bodies, login credentials included) is switched off.
 */
export function vaultClient(opts: { address: string; namespace: string | undefined; transport: VaultTransport }): VaultClient {
  const client = nodeVault({
    endpoint: opts.address,
    apiVersion: "v1",
    pathPrefix: "",
    namespace: opts.namespace ?? "",
    token: "",
    noCustomHTTPVerbs: true,
    "request-promise": opts.transport.asRequestPromise(),
    debug: () => undefined,
  });
  client.token = "";
  // node-vault falls back to VAULT_NAMESPACE / VAULT_PREFIX for empty values.
  Object.assign(client, { namespace: opts.namespace ?? "", pathPrefix: "" });
  return client;
}
