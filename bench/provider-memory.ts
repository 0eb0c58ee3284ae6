import fs from "node:fs";
import path from "node:path";
import { stringify } from "yaml";
import { FakeAws } from "../test/support/fake-aws.js";
import { FakeAzure } from "../test/support/fake-azure.js";
import { FakeGcp } from "../test/support/fake-gcp.js";
import { makeCerts } from "../test/support/certs.js";
import { FakeVault } from "../test/support/fake-vault.js";
import { removeDir, tempDir } from "./support/cleanup.js";
import { secretPath, sleep } from "./support/http.js";
import { readMemory } from "./support/procfs.js";
import { emit, note } from "./support/report.js";
import { startDaemon, waitServing } from "./support/servers.js";
import { median } from "./support/stats.js";

const RUNS = 5;
const NAME = "bench/one";
const SETTLE_MS = 1_000;

/** One backend's local server and the provider block that reads one secret from it. */
interface Backend {
  readonly provider: Record<string, unknown>;
  readonly path: string;
  readonly env?: NodeJS.ProcessEnv;
  stop(): Promise<void>;
}

/**
 * Provider types measured one secret each. Adding a type is one entry: a local
 * server from test/support and the provider block for it.
 */
export const PROVIDER_CASES: Record<string, (dir: string) => Promise<Backend>> = {
  file: async (dir) => {
    fs.mkdirSync(path.join(dir, "secrets"));
    fs.writeFileSync(path.join(dir, "secrets/one"), "value-one");
    return { provider: { type: "file", dir: path.join(dir, "secrets") }, path: "one", stop: async () => {} };
  },
  vault: async (dir) => {
    const fv = await new FakeVault().start();
    fv.putKv2("secret/data/bench/one", { v: "value-one" });
    const tokenFile = path.join(dir, "token");
    fs.writeFileSync(tokenFile, fv.issueToken(0), { mode: 0o600 });
    return {
      provider: { type: "vault", address: fv.url, auth: { method: "token", token_file: tokenFile } },
      path: "secret/data/bench/one",
      stop: () => fv.stop(),
    };
  },
  "aws-secrets-manager": async () => {
    const fa = await new FakeAws().start();
    fa.putSecret("bench/one", "value-one");
    return { provider: { type: "aws-secrets-manager", region: fa.region, endpoint: fa.url }, path: "bench/one", env: fa.env(), stop: () => fa.stop() };
  },
  "gcp-secret-manager": async (dir) => {
    const certs = makeCerts(path.join(dir, "certs"));
    const gcp = await new FakeGcp({ key: fs.readFileSync(certs.serverKey), cert: fs.readFileSync(certs.serverCert) }).start();
    gcp.addVersion("one", "value-one");
    const provider = {
      type: "gcp-secret-manager",
      endpoint: gcp.endpoint,
      tls: { ca_file: certs.caFile, server_name: "localhost" },
      credentials_file: gcp.writeServiceAccount(dir),
    };
    return { provider, path: `projects/${gcp.project}/secrets/one`, stop: () => gcp.stop() };
  },
  "azure-key-vault": async (dir) => {
    const az = await new FakeAzure(path.join(dir, "azure")).start();
    az.vault.putSecret("bench-one", "value-one");
    const app = az.entra.addSecretApp();
    const secretFile = path.join(dir, "client-secret");
    fs.writeFileSync(secretFile, app.secret, { mode: 0o600 });
    const auth = { method: "client_secret", tenant_id: az.entra.tenant, client_id: app.clientId, client_secret_file: secretFile, authority_host: az.entra.url };
    return {
      provider: { type: "azure-key-vault", vault_url: az.vault.url, tls: { ca_file: az.certs.caFile }, auth },
      path: "bench-one",
      stop: () => az.stop(),
    };
  },
};

/**
 * What each provider type adds to the daemon: a daemon holding one secret of that
 * type, started on an empty cache. `start_ms`: spawn until /v1/health answers
 * (the provider's chunk and SDK are loaded before the socket opens); `served_ms`:
 * spawn until the secret is served (adds authenticating and the first fetch);
 * idle RSS one second later. Median of RUNS fresh starts per type; the `file`
 * case is the floor the others are compared with.
 */
export async function providerMemory(): Promise<void> {
  const types = Object.keys(PROVIDER_CASES);
  const runs = new Map<string, Run[]>(types.map((t) => [t, []]));
  // Round-robin, so a load change on the box shifts every type alike.
  for (let i = 0; i < RUNS; i++) for (const type of types) runs.get(type)!.push(await oneRun(PROVIDER_CASES[type]!));
  const base = { startMs: NaN, rssMb: NaN };
  for (const type of types) {
    const col = (k: keyof Run) => runs.get(type)!.map((r) => r[k]);
    note(
      `memory: ${type}: start ${col("startMs")
        .map((v) => v.toFixed(0))
        .join(", ")} ms; served ${col("servedMs")
        .map((v) => v.toFixed(0))
        .join(", ")} ms; idle RSS ${col("rssMb")
        .map((v) => v.toFixed(1))
        .join(", ")} MB`,
    );
    const startMs = emit("memory", `one_secret_start_ms_${type}`, median(col("startMs")), "ms");
    emit("memory", `one_secret_served_ms_${type}`, median(col("servedMs")), "ms");
    const rssMb = emit("memory", `one_secret_rss_mb_idle_${type}`, median(col("rssMb")), "MB");
    emit("memory", `one_secret_rss_mb_peak_${type}`, median(col("peakMb")), "MB");
    if (type === "file") Object.assign(base, { startMs, rssMb });
    else {
      emit("memory", `one_secret_rss_mb_over_file_${type}`, rssMb - base.rssMb, "MB");
      emit("memory", `one_secret_start_ms_over_file_${type}`, startMs - base.startMs, "ms");
    }
  }
}

interface Run {
  readonly startMs: number;
  readonly servedMs: number;
  readonly rssMb: number;
  readonly peakMb: number;
}

async function oneRun(setup: (dir: string) => Promise<Backend>): Promise<Run> {
  const dir = tempDir();
  const backend = await setup(dir);
  try {
    const socket = path.join(dir, "s.sock");
    const configFile = path.join(dir, "sealcache.yaml");
    const config = {
      data_dir: path.join(dir, "data"),
      socket,
      seal: { type: "host" },
      sync: { interval: "1h" },
      providers: { p: backend.provider },
      secrets: { [NAME]: { provider: "p", path: backend.path } },
      log: { level: "warn" },
    };
    fs.writeFileSync(configFile, stringify(config));
    const t0 = performance.now();
    const d = startDaemon({ configFile, socket }, backend.env);
    try {
      await waitServing(d, "/v1/health", { pollMs: 2, timeoutMs: 30_000 });
      const startMs = performance.now() - t0;
      await waitServing(d, secretPath(NAME), { pollMs: 2, timeoutMs: 30_000 });
      const servedMs = performance.now() - t0;
      await sleep(SETTLE_MS);
      const m = readMemory(d.pid);
      return { startMs, servedMs, rssMb: m.rssMb, peakMb: m.hwmMb };
    } finally {
      await d.stop();
    }
  } finally {
    await backend.stop();
    removeDir(dir);
  }
}
