import { SealcacheError } from "../../errors.js";
import { replyError, request } from "../client.js";
import { socketFor, type GlobalOptions, type Io } from "../context.js";
import { UsageError } from "../exit.js";

interface SecretReply {
  name: string;
  value: string;
  encoding?: "base64";
  stale: boolean;
  age_s: number;
}

/** `get NAME`: the value and a newline; `--raw` exactly the bytes; `--json` the API object. */
export async function get(g: GlobalOptions, args: string[], flags: { raw: boolean }, io: Io): Promise<number> {
  if (args.length !== 1) throw new UsageError("get takes one secret name: sealcache get NAME [--json|--raw]");
  const name = args[0]!;
  const target = socketFor(g);
  const path = `/v1/secrets/${encodeURIComponent(name).replace(/%2F/g, "/")}${flags.raw ? "?format=raw" : ""}`;
  const r = await request(target, "GET", path);
  if (r.status !== 200) throw replyError(r);
  if (flags.raw) {
    io.out(r.body);
    return 0;
  }
  if (g.json) {
    // The daemon's JSON bodies end with a newline already.
    const text = r.body.toString("utf8");
    io.out(text.endsWith("\n") ? text : text + "\n");
    return 0;
  }
  const j = JSON.parse(r.body.toString("utf8")) as SecretReply;
  if (typeof j.value !== "string") throw new SealcacheError("internal", "the daemon's answer has no value");
  if (j.stale) io.err(`warning: ${name} is stale: last confirmed ${j.age_s} s ago (backend unreachable or refresh failing; see sealcache status)\n`);
  io.out(j.encoding === "base64" ? Buffer.from(j.value, "base64") : j.value + "\n");
  return 0;
}
