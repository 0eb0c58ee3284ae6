import fs from "node:fs/promises";
import https from "node:https";
import tls from "node:tls";
import type { z } from "zod";
import { valueResult } from "../extract.js";
import { mapPool } from "../pool.js";
import { ProviderError, unchanged, type FetchResult, type Provider, type ProviderInit, type SecretRef } from "../provider.js";
import { Channel, openClient, splitEndpoint, type Conn } from "./client.js";
import { crc32c } from "./crc32c.js";
import { GcpCredentials } from "./credentials.js";
import { classifyGrpc } from "./errors.js";
import { answered, targetOf, type Target } from "./names.js";
import type { gcpSecretManagerSchema } from "./schema.js";

type Options = z.output<ReturnType<typeof gcpSecretManagerSchema>>;

/** Secret Manager payloads are at most 64 KiB; anything larger is not an answer to use. */
const MAX_PAYLOAD = 64 * 1024;

interface AccessResponse {
  name?: unknown;
  payload?: { data?: unknown; dataCrc32c?: unknown } | null;
}

/**
 * GCP Secret Manager through the official SDK over gRPC. Each secret is one
 * AccessSecretVersion (the cheap quota: 90,000 a minute per project, against
 * 600 for metadata reads such as GetSecretVersion), so a refresh costs one call
 * per secret whether or not it changed: the answer's version name is compared
 * with the one cached, and an unchanged version is reported as such (the cache
 * then skips the write). A pinned version number already cached costs no call:
 * versions are immutable. The payload's CRC-32C is checked before anything is
 * kept. Secret Manager has no batch read: a batch is one call to learn whether
 * the backend answers at all, then at most `concurrency` calls in flight.
 */
export function create(init: ProviderInit<Options>): Provider {
  const o = init.options;
  const custom = o.endpoint !== undefined && splitEndpoint(o.endpoint).host !== "secretmanager.googleapis.com";
  let setup: Promise<{ channel: Channel; credentials: GcpCredentials }> | undefined;
  let closed = false;

  /** tls.ca_file is read, and the credentials and channel made, at the first fetch, not at create. */
  function prepare(): Promise<{ channel: Channel; credentials: GcpCredentials }> {
    setup ??= (async () => {
      const ca = o.tls?.ca_file !== undefined ? await readCa(o.tls.ca_file) : undefined;
      const agent = new https.Agent({ keepAlive: true, maxSockets: 4, ...(ca ? { ca: [...tls.rootCertificates, ca.toString("utf8")] } : {}) });
      const credentials = new GcpCredentials({ credentialsFile: o.credentials_file, customEndpoint: custom, agent });
      const channel = new Channel(() => openClient({ endpoint: o.endpoint, ca, serverName: o.tls?.server_name, credentials, logger: init.logger }));
      return { channel, credentials };
    })().catch((e: unknown) => {
      setup = undefined;
      throw e;
    });
    return setup;
  }

  async function access(channel: Channel, conn: Conn, credentials: GcpCredentials, ref: SecretRef, signal: AbortSignal): Promise<FetchResult> {
    const t = targetOf(ref, o.project);
    if (typeof t === "string") return failed(ref, new ProviderError("permanent", `gcp ${ref.path}: ${t}`));
    const where = `gcp ${t.name}`;
    // A version number never changes once it exists: held is held.
    if (t.pinned !== undefined && ref.cachedVersion !== undefined) {
      const held = answered(ref.cachedVersion);
      if (held && held.secretId === t.secretId && held.number === t.pinned) return unchanged(ref.name, ref.cachedVersion);
    }
    if (signal.aborted) throw new ProviderError("transient", `${where}: abandoned (sync.timeout or shutdown)`);
    let r: AccessResponse;
    try {
      r = await channel.access<AccessResponse>(conn, t.name, signal);
    } catch (e) {
      const c =
        signal.aborted || closed
          ? { scope: "provider" as const, error: new ProviderError("transient", `${where}: abandoned (sync.timeout or shutdown)`), reconnect: true }
          : classifyGrpc(e, where, credentials.what);
      if (c.scope === "secret") return failed(ref, c.error);
      if (c.reconnect) channel.retire(conn);
      if (c.error.kind === "auth") credentials.invalidate();
      throw c.error;
    }
    return resultOf(ref, t, r, where);
  }

  return {
    maxBatch: 100,
    backend: JSON.stringify([o.endpoint ?? "secretmanager.googleapis.com:443", o.project ?? null]),
    async fetch(refs, signal) {
      if (closed) throw new ProviderError("transient", "gcp provider closed");
      if (refs.length === 0) return [];
      const { channel, credentials } = await prepare();
      // A token (or a signed JWT) before any call: when the credentials cannot be had, that is one error, not one per secret.
      await credentials.headers(signal);
      return channel.use(async (conn) => {
        // One call first: if Secret Manager is down or throttling, the batch costs one request, not `concurrency` of them.
        const first = await access(channel, conn, credentials, refs[0]!, signal);
        return [first, ...(await mapPool(refs.slice(1), o.concurrency, (ref) => access(channel, conn, credentials, ref, signal)))];
      });
    },
    async close() {
      closed = true;
      const s = setup;
      setup = undefined;
      if (s) await s.then(({ channel }) => channel.close()).catch(() => undefined);
    },
  };
}

/** The answer, checked: the version it names, the payload's size and CRC-32C. Nothing unchecked is returned. */
function resultOf(ref: SecretRef, t: Target, r: AccessResponse, where: string): FetchResult {
  const got = answered(r?.name);
  if (!got || got.secretId !== t.secretId)
    return failed(ref, new ProviderError("transient", `${where}: the answer does not name a version of this secret; rejected`));
  if (t.pinned !== undefined && got.number !== t.pinned)
    return failed(ref, new ProviderError("transient", `${where}: the answer names version ${got.number}, not the pinned ${t.pinned}; rejected`));
  const data = r.payload?.data;
  if (!(data instanceof Uint8Array)) return failed(ref, new ProviderError("transient", `${where}: the answer has no payload; rejected`));
  const bytes = Uint8Array.from(data);
  data.fill(0);
  if (bytes.length > MAX_PAYLOAD) {
    bytes.fill(0);
    return failed(ref, new ProviderError("transient", `${where}: payload larger than ${MAX_PAYLOAD} bytes; rejected`));
  }
  const declared = crcOf(r.payload?.dataCrc32c);
  // Versions added without a checksum (older ones) carry none; every other answer must match it.
  if (declared !== undefined && declared !== crc32c(bytes)) {
    bytes.fill(0);
    return failed(ref, new ProviderError("transient", `${where}: payload CRC-32C does not match data_crc32c (corrupted in transit); rejected, not stored`));
  }
  const version = r.name as string;
  if (ref.cachedVersion === version) {
    bytes.fill(0);
    return unchanged(ref.name, version);
  }
  return valueResult(ref, bytes, version, where);
}

/** data_crc32c is an optional int64: absent, a number, a decimal string or a Long, depending on the decoder. */
function crcOf(v: unknown): number | undefined {
  if (v === null || v === undefined) return undefined;
  const n = Number(typeof v === "object" ? String(v) : v);
  return Number.isSafeInteger(n) && n >= 0 ? n : -1;
}

async function readCa(file: string): Promise<Buffer> {
  try {
    return await fs.readFile(file);
  } catch (e) {
    throw new ProviderError("auth", `gcp tls.ca_file ${file} cannot be read (${(e as NodeJS.ErrnoException).code ?? "error"})`);
  }
}

function failed(ref: SecretRef, error: ProviderError): FetchResult {
  return { name: ref.name, ok: false, error };
}
