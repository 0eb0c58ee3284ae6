import { getJson } from "../client.js";
import { socketFor, type GlobalOptions, type Io } from "../context.js";
import { plural, table } from "../format.js";
import type { SecretStatus } from "../../core/reader.js";

/** `list [--prefix P]`: the names this account may read, their state and age; never values. */
export async function list(g: GlobalOptions, flags: { prefix: string | undefined }, io: Io): Promise<number> {
  const target = socketFor(g);
  const q = flags.prefix ? `?prefix=${encodeURIComponent(flags.prefix)}` : "";
  const j = await getJson<{ secrets: SecretStatus[] }>(target, `/v1/secrets${q}`);
  if (g.json) {
    io.out(JSON.stringify(j) + "\n");
    return 0;
  }
  if (j.secrets.length === 0) {
    io.out(flags.prefix ? await noneUnder(target, flags.prefix) : "no secrets this account may read\n");
    return 0;
  }
  io.out(
    table(
      ["NAME", "STATE", "AGE", "VERSION", "PROVIDER", "ERROR"],
      j.secrets.map((s) => [
        s.name,
        s.state,
        s.age_s === null ? "-" : `${s.age_s}s`,
        s.kind === "hierarchy" ? plural(s.members ?? 0, "param") : s.version === null ? "-" : String(s.version),
        s.provider,
        s.error ?? "",
      ]),
    ),
  );
  return 0;
}

/** An empty prefix listing: a prefix that matches nothing is not an account that may read nothing. */
async function noneUnder(target: Parameters<typeof getJson>[0], prefix: string): Promise<string> {
  const all = await getJson<{ secrets: SecretStatus[] }>(target, "/v1/secrets");
  if (all.secrets.length === 0) return "no secrets this account may read\n";
  return `no names match the prefix ${JSON.stringify(prefix)} (this account may read ${plural(all.secrets.length, "secret")}: sealcache list)\n`;
}
