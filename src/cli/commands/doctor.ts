import fs from "node:fs";
import path from "node:path";
import type { Config } from "../../config/schema.js";
import { loadSodium } from "../../crypto/sodium.js";
import { CACHE_FILE } from "../../daemon/daemon.js";
import type { Failing } from "../../core/health.js";
import type { MqttState } from "../../mqtt/part.js";
import { describeError, isSealcacheError } from "../../errors.js";
import { octal } from "../../fsutil.js";
import { createLogger } from "../../log.js";
import { everyoneWarnings, Policy } from "../../policy/policy.js";
import { readAccounts } from "../../policy/accounts.js";
import { hasSealedKek, sealedKekPath } from "../../seal/kek.js";
import { assertPrivate } from "../../seal/permissions.js";
import { createSealer } from "../../seal/registry.js";
import { request } from "../client.js";
import { configPath, loadFull, type GlobalOptions, type Io } from "../context.js";
import { failingFooter, failingSecrets } from "../failing.js";
import { plural } from "../format.js";
import { probeBackends } from "./doctor-backends.js";

type Level = "ok" | "warn" | "fail";
interface Check {
  readonly check: string;
  readonly level: Level;
  readonly message: string;
}

/**
 * `doctor`: checks what an operator would check by hand (config, permissions,
 * sealer, socket, backends) without unsealing anything. Exit 1 if any check fails.
 */
export async function doctor(g: GlobalOptions, io: Io): Promise<number> {
  const checks: Check[] = [];
  const add = (check: string, level: Level, message: string) => checks.push({ check, level, message });
  let config: Config | undefined;
  try {
    config = loadFull(g, true).config;
    add("config", "ok", `${configPath(g)} is valid`);
  } catch (e) {
    add("config", "fail", describeError(e));
  }
  if (config) {
    await checkDataDir(config, add);
    await checkSealer(config, add);
    const health = await checkSocket(config, add);
    // A running daemon owns the broker session: doctor reports its view instead of logging in.
    if (config.mqtt) await (await import("./doctor-fleet.js")).checkFleet(config, add, { daemonMqtt: health?.mqtt });
    for (const w of new Policy(config.policy, readAccounts(), process.geteuid?.() ?? 0).warnings) add("policy", "warn", w);
    for (const w of everyoneWarnings(config.policy, readAccounts(), socketGroup(config.socket))) add("policy", "warn", w);
    if (!config.policy) add("policy", "ok", `no policy section: only uid ${process.geteuid?.() ?? 0} (the daemon's own account) may read`);
  }
  if (g.json) io.out(JSON.stringify({ ok: !checks.some((c) => c.level === "fail"), checks }) + "\n");
  else io.out(checks.map((c) => `${c.level.padEnd(4)}  ${c.check}: ${c.message}`).join("\n") + "\n");
  return checks.some((c) => c.level === "fail") ? 1 : 0;
}

type Add = (check: string, level: Level, message: string) => void;

/**
 * The group that may open the socket: the socket's own once the daemon has created
 * it; before that, its folder's (the packaged unit's RuntimeDirectory belongs to
 * the daemon's group, and a 0750 folder admits that group only), so the policy
 * check runs before the first start too.
 */
function socketGroup(socket: string): number | undefined {
  for (const p of [socket, path.dirname(socket)]) {
    try {
      return fs.statSync(p).gid;
    } catch {
      /* not there yet */
    }
  }
  return undefined;
}

async function checkDataDir(c: Config, add: Add): Promise<void> {
  if (!fs.existsSync(c.data_dir)) return add("data_dir", "warn", `${c.data_dir} does not exist yet; the daemon creates it (0700) at first start`);
  try {
    assertPrivate(c.data_dir, "data_dir");
    add("data_dir", "ok", `${c.data_dir} is private (${octal(fs.statSync(c.data_dir).mode)})`);
  } catch (e) {
    add("data_dir", "fail", describeError(e));
  }
  const db = path.join(c.data_dir, CACHE_FILE);
  if (fs.existsSync(db)) {
    const mode = fs.statSync(db).mode;
    add(
      "cache",
      (mode & 0o077) === 0 ? "ok" : "fail",
      `${db} mode ${octal(mode)}${(mode & 0o077) === 0 ? "" : `: open to group or others; run chmod 600 ${db}`}`,
    );
  } else {
    add("cache", "warn", `${db} does not exist yet; it is created at first start`);
  }
  const q = path.join(c.data_dir, "quarantine");
  if (fs.existsSync(q)) {
    const n = fs.readdirSync(q).filter((f) => f.endsWith(".reason.txt")).length;
    if (n > 0) add("cache", "warn", `${plural(n, "quarantined database")} in ${q}; read the .reason.txt files, then delete them`);
  }
}

async function checkSealer(c: Config, add: Add): Promise<void> {
  try {
    const sealer = await createSealer({ dataDir: c.data_dir, seal: c.seal, sodium: await loadSodium(), logger: createLogger({ level: "silent" }) });
    const info = await sealer.describe();
    await sealer.close?.();
    add("seal", info.ok ? "ok" : "fail", `${info.type}: ${info.detail}`);
    for (const w of info.warnings) add("seal", "warn", w);
  } catch (e) {
    add("seal", "fail", describeError(e));
  }
  if (c.seal.type !== "host") {
    try {
      const { openRollbackCounter } = await import("../../seal/rollback.js");
      const counter = openRollbackCounter({ tcti: c.seal.tcti, index: c.seal.counter_index, logger: createLogger({ level: "silent" }) });
      const info = await counter.describe();
      await counter.close();
      add("seal", info.ok ? "ok" : "fail", `anti-rollback counter: ${info.detail}`);
    } catch (e) {
      add("seal", "fail", `anti-rollback counter: ${describeError(e)}`);
    }
    if (fs.existsSync(c.data_dir) && !fs.existsSync(path.join(c.data_dir, "kek.recovery"))) {
      add(
        "seal",
        "warn",
        "no recovery key was made (data_dir/kek.recovery missing): if the TPM stops unsealing, the cache is refetched from the backends, and " +
          "sealcache import'ed secrets are lost",
      );
    }
  }
  if (fs.existsSync(c.data_dir)) {
    add(
      "seal",
      hasSealedKek(c.data_dir) ? "ok" : "warn",
      hasSealedKek(c.data_dir) ? `${sealedKekPath(c.data_dir)} present` : `no sealed cache key yet; sealcache init or the first daemon start creates one`,
    );
  }
}

/**
 * The socket and, through it, the daemon's view of the backends and secrets. With
 * no daemon answering, doctor checks the backends it can itself; before the first
 * start (no cache yet) a missing socket is expected, so a warning, not a failure.
 */
async function checkSocket(c: Config, add: Add): Promise<DoctorHealth | undefined> {
  const dir = path.dirname(c.socket);
  if (fs.existsSync(dir)) {
    const mode = fs.statSync(dir).mode;
    if ((mode & 0o007) !== 0) add("socket", "warn", `${dir} has mode ${octal(mode)}: other accounts can reach the socket folder; 0750 is expected`);
  }
  if (!fs.existsSync(c.socket)) {
    if (!fs.existsSync(path.join(c.data_dir, CACHE_FILE)))
      add(
        "socket",
        "warn",
        `${c.socket} does not exist yet: the daemon has not been started (no cache in ${c.data_dir} yet); start it: systemctl start sealcache`,
      );
    else add("socket", "fail", `${c.socket} does not exist: the daemon is not running (systemctl status sealcache)`);
    await probeBackends(c, add);
    return undefined;
  }
  const mode = fs.statSync(c.socket).mode;
  if ((mode & 0o007) !== 0) add("socket", "fail", `${c.socket} has mode ${octal(mode)}: any account can connect; the daemon sets 0660`);
  let h: DoctorHealth;
  let status: number;
  try {
    const r = await request(c.socket, "GET", "/v1/health", 5_000);
    status = r.status;
    h = JSON.parse(r.body.toString("utf8")) as DoctorHealth;
  } catch (e) {
    add("socket", "fail", describeError(e));
    if (isSealcacheError(e) && e.code === "unavailable" && /ECONNREFUSED|ENOENT/.test(e.message)) await probeBackends(c, add);
    return undefined;
  }
  const level = status !== 200 ? "fail" : h.status === "ok" ? "ok" : "warn";
  add(
    "socket",
    level,
    `daemon answers on ${c.socket}: ${h.status}${h.sealed_reason ? ` (${h.sealed_reason})` : ""}${h.status === "degraded" ? degradedWhy(h) : ""}`,
  );
  for (const p of h.providers ?? []) {
    if (!p.active) continue;
    add(
      "backend",
      p.online ? "ok" : "warn",
      `${p.name}: ${p.online ? "online" : `offline${p.last_error ? ` (${p.last_error})` : " (no successful fetch yet)"}`}`,
    );
  }
  const failing = await failingSecrets({ socket: c.socket }, h.failing);
  if (failing) {
    for (const f of failing.shown) add("secret", "warn", `${f.name} (${f.state}): ${f.error}`);
    for (const line of failingFooter(failing)) add("secret", "warn", line);
  }
  return h;
}

interface DoctorHealth {
  status: string;
  sealed_reason?: string;
  secrets?: { stale: number; expired: number; not_synced: number; errors: number };
  failing?: Failing;
  providers?: { name: string; active: boolean; online: boolean; last_error: string | null }[];
  quarantined?: unknown[];
  store?: { writable: boolean; reason: string | null };
  mqtt?: MqttState;
}

/** What makes a serving daemon degraded, in a few words. */
function degradedWhy(h: DoctorHealth): string {
  const s = h.secrets;
  const parts: string[] = [];
  const offline = (h.providers ?? []).filter((p) => p.active && !p.online).length;
  if (offline > 0) parts.push(`${plural(offline, "provider")} offline`);
  if (s?.errors) parts.push(`${plural(s.errors, "secret")} failing`);
  if (s?.stale) parts.push(`${s.stale} stale`);
  if (s?.expired) parts.push(`${s.expired} expired`);
  if (s?.not_synced) parts.push(`${s.not_synced} not synced`);
  if (h.quarantined?.length) parts.push(`${plural(h.quarantined.length, "database")} quarantined`);
  if (h.store && !h.store.writable) parts.push(`${h.store.reason}: not recording new values`);
  return parts.length > 0 ? ` (${parts.join(", ")})` : "";
}
