import type { Caller } from "../policy/policy.js";

/**
 * Who asks for an operation. Policy decides for a principal and the audit trail
 * records it:
 * - `peer`: a process on the socket, as the kernel identified it at accept
 *   (`caller` undefined when it could not be identified: every read is refused);
 * - `fleet`: a fleet command over MQTT whose signature verified against the key
 *   `issuer` (its kid) of `commands.trust`, one-time id `jti`;
 * - `operator`: the local operator running a CLI command on the cache directly
 *   (the daemon stopped): whoever can open data_dir already holds every key.
 */
export type Principal =
  | { readonly kind: "peer"; readonly caller: Caller | undefined }
  | { readonly kind: "fleet"; readonly issuer: string; readonly jti: string }
  | { readonly kind: "operator" };

export const OPERATOR: Principal = { kind: "operator" };

export function peer(caller: Caller | undefined): Principal {
  return { kind: "peer", caller };
}

/** For messages: who was refused, without anything secret. */
export function describePrincipal(p: Principal): string {
  switch (p.kind) {
    case "peer":
      if (!p.caller) return "a caller whose identity could not be read";
      // The program changed since connect (it exec'd): rules naming an exe no longer match; say why.
      return p.caller.current?.changed === undefined
        ? `caller uid ${p.caller.uid} (pid ${p.caller.pid})`
        : `caller uid ${p.caller.uid} (pid ${p.caller.pid}; ${p.caller.current.changed})`;
    case "fleet":
      return `fleet command ${JSON.stringify(p.jti.slice(0, 64))} (key ${JSON.stringify(p.issuer.slice(0, 64))})`;
    case "operator":
      return "the local operator";
  }
}

/** The principal's columns in an audit entry. */
export function auditIdentity(p: Principal): { uid: number | null; pid: number | null; exe: string | null; unit: string | null; principal: string } {
  switch (p.kind) {
    case "peer":
      return { uid: p.caller?.uid ?? null, pid: p.caller?.pid ?? null, exe: p.caller?.exe ?? null, unit: p.caller?.unit ?? null, principal: "peer" };
    case "fleet":
      // Bounded: a jti or key name is the signer's choice.
      return { uid: null, pid: null, exe: null, unit: null, principal: `fleet:${p.issuer.slice(0, 64)}:${p.jti.slice(0, 128)}` };
    case "operator":
      return { uid: process.getuid?.() ?? null, pid: process.pid, exe: null, unit: null, principal: "operator" };
  }
}
