import type { SealerInfo } from "../seal/sealer.js";
import type { Serving } from "./core.js";

export interface HealthInput {
  readonly state: "unsealing" | "sealed" | "serving" | "stopping";
  /** The open cache; undefined while sealed. */
  readonly serving: Serving | undefined;
  readonly sealedReason: string;
  readonly sealerInfo: SealerInfo | undefined;
  readonly policyWarnings: readonly string[];
  /** performance.now() at start: uptime runs on the monotonic clock. */
  readonly started: number;
  readonly version: string;
  /** `metrics.secret_names`: whether health may name the failing secrets. */
  readonly secretNames: boolean;
}

/** How many failing secrets health names (and `status` shows); the rest are counted. */
export const FAILING_SHOWN = 10;

/** A secret whose last refresh failed, as health names it. */
export interface FailingSecret {
  readonly name: string;
  readonly provider: string;
  readonly state: string;
  readonly error: string;
}

/**
 * The secrets whose last attempt failed. `/v1/health` answers any account that can
 * open the socket, so it names them (with their errors, which name backend paths)
 * only where `metrics.secret_names` allows; otherwise it gives the count and the
 * count per provider, and `status` asks `/v1/secrets`, where policy decides
 * which of them the caller may see.
 */
export interface Failing {
  readonly count: number;
  readonly by_provider: Record<string, number>;
  /** The first FAILING_SHOWN by name; null when names are not given out. */
  readonly secrets: FailingSecret[] | null;
}

/**
 * The /v1/health body: 503 only while sealed (nothing can be served); an offline
 * backend is "degraded" with 200, since cached values are still being served.
 */
export function buildHealth(h: HealthInput): { ok: boolean; body: unknown } {
  const seal = h.sealerInfo ? { type: h.sealerInfo.type, ok: h.sealerInfo.ok, detail: h.sealerInfo.detail, warnings: h.sealerInfo.warnings } : null;
  const common = { version: h.version, uptime_s: Math.floor((performance.now() - h.started) / 1000), seal, warnings: h.policyWarnings };
  // "unsealing" while the first attempt runs (the socket is up before the key), "sealed" once one failed.
  if (!h.serving) return { ok: false, body: { status: h.state === "serving" ? "sealed" : h.state, sealed: true, sealed_reason: h.sealedReason, ...common } };
  const { reader, sync, store } = h.serving;
  const now = reader.now();
  // One count per name `list` shows: configured secrets, hierarchies (an SSM path
  // ending in /* or /**) and the parameters found under them, each by its state.
  const counts = { total: 0, ok: 0, stale: 0, expired: 0, not_synced: 0, revoked: 0, errors: 0, hierarchies: 0 };
  const failing = { count: 0, by_provider: {} as Record<string, number>, secrets: h.secretNames ? ([] as FailingSecret[]) : null };
  for (const name of reader.configuredNames()) {
    const s = reader.status(name, now);
    counts.total++;
    counts[s.state]++;
    if (s.error) {
      counts.errors++;
      failing.count++;
      failing.by_provider[s.provider] = (failing.by_provider[s.provider] ?? 0) + 1;
      if (failing.secrets && failing.secrets.length < FAILING_SHOWN)
        failing.secrets.push({ name: s.name, provider: s.provider, state: s.state, error: s.error });
    }
    if (s.kind === "hierarchy") counts.hierarchies++;
  }
  const providers = sync.providerHealth();
  const used = providers.filter((p) => p.active);
  const online = used.every((p) => p.online);
  const disk = store.writeState;
  const degraded = !online || counts.stale + counts.expired + counts.not_synced + counts.errors > 0 || store.quarantined.length > 0 || !disk.writable;
  return {
    ok: true,
    body: {
      status: degraded ? "degraded" : "ok",
      sealed: false,
      online,
      revision: store.revision,
      secrets: counts,
      failing,
      providers,
      quarantined: store.quarantined,
      // A full or read-only data_dir: values are served, new ones not recorded.
      store: { writable: disk.writable, since: disk.since === null ? null : new Date(disk.since).toISOString(), reason: disk.reason },
      ...common,
    },
  };
}

export type Gauge = { name: string; help: string; samples: [string, number][] };

export function buildGauges(core: Serving | undefined, withNames: boolean): Gauge[] {
  const gauges: Gauge[] = [{ name: "sealcache_sealed", help: "1 while the cache key is not unsealed.", samples: [["", core ? 0 : 1]] }];
  if (!core) return gauges;
  const now = core.reader.now();
  const byState = new Map<string, number>([
    ["ok", 0],
    ["stale", 0],
    ["expired", 0],
    ["not_synced", 0],
    ["revoked", 0],
  ]);
  const perSecret: [string, number][] = [];
  for (const name of core.reader.configuredNames()) {
    const s = core.reader.status(name, now);
    byState.set(s.state, (byState.get(s.state) ?? 0) + 1);
    if (withNames && s.age_s !== null) perSecret.push([`name="${name}"`, s.age_s]);
  }
  gauges.push({ name: "sealcache_secrets", help: "Configured secrets by state.", samples: [...byState].map(([k, v]) => [`state="${k}"`, v]) });
  const providers = core.sync.providerHealth();
  gauges.push({
    name: "sealcache_provider_online",
    help: "1 when the provider's last attempt succeeded.",
    samples: providers.map((p) => [`provider="${p.name}",type="${p.type}"`, p.online ? 1 : 0]),
  });
  gauges.push({
    name: "sealcache_provider_failures",
    help: "Consecutive failed attempts per provider.",
    samples: providers.map((p) => [`provider="${p.name}"`, p.failures]),
  });
  gauges.push({
    name: "sealcache_provider_last_success_timestamp_seconds",
    help: "Unix time of the provider's last successful fetch.",
    samples: providers.map((p) => [`provider="${p.name}"`, p.last_success ? Math.floor(Date.parse(p.last_success) / 1000) : 0]),
  });
  gauges.push({ name: "sealcache_store_revision", help: "Store generation; grows with every value change.", samples: [["", core.store.revision]] });
  gauges.push({ name: "sealcache_quarantined_databases", help: "Databases moved aside since start.", samples: [["", core.store.quarantined.length]] });
  if (withNames) gauges.push({ name: "sealcache_secret_age_seconds", help: "Seconds since each secret was last confirmed.", samples: perSecret });
  return gauges;
}
