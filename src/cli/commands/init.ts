import { loadSodium } from "../../crypto/sodium.js";
import { isSealcacheError, isSealError, SealError } from "../../errors.js";
import { createLogger } from "../../log.js";
import type { Config } from "../../config/schema.js";
import fs from "node:fs";
import { createKek, loadKek, sealedKekPath } from "../../seal/kek.js";
import { createRecovery, openRecovery } from "../../seal/recovery.js";
import { resealKek } from "../../seal/reseal.js";
import { ensurePrivateDir } from "../../seal/permissions.js";
import { createSealer } from "../../seal/registry.js";
import { request } from "../client.js";
import { loadFull, type GlobalOptions, type Io } from "../context.js";
import { EXIT, UsageError } from "../exit.js";

/**
 * `init`: create data_dir and seal a new cache key. Refuses if one exists.
 * A refusal here is a failure of the command (exit 1), not an unavailable daemon (5),
 * so seal errors are reported as such rather than by their `sealed` code.
 */
export async function init(g: GlobalOptions, flags: { reseal: boolean; recoveryKeyFile: string | undefined }, io: Io): Promise<number> {
  const { config } = loadFull(g, true);
  if (flags.recoveryKeyFile && !flags.reseal) throw new UsageError("--recovery-key-file goes with --reseal");
  try {
    return flags.reseal ? await reseal(config, g, flags.recoveryKeyFile, io) : await initialise(config, g, io);
  } catch (e) {
    if (!isSealError(e)) throw e;
    const message = `init: ${e.message}`;
    io.err(g.json ? JSON.stringify({ error: e.code, message }) + "\n" : `sealcache: ${message}\n`);
    return EXIT.failure;
  }
}

/** What the daemon on the config's socket is doing: not there, serving (unsealed), or waiting to unseal. */
async function daemonState(socket: string): Promise<"absent" | "serving" | "sealed"> {
  try {
    const r = await request(socket, "GET", "/v1/health", 5_000);
    return r.status === 503 && (JSON.parse(r.body.toString("utf8")) as { sealed?: boolean }).sealed === true ? "sealed" : "serving";
  } catch (e) {
    if (isSealcacheError(e) && e.code === "unavailable" && /ENOENT|ECONNREFUSED/.test(e.message)) return "absent";
    throw e;
  }
}

async function initialise(config: Config, g: GlobalOptions, io: Io): Promise<number> {
  const sodium = await loadSodium();
  const sealer = await createSealer({ dataDir: config.data_dir, seal: config.seal, sodium, logger: createLogger({ level: "silent" }) });
  ensurePrivateDir(config.data_dir);
  const kek = await createKek(sealer, config.data_dir);
  let recoveryKey: string | undefined;
  try {
    // A TPM-sealed key is lost with the TPM's state (new board, changed PCRs); the
    // recovery key is the way back. The host sealer's key file is its own backup.
    if (sealer.type !== "host") recoveryKey = await createRecovery(sodium, config.data_dir, kek);
  } finally {
    sodium.memzero(kek);
  }
  const info = await sealer.describe();
  await sealer.close?.();
  if (g.json) {
    io.out(
      JSON.stringify({
        initialized: true,
        data_dir: config.data_dir,
        sealed_key: sealedKekPath(config.data_dir),
        seal: info.type,
        recovery_key: recoveryKey ?? null,
        warnings: info.warnings,
      }) + "\n",
    );
  } else {
    io.out(`sealed a new cache key in ${sealedKekPath(config.data_dir)} (seal.type ${info.type})\n`);
    if (recoveryKey) {
      io.out(
        `\nRECOVERY KEY (shown once; keep it off this device):\n\n    ${recoveryKey}\n\n` +
          `It reopens the cache when the TPM no longer unseals it (firmware update, changed PCRs):\n` +
          `    sealcache init --reseal --recovery-key-file FILE\n`,
      );
    }
    for (const w of info.warnings) io.err(`WARNING: ${w}\n`);
  }
  return 0;
}

/**
 * `init --reseal`: seals the existing KEK again to the TPM's current state, after
 * an intended change. The KEK comes from the old seal if it still opens, or from
 * the recovery key.
 */
async function reseal(config: Config, g: GlobalOptions, recoveryKeyFile: string | undefined, io: Io): Promise<number> {
  // A daemon holding the key unsealed may rewrite kek.sealed itself (rotate-kek):
  // two writers could leave a key the data keys are not wrapped under. One waiting
  // to unseal is the usual case (a firmware update changed the PCRs): it picks up
  // the new seal at its next attempt.
  const state = await daemonState(config.socket);
  if (state === "serving") {
    throw new SealError(
      `the daemon on ${config.socket} is running with the cache key unsealed, and kek.sealed must not change under it; ` +
        `stop it first (systemctl stop sealcache), run sealcache init --reseal again, then start it (systemctl start sealcache)`,
    );
  }
  const sodium = await loadSodium();
  const sealer = await createSealer({ dataDir: config.data_dir, seal: config.seal, sodium, logger: createLogger({ level: "silent" }) });
  try {
    let kek: Uint8Array;
    if (recoveryKeyFile) {
      let text: string;
      try {
        text = fs.readFileSync(recoveryKeyFile, "utf8");
      } catch (e) {
        throw new UsageError(`cannot read --recovery-key-file ${recoveryKeyFile} (${(e as NodeJS.ErrnoException).code ?? "error"})`);
      }
      kek = await openRecovery(config.data_dir, text.trim(), sodium);
    } else {
      kek = await loadKek(sealer, config.data_dir);
    }
    try {
      await resealKek(sealer, config.data_dir, kek);
    } finally {
      sodium.memzero(kek);
    }
    const info = await sealer.describe();
    const waiting =
      state === "sealed"
        ? `the daemon on ${config.socket} is waiting to unseal; it tries again on its own (at most 5 min apart), or restart it to use the new seal ` +
          `now: systemctl restart sealcache`
        : undefined;
    if (g.json)
      io.out(
        JSON.stringify({
          resealed: true,
          sealed_key: sealedKekPath(config.data_dir),
          seal: info.type,
          detail: info.detail,
          daemon: state === "sealed" ? "waiting to unseal" : "not running",
        }) + "\n",
      );
    else
      io.out(
        `resealed the cache key in ${sealedKekPath(config.data_dir)} to the current state (seal.type ${info.type}: ` +
          `${info.detail})\n${waiting ? `${waiting}\n` : ""}`,
      );
    return 0;
  } finally {
    await sealer.close?.();
  }
}
