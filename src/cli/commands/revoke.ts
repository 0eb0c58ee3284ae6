import { OPERATOR } from "../../core/principal.js";
import { withOfflineCore } from "../../daemon/offline.js";
import { createLogger } from "../../log.js";
import { daemonAbsent, replyError, request } from "../client.js";
import { loadFull, socketFor, type GlobalOptions, type Io } from "../context.js";
import { UsageError } from "../exit.js";
import { plural } from "../format.js";

/**
 * `revoke NAME|--all`: crypto-shreds (see Core.revoke), through the daemon when it
 * runs, on the cache directly (as the local operator) when it is stopped.
 */
export async function revoke(g: GlobalOptions, args: string[], flags: { all: boolean }, io: Io): Promise<number> {
  if (flags.all === args.length > 0) throw new UsageError("revoke takes a secret name or --all: sealcache revoke NAME|--all");
  // As import: the socket as every client command finds it; the full config only offline.
  const target = socketFor(g);
  const q = flags.all ? "?all=true" : `?name=${encodeURIComponent(args[0]!)}`;
  let revoked: string[];
  let via = "daemon";
  try {
    const r = await request(target, "POST", `/v1/revoke${q}`, 120_000);
    if (r.status !== 200) throw replyError(r);
    revoked = (JSON.parse(r.body.toString("utf8")) as { revoked: string[] }).revoked;
  } catch (e) {
    if (!daemonAbsent(e)) throw e;
    via = "cli";
    const { config } = loadFull(g, true);
    const logger = createLogger({ level: "silent" });
    revoked = await withOfflineCore({ config, logger, what: "revoke" }, async (core) => {
      const r = await core.revoke(OPERATOR, flags.all ? "all" : [args[0]!]);
      core.record(OPERATOR, { route: "revoke", name: flags.all ? null : args[0]!, status: 200, code: "ok" });
      return r.revoked;
    });
  }
  if (g.json) io.out(`${JSON.stringify({ revoked, via })}\n`);
  else io.out(`revoked ${plural(revoked.length, "secret")}${flags.all ? " and rotated the cache key" : ""}${revoked.length > 0 && revoked.length <= 20 ? `: ${revoked.join(", ")}` : ""}\n`);
  return 0;
}
