import path from "node:path";
import { Envelope } from "../../crypto/envelope.js";
import { loadSodium } from "../../crypto/sodium.js";
import { rotateKek } from "../../daemon/rotate.js";
import { checkAntiRollback } from "../../daemon/anti-rollback.js";
import { CACHE_FILE, obtainKek } from "../../daemon/unlock.js";
import { SealcacheError } from "../../errors.js";
import { createLogger } from "../../log.js";
import { createSealer } from "../../seal/registry.js";
import { SecretStore } from "../../store/store.js";
import { replyError, request } from "../client.js";
import { lockDataDir } from "../../daemon/data-dir-lock.js";
import { ensurePrivateDir } from "../../seal/permissions.js";
import { loadFull, type GlobalOptions, type Io } from "../context.js";
import { plural } from "../format.js";

/**
 * `rotate-kek`: a new cache key, every data key re-wrapped in one transaction.
 * With the daemon running it is asked to do it (it owns the open cache); with it
 * stopped the CLI does the same work on the cache directly.
 */
export async function rotateKekCommand(g: GlobalOptions, io: Io): Promise<number> {
  const { config } = loadFull(g, true);
  let reply;
  try {
    reply = await request(config.socket, "POST", "/v1/rotate-kek", 120_000);
  } catch (e) {
    if (!(e instanceof SealcacheError) || e.code !== "unavailable" || !/ENOENT|ECONNREFUSED/.test(e.message)) throw e;
  }
  if (reply) {
    if (reply.status !== 200) throw replyError(reply);
    const j = JSON.parse(reply.body.toString("utf8")) as { rewrapped: number; seal: string };
    io.out(g.json ? JSON.stringify({ rotated: true, via: "daemon", ...j }) + "\n" : `cache key rotated by the daemon: ${plural(j.rewrapped, "data key")} re-wrapped (seal.type ${j.seal})\n`);
    return 0;
  }
  const logger = createLogger({ level: "silent" });
  ensurePrivateDir(config.data_dir);
  // A daemon starting up (its socket not answering yet) or another offline command holds it: refused, naming the pid.
  const lock = lockDataDir(config.data_dir, "rotate-kek");
  const sodium = await loadSodium();
  const sealer = await createSealer({ dataDir: config.data_dir, seal: config.seal, sodium, logger });
  try {
    const envelope = new Envelope(sodium, await obtainKek(sodium, sealer, config.data_dir, logger));
    const store = new SecretStore({ file: path.join(config.data_dir, CACHE_FILE), envelope, logger });
    try {
      const counter = await checkAntiRollback({ seal: config.seal, store, dataDir: config.data_dir, logger });
      const n = [...store.metas()].length;
      if (io.isTTY && !g.json) io.err(`re-wrapping ${plural(n, "data key")} under a new cache key...\n`);
      const next = await rotateKek({ sodium, sealer, dataDir: config.data_dir, store, logger, counter });
      next.destroy();
      envelope.destroy();
      io.out(g.json ? JSON.stringify({ rotated: true, via: "cli", rewrapped: n, seal: sealer.type }) + "\n" : `cache key rotated: ${plural(n, "data key")} re-wrapped (seal.type ${sealer.type})\n`);
      return 0;
    } finally {
      store.close();
    }
  } finally {
    await sealer.close?.();
    lock.release();
  }
}
