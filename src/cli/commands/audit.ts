import type { AuditEntryJson } from "../../store/audit.js";
import { getJson } from "../client.js";
import { socketFor, type GlobalOptions, type Io } from "../context.js";
import { UsageError } from "../exit.js";
import { table } from "../format.js";

type Entry = AuditEntryJson;

/**
 * Widest UNIT, EXE and NAME cells: a refused request may name anything up to the
 * URL limit, and one such row must not push every other row off the screen.
 * `--json` has every value whole.
 */
const COLUMN_MAX = [undefined, undefined, undefined, 40, 48, undefined, 64];

/** `audit [--since 1h|ISO] [--name N] [--limit L]`: the daemon's audit trail (admin only). */
export async function audit(
  g: GlobalOptions,
  args: string[],
  flags: { since: string | undefined; name: string | undefined; limit: string | undefined },
  io: Io,
): Promise<number> {
  if (args.length > 0) throw new UsageError("audit takes no arguments: sealcache audit [--since 1h|ISO] [--name NAME] [--limit N] [--json]");
  const q = new URLSearchParams();
  if (flags.since !== undefined) q.set("since", flags.since);
  if (flags.name !== undefined) q.set("name", flags.name);
  if (flags.limit !== undefined) q.set("limit", flags.limit);
  const target = socketFor(g);
  const qs = q.toString();
  const j = await getJson<{ entries: Entry[] }>(target, `/v1/audit${qs ? `?${qs}` : ""}`);
  if (g.json) {
    io.out(JSON.stringify(j) + "\n");
    return 0;
  }
  if (j.entries.length === 0) {
    io.out("no audit entries match\n");
    return 0;
  }
  const dash = (v: string | number | null) => (v === null ? "-" : String(v));
  io.out(
    table(
      ["TIME", "UID", "PID", "UNIT", "EXE", "ROUTE", "NAME", "STATUS", "OUTCOME"],
      j.entries.map((e) => [e.at, dash(e.uid), dash(e.pid), dash(e.unit), dash(e.exe), e.route, dash(e.name), String(e.status), e.code]),
      COLUMN_MAX,
    ),
  );
  return 0;
}
