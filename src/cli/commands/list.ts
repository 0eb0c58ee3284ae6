import { getJson } from "../client.js";
import { socketFor, type GlobalOptions, type Io } from "../context.js";
import { table } from "../format.js";
import type { SecretStatus } from "../../server/reader.js";

export async function list(g: GlobalOptions, flags: { prefix: string | undefined }, io: Io): Promise<number> {
  const { socket } = socketFor(g);
  const q = flags.prefix ? `?prefix=${encodeURIComponent(flags.prefix)}` : "";
  const j = await getJson<{ secrets: SecretStatus[] }>(socket, `/v1/secrets${q}`);
  if (g.json) {
    io.out(JSON.stringify(j) + "\n");
    return 0;
  }
  if (j.secrets.length === 0) {
    io.out("no secrets this account may read\n");
    return 0;
  }
  io.out(table(["NAME", "STATE", "AGE", "VERSION", "PROVIDER", "ERROR"], j.secrets.map((s) => [s.name, s.state, s.age_s === null ? "-" : `${s.age_s}s`, s.kind === "hierarchy" ? `${s.members ?? 0} params` : s.version === null ? "-" : String(s.version), s.provider, s.error ?? ""])));
  return 0;
}
