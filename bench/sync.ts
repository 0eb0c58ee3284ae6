import fs from "node:fs";
import path from "node:path";
import { stringify } from "yaml";
import { FakeAws } from "../test/support/fake-aws.js";
import { FakeVault } from "../test/support/fake-vault.js";
import { removeDir, tempDir } from "./support/cleanup.js";
import { secretName } from "./support/fixture.js";
import { req } from "../test/support/http.js";
import { emit, note } from "./support/report.js";
import { startDaemon, waitSynced, type ServerProcess } from "./support/servers.js";

const SIZES = [1_000, 10_000];

/**
 * Time and backend requests to sync N secrets from the local Vault (KV v2, token
 * auth) and AWS Secrets Manager (SigV4-verifying) test servers: cold (empty cache,
 * first start), warm (POST /v1/refresh with nothing changed) and after a
 * restart (the versions held are read back from the cache, so the first sync
 * after a restart should cost what a warm one does). Request counts come from
 * the servers' own per-operation counters.
 */
export async function syncBench(): Promise<void> {
  for (const n of SIZES) {
    await vaultRun(n);
    await awsRun(n);
  }
}

async function vaultRun(n: number): Promise<void> {
  const fv = await new FakeVault().start();
  const dir = tempDir();
  try {
    const secrets: Record<string, unknown> = {};
    for (let i = 1; i <= n; i++) {
      fv.putKv2(`secret/data/bench/s${i}`, { v: `value-${i}-${"x".repeat(24)}` });
      secrets[secretName(i)] = { provider: "vault", path: `secret/data/bench/s${i}`, key: "v" };
    }
    const tokenFile = path.join(dir, "token");
    fs.writeFileSync(tokenFile, fv.issueToken(0), { mode: 0o600 });
    const providers = { vault: { type: "vault", address: fv.url, auth: { method: "token", token_file: tokenFile } } };
    await measure(
      `vault_${label(n)}`,
      dir,
      providers,
      secrets,
      n,
      () => fv.total(),
      () => fv.resetCounts(),
      () => Object.fromEntries(fv.counts),
      n,
    );
  } finally {
    await fv.stop();
    removeDir(dir);
  }
}

async function awsRun(n: number): Promise<void> {
  const fa = await new FakeAws().start();
  const dir = tempDir();
  try {
    const secrets: Record<string, unknown> = {};
    for (let i = 1; i <= n; i++) {
      fa.putSecret(`bench/s${i}`, `value-${i}-${"x".repeat(24)}`);
      secrets[secretName(i)] = { provider: "sm", path: `bench/s${i}` };
    }
    // The credential chain's shared-file step, with a profile: no environment needed.
    const credFile = path.join(dir, "aws-credentials");
    fs.writeFileSync(credFile, `[bench]\naws_access_key_id = ${fa.accessKeyId}\naws_secret_access_key = ${fa.secretAccessKey}\n`, { mode: 0o600 });
    const providers = { sm: { type: "aws-secrets-manager", region: fa.region, endpoint: fa.url, profile: "bench", credentials_file: credFile } };
    await measure(
      `secretsmanager_${label(n)}`,
      dir,
      providers,
      secrets,
      n,
      () => fa.total(),
      () => fa.resetCounts(),
      () => Object.fromEntries(fa.counts),
      n / 20,
    );
  } finally {
    await fa.stop();
    removeDir(dir);
  }
}

async function measure(
  prefix: string,
  dir: string,
  providers: Record<string, unknown>,
  secrets: Record<string, unknown>,
  n: number,
  total: () => number,
  reset: () => void,
  counts: () => Record<string, number>,
  warmExpected: number,
): Promise<void> {
  const socket = path.join(dir, "s.sock");
  const configFile = path.join(dir, "sealcache.yaml");
  const config = {
    data_dir: path.join(dir, "data"),
    socket,
    seal: { type: "host" },
    sync: { interval: "1h", timeout: "60s" },
    providers,
    secrets,
    log: { level: "warn" },
  };
  fs.writeFileSync(configFile, stringify(config));
  const fx = { dir, configFile, socket, secretsDir: dir, names: [] };
  reset();
  const t0 = performance.now();
  let d: ServerProcess = startDaemon(fx);
  try {
    await waitSynced(d, 600_000);
    const coldS = (performance.now() - t0) / 1000;
    const coldReq = total();
    note(`sync: ${prefix} cold requests ${JSON.stringify(counts())}`);
    emit("sync", `${prefix}_cold_s`, coldS, "s");
    emit("sync", `${prefix}_cold_requests`, coldReq, "requests");
    reset();
    const t1 = performance.now();
    const r = await req(socket, "/v1/refresh", { method: "POST" });
    if (r.status !== 202) throw new Error(`refresh answered ${r.status}: ${r.body}`);
    const lastRequest = await settle(total, warmExpected, 600_000);
    const warmS = (lastRequest - t1) / 1000;
    note(`sync: ${prefix} warm requests ${JSON.stringify(counts())}`);
    emit("sync", `${prefix}_warm_s`, warmS, "s");
    emit("sync", `${prefix}_warm_requests`, total(), "requests");

    await d.stop();
    d = startDaemon(fx);
    await waitSynced(d, 600_000);
    reset();
    const t2 = performance.now();
    const r2 = await req(socket, "/v1/refresh", { method: "POST" });
    if (r2.status !== 202) throw new Error(`refresh answered ${r2.status}: ${r2.body}`);
    const restartLast = await settle(total, warmExpected, 600_000);
    note(`sync: ${prefix} restart requests ${JSON.stringify(counts())}`);
    emit("sync", `${prefix}_restart_s`, (restartLast - t2) / 1000, "s");
    emit("sync", `${prefix}_restart_requests`, total(), "requests");
    void n;
  } finally {
    await d.stop();
  }
}

/**
 * Waits until the backend has seen `expected` requests and then nothing more for
 * 500 ms; returns when the last one arrived.
 */
async function settle(total: () => number, expected: number, timeoutMs: number): Promise<number> {
  const until = performance.now() + timeoutMs;
  let last = -1;
  let stableSince = performance.now();
  for (;;) {
    const now = total();
    if (now !== last) {
      last = now;
      stableSince = performance.now();
    } else if (now >= expected && performance.now() - stableSince >= 500) return stableSince;
    if (performance.now() > until) throw new Error(`warm sync did not finish: ${now} of ${expected} requests`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

function label(n: number): string {
  return n >= 1000 ? `${n / 1000}k` : String(n);
}
