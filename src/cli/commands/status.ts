import { request } from "../client.js";
import { socketFor, type GlobalOptions, type Io } from "../context.js";
import { failingFooter, failingSecrets } from "../failing.js";
import { plural, table } from "../format.js";
import type { Failing } from "../../core/health.js";
import type { ProviderHealth } from "../../sync/engine.js";
import type { MqttState } from "../../mqtt/part.js";

interface Health {
  status: string;
  sealed: boolean;
  sealed_reason?: string;
  online?: boolean;
  version: string;
  uptime_s: number;
  seal: { type: string; ok: boolean; detail: string; warnings: string[] } | null;
  secrets?: Record<string, number>;
  failing?: Failing;
  providers?: ProviderHealth[];
  quarantined?: { path: string; reason: string; at: string }[];
  store?: { writable: boolean; since: string | null; reason: string | null };
  mqtt?: MqttState;
  warnings: string[];
}

/** `status`: the daemon's health in words; exit 5 while sealed. */
export async function status(g: GlobalOptions, io: Io): Promise<number> {
  const target = socketFor(g);
  const r = await request(target, "GET", "/v1/health");
  const h = JSON.parse(r.body.toString("utf8")) as Health;
  if (g.json) {
    io.out(JSON.stringify(h) + "\n");
    return h.sealed ? 5 : 0;
  }
  const out: string[] = [];
  out.push(`sealcache ${h.version}: ${h.status}${h.sealed ? ` (${h.sealed_reason})` : ""}, up ${h.uptime_s}s`);
  if (h.seal) out.push(`seal: ${h.seal.type}${h.seal.ok ? "" : " (NOT OK)"}: ${h.seal.detail}`);
  for (const w of h.seal?.warnings ?? []) out.push(`WARNING: ${w}`);
  if (h.secrets) {
    const s = h.secrets;
    const tree = s.hierarchies ? ` (${plural(s.hierarchies, "hierarchy", "hierarchies")} and the parameters under them)` : "";
    // Revoked names are counted only when there are some: most gateways never revoke.
    const revoked = s.revoked ? `, ${s.revoked} revoked` : "";
    out.push(
      `secrets: ${s.total} configured${tree}, ${s.ok} ok, ${s.stale} stale, ${s.expired} expired, ${s.not_synced} not synced${revoked}, ` +
        `${s.errors} with errors`,
    );
  }
  const failing = await failingSecrets(target, h.failing);
  if (failing && failing.count > 0) {
    out.push("");
    if (failing.shown.length > 0)
      out.push(
        table(
          ["FAILING SECRET", "STATE", "ERROR"],
          failing.shown.map((f) => [f.name, f.state, f.error]),
        ).trimEnd(),
      );
    out.push(...failingFooter(failing));
  }
  if (h.providers && h.providers.length > 0) {
    out.push("");
    out.push(
      table(
        ["PROVIDER", "TYPE", "STATE", "LAST SUCCESS", "LAST ERROR"],
        h.providers.map((p) => [
          p.name,
          p.type,
          !p.active ? "inactive" : p.online ? "online" : p.last_success === null && p.failures === 0 ? "pending" : "offline",
          p.last_success ?? "-",
          p.last_error ?? "",
        ]),
      ).trimEnd(),
    );
  }
  for (const q of h.quarantined ?? []) out.push(`QUARANTINED ${q.at}: ${q.path}: ${q.reason}`);
  if (h.mqtt) out.push(mqttLine(h.mqtt));
  if (h.store && !h.store.writable) out.push(`NOT RECORDING since ${h.store.since}: ${h.store.reason}: serving cached values, not recording new ones`);
  for (const w of h.warnings) out.push(`policy: ${w}`);
  io.out(out.join("\n") + "\n");
  return h.sealed ? 5 : 0;
}

/** The fleet channel in one line: "mqtt: connected to URL as ID, subscribed" or its state and last error. */
function mqttLine(m: MqttState): string {
  const where = `${m.broker} as ${m.client_id}`;
  if (m.state === "connected") return `mqtt: connected to ${where}${m.subscribed ? ", subscribed" : ", NOT subscribed"} since ${m.since}`;
  const next = m.next_attempt_ms !== null ? `, next attempt in ${Math.ceil(m.next_attempt_ms / 1000)} s` : "";
  return `mqtt: ${m.state} (${where})${m.last_error ? `: ${m.last_error}` : ""}${next}`;
}
