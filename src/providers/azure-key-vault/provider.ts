import { SecretClient } from "@azure/keyvault-secrets";
import { mapPool } from "../pool.js";
import { ProviderError, type FetchResult, type Provider, type ProviderInit, type SecretRef } from "../provider.js";
import { buildCredential, describeAuth, type Options } from "./credential.js";
import { Exchanges } from "./errors.js";
import { AgentHttpClient } from "./http.js";
import { routeSdkLogs } from "./sdk-log.js";
import { UNAUTHORIZED, answeredLocally, readKey, readSecret, type Read, type ReadContext } from "./secrets.js";

/** Key Vault's own DNS suffixes: the SDK checks a challenge against them itself. */
const VAULT_SUFFIXES = [".vault.azure.net", ".vault.usgovcloudapi.net", ".vault.azure.cn", ".vault.microsoftazure.de", ".managedhsm.azure.net"];

const refused = (rs: readonly Read[]) => rs.some((x) => x.kind === UNAUTHORIZED);

interface Session {
  readonly client: SecretClient;
  /** A read answered with this client's token: the challenge is done. */
  warmed: boolean;
  /** The read that answers the challenge, while it is in flight. */
  warming: Promise<void> | undefined;
}

/**
 * Azure Key Vault through @azure/keyvault-secrets and @azure/identity: one
 * `GET /secrets/{name}/{version}` per Key Vault secret and refresh (Key Vault
 * has no batch read and no cheaper version check), compared with the version the
 * cache holds so an unchanged secret is not written again; a pinned version
 * already held costs no call. The SDK answers Key Vault's bearer challenge itself; a 401 on a
 * token it already had leads to one new credential (files read again) and one
 * retry. SDK retries are off: the engine's backoff does the retrying.
 */
export function create(init: ProviderInit<Options>): Provider {
  const o = init.options;
  const vault = new URL(o.vault_url);
  const exchanges = new Exchanges(vault.host);
  const http = new AgentHttpClient({ caFile: o.tls?.ca_file, observe: (q, r, e) => exchanges.observe(q, r, e) });
  const azureHost = VAULT_SUFFIXES.some((s) => vault.hostname.toLowerCase().endsWith(s));
  routeSdkLogs(init.logger);
  let session: Session | undefined;

  function open(): Session {
    if (session) return session;
    const credential = buildCredential(o, http, exchanges);
    const client = new SecretClient(vault.origin, credential, {
      httpClient: http,
      retryOptions: { maxRetries: 0 },
      // Outside Key Vault's own domains (a sovereign or private DNS name, a test
      // server) the SDK's check of the challenge against the host cannot pass; the
      // credential then refuses any resource but Key Vault's (credential.ts).
      disableChallengeResourceVerification: !azureHost,
    });
    session = { client, warmed: false, warming: undefined };
    init.logger.debug({ auth: describeAuth(o.auth), vault: vault.origin }, "azure key vault client created");
    return session;
  }

  /**
   * Secrets naming the same Key Vault secret are read with one GET (several keys
   * of one JSON secret cost one read). One read first: it answers the challenge
   * and gets the token once, and if the vault is down or throttling the batch
   * costs one request, not `concurrency`. Key Vault refusing a token the SDK still
   * held (revoked, the identity's access removed, a rotated secret) leads to a
   * fresh credential and one more try.
   */
  async function readAll(refs: readonly SecretRef[], signal: AbortSignal): Promise<FetchResult[]> {
    const out: (Read | undefined)[] = refs.map(answeredLocally);
    const groups = new Map<string, number[]>();
    refs.forEach((ref, i) => {
      if (out[i] === undefined) groups.set(readKey(ref), [...(groups.get(readKey(ref)) ?? []), i]);
    });
    const todo = [...groups.values()];
    const read = (ctx: ReadContext, g: number[]) =>
      readSecret(
        ctx,
        g.map((i) => refs[i]!),
      );
    const put = (g: number[], rs: Read[]) => {
      for (const [j, i] of g.entries()) out[i] = rs[j];
    };
    if (todo.length > 0) {
      let first = await firstRead(
        open(),
        todo[0]!.map((i) => refs[i]!),
        signal,
      );
      if (refused(first)) {
        renew();
        first = await firstRead(
          open(),
          todo[0]!.map((i) => refs[i]!),
          signal,
        );
        for (const x of first) if (x.kind === UNAUTHORIZED) throw x.error;
      }
      put(todo[0]!, first);
      const rest = todo.slice(1);
      const ctx: ReadContext = { client: open().client, signal };
      let results = await mapPool(rest, o.concurrency, (g) => read(ctx, g));
      if (results.some(refused)) {
        renew();
        const again: ReadContext = { client: open().client, signal };
        results = await mapPool(rest, o.concurrency, async (g, k) => (refused(results[k]!) ? read(again, g) : results[k]!));
        for (const x of results.flat()) if (x.kind === UNAUTHORIZED) throw x.error;
      }
      for (const [k, g] of rest.entries()) put(g, results[k]!);
    }
    return out.map((x): FetchResult => {
      const r = x!;
      return r.kind === UNAUTHORIZED ? { name: r.name, ok: false, error: r.error } : r.result;
    });
  }

  /**
   * Batches running at once (the engine runs several) share one challenge and one
   * token request: until a read of this client has been answered, a batch's first
   * read waits for the one in flight.
   */
  async function firstRead(s: Session, group: readonly SecretRef[], signal: AbortSignal): Promise<Read[]> {
    while (!s.warmed && s.warming) await s.warming;
    const p = readSecret({ client: s.client, signal }, group);
    if (!s.warmed) {
      s.warming = p
        .then(
          (r) => void (s.warmed ||= !refused(r)),
          () => undefined,
        )
        .finally(() => (s.warming = undefined));
    }
    return p;
  }

  function renew(): void {
    init.logger.info({ auth: describeAuth(o.auth) }, "key vault refused the access token; getting a new one");
    session = undefined;
  }

  return {
    maxBatch: 100,
    backend: JSON.stringify([vault.origin, o.auth.method, "tenant_id" in o.auth ? o.auth.tenant_id : null, o.auth.client_id ?? null]),
    async fetch(refs, signal) {
      try {
        return await readAll(refs, signal);
      } catch (e) {
        // A refused credential is built again (its files read again) on the next fetch.
        if (e instanceof ProviderError && e.kind === "auth") session = undefined;
        throw e;
      }
    },
    async close() {
      session = undefined;
      http.close();
    },
  };
}
