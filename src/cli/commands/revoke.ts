import { OPERATOR } from "../../core/principal.js";
import { daemonAbsent, replyError, request } from "../client.js";
import { socketFor, type GlobalOptions, type Io } from "../context.js";
import { UsageError } from "../exit.js";
import { plural } from "../format.js";
import { onCacheDirectly } from "../on-cache.js";

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
    const name = flags.all ? null : args[0]!;
    revoked = await onCacheDirectly(
      g,
      e,
      { route: "revoke", name, okStatus: 200 },
      async (core) => (await core.revoke(OPERATOR, flags.all ? "all" : [args[0]!])).revoked,
    );
  }
  if (g.json) io.out(`${JSON.stringify({ revoked, via })}\n`);
  else
    io.out(
      `revoked ${plural(revoked.length, "secret")}${flags.all ? " and rotated the cache key" : ""}` +
        `${revoked.length > 0 && revoked.length <= 20 ? `: ${revoked.join(", ")}` : ""}\n`,
    );
  return 0;
}
