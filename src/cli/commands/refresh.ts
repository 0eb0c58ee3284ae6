import { replyError, request } from "../client.js";
import { socketFor, type GlobalOptions, type Io } from "../context.js";
import { UsageError } from "../exit.js";
import { plural } from "../format.js";

export async function refresh(g: GlobalOptions, args: string[], io: Io): Promise<number> {
  if (args.length > 1) throw new UsageError("refresh takes at most one secret name: sealcache refresh [NAME]");
  const target = socketFor(g);
  const q = args[0] ? `?name=${encodeURIComponent(args[0])}` : "";
  const r = await request(target, "POST", `/v1/refresh${q}`);
  if (r.status !== 202) throw replyError(r);
  const j = JSON.parse(r.body.toString("utf8")) as { queued: string[] };
  io.out(g.json ? JSON.stringify(j) + "\n" : `refresh queued for ${plural(j.queued.length, "secret")}\n`);
  return 0;
}
