import type { Core } from "../core/core.js";
import { OPERATOR } from "../core/principal.js";
import { withOfflineCore } from "../daemon/offline.js";
import { isSealcacheError, SealcacheError } from "../errors.js";
import { createLogger } from "../log.js";
import { STATUS } from "../server/respond.js";
import { loadFull, type GlobalOptions } from "./context.js";

/** What the audit trail records of an operation done on the cache directly. */
export interface OfflineOp {
  /** The route name the socket would have recorded: import, revoke, rotate-kek. */
  readonly route: string;
  /** The secret it names, if one. */
  readonly name: string | null;
  /** The status the socket answers when it succeeds. */
  readonly okStatus: number;
}

/**
 * The fallback of the commands that change the cache (import, revoke, rotate-kek)
 * when the daemon is not running: the same core operation on the cache directly,
 * as the local operator (withOfflineCore), recorded in the audit trail whether it
 * succeeded or was refused, as the socket records it.
 *
 * `unreachable` is why the daemon could not be asked. A config that cannot be
 * loaded is reported with it (exit 5), so the operator learns both that the daemon
 * is down and why the command could not do the work itself.
 */
export async function onCacheDirectly<T>(g: GlobalOptions, unreachable: unknown, op: OfflineOp, fn: (core: Core) => Promise<T> | T): Promise<T> {
  let config: ReturnType<typeof loadFull>["config"];
  try {
    ({ config } = loadFull(g, true));
  } catch (e) {
    const down = unreachable instanceof Error ? unreachable.message : String(unreachable);
    const why = e instanceof Error ? e.message : String(e);
    throw new SealcacheError("unavailable", `${down}\n  and ${op.route} cannot work on the cache directly without the daemon's config: ${why}`, { cause: e });
  }
  const logger = createLogger({ level: "silent" });
  return withOfflineCore({ config, logger, what: op.route }, async (core) => {
    try {
      const r = await fn(core);
      core.record(OPERATOR, { route: op.route, name: op.name, status: op.okStatus, code: "ok" });
      return r;
    } catch (e) {
      // A refusal by the core (a name no provider serves, an unknown secret) is as much
      // the audit trail's business offline as through the socket.
      if (isSealcacheError(e)) core.record(OPERATOR, { route: op.route, name: op.name, status: STATUS[e.code] ?? 500, code: e.code });
      throw e;
    }
  });
}
