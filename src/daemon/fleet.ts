import type { Core } from "../core/core.js";
import { OPERATOR } from "../core/principal.js";
import type { JtiStore } from "../fleet/jti-store.js";
import type { Logger } from "../log.js";
import type { FleetAuditEntry, FleetCore, FleetStatus, FleetTarget } from "../mqtt/core.js";
import type { SecretStore } from "../store/store.js";
import { describeError, type ErrorCode } from "../errors.js";
import { REFUSAL_CODES } from "../fleet/refusal.js";
import { STATUS } from "../server/respond.js";

/**
 * The fleet channel's view of the daemon (src/mqtt/core.ts): the core's own
 * refresh and revoke over a fleet principal, a status summary from the core's
 * health, the MQTT password when it is a cached secret, and the audit trail.
 */
export function fleetCore(core: Core): FleetCore {
  const target = (t: FleetTarget) => ("all" in t ? ("all" as const) : t.names);
  return {
    status: () => fleetStatus(core),
    onStatusChange: (fn) => core.onChange(fn),
    ready: () => unsealAttempted(core),
    refresh: async (p, t) => core.refresh({ kind: "fleet", issuer: p.issuer, jti: p.jti }, target(t)),
    revoke: (p, t) => core.revoke({ kind: "fleet", issuer: p.issuer, jti: p.jti }, target(t)),
    // The daemon reading its own broker password: no peer, no policy (OPERATOR).
    secret: (name) => {
      try {
        return core.get(OPERATOR, name).value;
      } catch {
        return undefined;
      }
    },
    audit: (e: FleetAuditEntry) => {
      const p = e.principal
        ? { kind: "fleet" as const, issuer: e.principal.issuer, jti: e.principal.jti }
        : { kind: "fleet" as const, issuer: `unverified:${e.claimed?.kid ?? "-"}`, jti: e.claimed?.jti ?? "-" };
      const name = e.target && "names" in e.target && e.target.names.length === 1 ? e.target.names[0]! : null;
      // A refusal is the sender's (400; 429 for the rate), whatever its code is named (`expired`
      // is also a core code); the core's own errors keep the status the socket gives them (404, 503, ...).
      const refused = (REFUSAL_CODES as readonly string[]).includes(e.code);
      const status = e.ok ? 200 : refused ? (e.code === "rate_limited" ? 429 : 400) : (STATUS[e.code as ErrorCode] ?? 500);
      core.record(p, { route: `fleet:${e.cmd ?? "unknown"}`, name, status, code: e.code });
    },
  };
}

/** How long a fleet command waits for the first unseal attempt at most; then it is answered as the core stands (`sealed`). */
const READY_WAIT_MS = 60_000;

/**
 * Resolves once the daemon's first unseal attempt has ended (serving, or sealed
 * with a reason), the daemon is stopping, or READY_WAIT_MS passed. The fleet
 * channel starts before the cache (a gateway that cannot unseal still reports so),
 * so the broker hands over a session's queued commands while a TPM may still be
 * unsealing the key: they wait for it rather than being answered `sealed`.
 */
function unsealAttempted(core: Core): Promise<void> {
  if (core.state !== "unsealing") return Promise.resolve();
  return new Promise((resolve) => {
    const check = () => {
      if (core.state !== "unsealing") done();
    };
    const off = core.onChange(check);
    // Core.stopping() announces nothing: a slow poll notices it.
    const poll = setInterval(check, 250).unref();
    const limit = setTimeout(() => done(), READY_WAIT_MS).unref();
    function done(): void {
      off();
      clearInterval(poll);
      clearTimeout(limit);
      resolve();
    }
  });
}

interface HealthBody {
  sealed: boolean;
  revision?: number;
  version: string;
  secrets?: { total: number; stale: number; expired: number };
  providers?: { name: string; active: boolean; online: boolean }[];
}

function fleetStatus(core: Core): FleetStatus {
  const h = core.health().body as HealthBody;
  const providers: Record<string, "online" | "offline"> = {};
  for (const p of h.providers ?? []) if (p.active) providers[p.name] = p.online ? "online" : "offline";
  return {
    sealed: h.sealed,
    secrets: h.secrets?.total ?? 0,
    stale: (h.secrets?.stale ?? 0) + (h.secrets?.expired ?? 0),
    providers,
    revision: h.revision ?? 0,
    version: h.version,
    names: core.listNames(),
  };
}

const RECORD = "fleet-jtis";

/**
 * The fleet channel's replay memory, sealed in the cache (a store record bound
 * into its digest: an older copy of it, restored to replay a command, is caught
 * like an edited row). Written on every command carried out; commands are rare.
 * While the cache is sealed nothing is known, which is safe: every command then
 * fails (`sealed`) and is not remembered, so it can be sent again.
 */
export class SealedJtiStore implements JtiStore {
  readonly #store: () => SecretStore | undefined;
  readonly #log: Logger;
  #loadedFrom: SecretStore | undefined;
  #exp = new Map<string, number>();

  constructor(store: () => SecretStore | undefined, logger: Logger) {
    this.#store = store;
    this.#log = logger;
  }

  has(jti: string): boolean {
    return this.#current().has(jti);
  }

  remember(jti: string, expMs: number): void {
    this.#current().set(jti, expMs);
    this.#save();
  }

  size(): number {
    return this.#current().size;
  }

  prune(nowMs: number): void {
    const m = this.#current();
    let dropped = false;
    for (const [jti, exp] of m) {
      if (exp > nowMs) continue;
      m.delete(jti);
      dropped = true;
    }
    if (dropped) this.#save();
  }

  /** The jtis of the store open now (read once per store: a quarantine starts afresh). */
  #current(): Map<string, number> {
    const store = this.#store();
    if (store !== this.#loadedFrom) {
      this.#loadedFrom = store;
      this.#exp = new Map();
      const raw = store?.record(RECORD);
      if (raw) {
        try {
          for (const [jti, exp] of JSON.parse(Buffer.from(raw).toString("utf8")) as [string, number][]) this.#exp.set(jti, exp);
        } finally {
          raw.fill(0);
        }
      }
    }
    return this.#exp;
  }

  #save(): void {
    const store = this.#loadedFrom;
    if (!store) return;
    try {
      store.setRecord(RECORD, Buffer.from(JSON.stringify([...this.#exp]), "utf8"));
    } catch (e) {
      // A full disk: the command was carried out; it stays remembered in memory for this process.
      this.#log.error({ err: describeError(e) }, "fleet replay memory could not be written");
    }
  }
}
