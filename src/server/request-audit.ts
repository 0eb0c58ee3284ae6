import type { AuditEntry } from "../store/audit.js";
import type { Conn } from "./connections.js";
import type { Noted } from "./routes.js";

/** The audit entry for a finished (or abandoned) request. Names only, never values. */
export function auditEntry(conn: Conn | undefined, at: Noted, status: number, code: string | undefined): AuditEntry {
  const c = conn?.peer.caller;
  return {
    at: Date.now(),
    uid: conn?.cred?.uid ?? null,
    pid: conn?.cred?.pid ?? null,
    exe: c?.exe ?? null,
    unit: c?.unit ?? null,
    route: at.route,
    // Names are at most 256 bytes; anything longer was refused and is cut for the record.
    name: at.name === undefined ? null : at.name.slice(0, 256),
    status,
    code: code ?? at.code ?? (status < 400 ? "ok" : `http_${status}`),
    principal: "peer",
  };
}
