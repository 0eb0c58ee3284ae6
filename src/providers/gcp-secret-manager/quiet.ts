import net from "node:net";
import { AuthClient } from "google-auth-library";
import { grpc, loggingUtils } from "google-gax";
import type { Logger } from "../../log.js";

let quieted = false;

/**
 * Keeps the daemon's output JSON lines: the Google libraries' debug logging
 * (GOOGLE_SDK_NODE_LOGGING, which would print requests and answers, secret
 * payloads and tokens included, to stderr) is switched off, and grpc-js's own
 * log lines (GRPC_VERBOSITY, GRPC_TRACE: connection states, never messages or
 * metadata) go through our logger, the first 200 characters of each.
 * Only this provider loads these libraries, so this touches nothing else.
 */
export function quietSdk(logger: Logger): void {
  if (quieted) return;
  quieted = true;
  loggingUtils.setBackend(null);
  // The one logger the auth library made at import, before the backend was switched off.
  (AuthClient as unknown as { log: unknown }).log = loggingUtils.log("auth");
  // grpc-js has one logger per process: its lines carry the name of the provider that set it up first.
  const line =
    (level: "debug" | "warn") =>
    (...args: unknown[]) =>
      logger[level]({ grpc: String(args[0] ?? "").slice(0, 200) }, "grpc-js log line");
  grpc.setLogger({ error: line("warn"), info: line("debug"), debug: line("debug") } as unknown as Partial<Console>);
}

let ipQuieted = false;

/**
 * grpc-js sends the endpoint's host as the TLS server name even when it is an IP
 * address, and Node warns about that once per process on stderr (DEP0123), which
 * would break the daemon's JSON-only output. Only for an endpoint given by IP
 * (without tls.server_name), that one warning is logged at debug instead; every
 * other warning is left alone.
 */
export function quietIpServername(serverName: string, logger: Logger): void {
  if (ipQuieted || net.isIP(serverName) === 0) return;
  ipQuieted = true;
  const emit = process.emitWarning;
  process.emitWarning = function (this: NodeJS.Process, warning: string | Error, ...rest: unknown[]) {
    const o = rest[0];
    const code = typeof o === "object" && o !== null ? (o as { code?: unknown }).code : rest[1];
    if (code === "DEP0123") {
      logger.debug("gcp endpoint is an IP address: its TLS server name is that IP (set tls.server_name to the name its certificate is for)");
      return;
    }
    return (emit as (...a: unknown[]) => void).call(this, warning, ...rest);
  } as typeof process.emitWarning;
}
