import { OPERATOR } from "../../core/principal.js";
import { daemonAbsent, replyError, request } from "../client.js";
import { socketFor, type GlobalOptions, type Io } from "../context.js";
import { plural } from "../format.js";
import { onCacheDirectly } from "../on-cache.js";

/**
 * `rotate-kek`: a new cache key, every data key re-wrapped in one transaction.
 * With the daemon running it is asked to do it (it owns the open cache); with it
 * stopped the CLI does the same work on the cache directly.
 */
export async function rotateKekCommand(g: GlobalOptions, io: Io): Promise<number> {
  let reply: Awaited<ReturnType<typeof request>> | undefined;
  let unreachable: unknown;
  try {
    reply = await request(socketFor(g), "POST", "/v1/rotate-kek", 120_000);
  } catch (e) {
    if (!daemonAbsent(e)) throw e;
    unreachable = e;
  }
  if (reply) {
    if (reply.status !== 200) throw replyError(reply);
    const j = JSON.parse(reply.body.toString("utf8")) as { rewrapped: number; seal: string };
    io.out(
      g.json
        ? JSON.stringify({ rotated: true, via: "daemon", ...j }) + "\n"
        : `cache key rotated by the daemon: ${plural(j.rewrapped, "data key")} re-wrapped (seal.type ${j.seal})\n`,
    );
    return 0;
  }
  const done = await onCacheDirectly(g, unreachable, { route: "rotate-kek", name: null, okStatus: 200 }, async (core) => {
    if (io.isTTY && !g.json) io.err("re-wrapping every data key under a new cache key...\n");
    return core.rotateKek(OPERATOR);
  });
  io.out(
    g.json
      ? JSON.stringify({ rotated: true, via: "cli", ...done }) + "\n"
      : `cache key rotated: ${plural(done.rewrapped, "data key")} re-wrapped (seal.type ${done.seal})\n`,
  );
  return 0;
}
