import type { z } from "zod";
import { mapPool } from "../pool.js";
import type { FetchResult, Provider, ProviderInit, SecretRef } from "../provider.js";
import { VaultAuth } from "./auth.js";
import { vaultClient } from "./client.js";
import { readSecret, type ReadContext } from "./secrets.js";
import type { vaultSchema } from "./schema.js";
import { VaultTransport } from "./transport.js";

type Options = z.output<ReturnType<typeof vaultSchema>>;

/**
 * HashiCorp Vault through node-vault (over our own HTTP layer, see transport.ts):
 * token / AppRole / Kubernetes / JWT auth with renewal, KV v1 and v2 (a metadata
 * version check before each data read), dynamic secrets whose leases are renewed
 * before expiry and replaced when renewal is refused.
 */
export function create(init: ProviderInit<Options>): Provider {
  const o = init.options;
  const transport = new VaultTransport({ address: o.address, tls: o.tls });
  const client = vaultClient({ address: o.address, namespace: o.namespace, transport });
  const auth = new VaultAuth({ client, auth: o.auth, logger: init.logger });
  const leases: ReadContext["leases"] = new Map();

  async function readAll(refs: readonly SecretRef[], signal: AbortSignal): Promise<FetchResult[]> {
    const ctx: ReadContext = { client, signal, leases };
    if (refs.length === 0) return [];
    // One read first: if Vault is down, sealed or throttling, the batch costs one
    // request, not `concurrency` of them.
    const first = await readSecret(ctx, refs[0]!);
    return [first, ...(await mapPool(refs.slice(1), o.concurrency, (ref) => readSecret(ctx, ref)))];
  }

  return {
    // Vault has no batch read: a batch is read with `concurrency` requests in flight
    // and lands in the cache as one transaction.
    maxBatch: 100,
    backend: JSON.stringify([o.address, o.namespace ?? null]),
    async fetch(refs, signal) {
      await auth.ensure(signal);
      let results = await readAll(refs, signal);
      const denied = results.filter((r) => !r.ok && /HTTP 403/.test(r.error.message));
      // Vault answers 403 both for a path the policy denies and for a token it no
      // longer accepts (expired, revoked): one lookup-self tells which.
      if (denied.length > 0 && !(await auth.tokenValid(signal))) {
        init.logger.info({ denied: denied.length }, "vault token no longer accepted; logging in again");
        auth.invalidate();
        await auth.ensure(signal);
        const again = new Map((await readAll(refs.filter((r) => denied.some((d) => d.name === r.name)), signal)).map((r) => [r.name, r]));
        results = results.map((r) => again.get(r.name) ?? r);
      }
      return results;
    },
    async close() {
      auth.close();
      transport.close();
    },
  };
}
