import { OPERATOR } from "../../core/principal.js";
import { withOfflineCore } from "../../daemon/offline.js";
import { createLogger } from "../../log.js";
import { daemonAbsent, replyError, request } from "../client.js";
import { loadFull, type GlobalOptions, type Io } from "../context.js";
import { plural } from "../format.js";

/**
 * `rotate-kek`: a new cache key, every data key re-wrapped in one transaction.
 * With the daemon running it is asked to do it (it owns the open cache); with it
 * stopped the CLI does the same work on the cache directly.
 */
export async function rotateKekCommand(g: GlobalOptions, io: Io): Promise<number> {
  const { config } = loadFull(g, true);
  let reply: Awaited<ReturnType<typeof request>> | undefined;
  try {
    reply = await request(config.socket, "POST", "/v1/rotate-kek", 120_000);
  } catch (e) {
    if (!daemonAbsent(e)) throw e;
  }
  if (reply) {
    if (reply.status !== 200) throw replyError(reply);
    const j = JSON.parse(reply.body.toString("utf8")) as { rewrapped: number; seal: string };
    io.out(g.json ? JSON.stringify({ rotated: true, via: "daemon", ...j }) + "\n" : `cache key rotated by the daemon: ${plural(j.rewrapped, "data key")} re-wrapped (seal.type ${j.seal})\n`);
    return 0;
  }
  const logger = createLogger({ level: "silent" });
  const done = await withOfflineCore({ config, logger, what: "rotate-kek" }, async (core) => {
    if (io.isTTY && !g.json) io.err("re-wrapping every data key under a new cache key...\n");
    const r = await core.rotateKek(OPERATOR);
    core.record(OPERATOR, { route: "rotate-kek", name: null, status: 200, code: "ok" });
    return r;
  });
  io.out(g.json ? JSON.stringify({ rotated: true, via: "cli", ...done }) + "\n" : `cache key rotated: ${plural(done.rewrapped, "data key")} re-wrapped (seal.type ${done.seal})\n`);
  return 0;
}
