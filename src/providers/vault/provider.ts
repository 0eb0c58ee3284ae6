import type { z } from "zod";
import { mapPool } from "../pool.js";
import type { FetchResult, Provider, ProviderInit, SecretRef } from "../provider.js";
import { VaultAuth } from "./auth.js";
import { vaultClient } from "./client.js";
import { classify } from "./errors.js";
import { leasePath, readSecret, type Lease, type ReadContext } from "./secrets.js";
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
  const replaced: ReadContext["replaced"] = new Map();

  async function readAll(refs: readonly SecretRef[], signal: AbortSignal): Promise<FetchResult[]> {
    const ctx: ReadContext = { client, signal, leases, replaced };
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
        const again = new Map(
          (
            await readAll(
              refs.filter((r) => denied.some((d) => d.name === r.name)),
              signal,
            )
          ).map((r) => [r.name, r]),
        );
        results = results.map((r) => again.get(r.name) ?? r);
      }
      return results;
    },
    /**
     * Revokes the leases of credentials the cache no longer holds (replaced because
     * renewal was refused, max_ttl was near, or the lease was not renewable), so a
     * gateway leaves one live set of credentials per secret behind, not one per
     * replacement. Only after the new value is committed: until then the old one is
     * what is served. Best effort: a revocation that fails for a transient reason is
     * retried after the secret's next successful sync while the lease lives; one
     * Vault refuses (no `update` on sys/leases/revoke) is logged and left to expire.
     */
    async committed(held, signal) {
      const due: [string, Lease][] = [];
      for (const [name, version] of held) {
        const list = replaced.get(name);
        if (!list) continue;
        const kept = list.filter((l) => l.version === version);
        for (const l of list) if (l.version !== version && Date.now() < l.expiresAt) due.push([name, l]);
        if (kept.length > 0) replaced.set(name, kept);
        else replaced.delete(name);
      }
      if (due.length === 0) return;
      try {
        await auth.ensure(signal);
      } catch (e) {
        init.logger.warn(
          { leases: due.length, err: classify(e, "vault").message },
          "could not revoke replaced leases (no token); retrying after the next sync",
        );
        for (const [name, l] of due) replaced.set(name, [...(replaced.get(name) ?? []), l]);
        return;
      }
      await mapPool(due, o.concurrency, async ([name, lease]) => {
        const where = `vault revoke ${leasePath(lease.id)}`;
        try {
          await client.revoke({ lease_id: lease.id, requestOptions: { signal } });
          init.logger.info({ secret: name, lease: leasePath(lease.id) }, "replaced lease revoked");
        } catch (e) {
          const err = classify(e, where);
          const retry = err.kind === "transient" && Date.now() < lease.expiresAt;
          if (retry) replaced.set(name, [...(replaced.get(name) ?? []), lease]);
          init.logger.warn(
            { secret: name, lease: leasePath(lease.id), err: err.message, retry },
            retry ? "could not revoke a replaced lease; retrying after the next sync" : "could not revoke a replaced lease; it ends at its TTL",
          );
        }
      });
    },
    async close() {
      auth.close();
      transport.close();
    },
  };
}
