import { format } from "node:util";
import { AzureLogger, setLogLevel } from "@azure/logger";
import type { Logger } from "../../log.js";

/** An SDK line is cut here: request dumps are long, and nothing past this helps. */
const MAX_CHARS = 400;

/**
 * The Azure SDK logs through one process-wide logger (@azure/logger; MSAL's lines
 * go through it too), which writes plain text to stderr once AZURE_LOG_LEVEL or
 * setLogLevel enables it. The daemon's output is JSON lines only, so its sink is
 * pointed at our logger, at debug level: the SDK's warnings and errors when our
 * level is debug, and its "info" lines too at trace (request/response lines with
 * sanitized headers, no Authorization, no bodies; credential outcomes; MSAL's
 * PII logging stays off). Otherwise it is off: AZURE_LOG_LEVEL from the
 * environment is overridden either way.
 * Only @azure/* packages use this logger: other SDKs are untouched.
 * (An AZURE_LOG_LEVEL the SDK does not know makes @azure/logger itself print one
 * line when it is loaded, before this runs: set it to a valid level or unset it.)
 */
export function routeSdkLogs(logger: Logger): void {
  AzureLogger.log = (...args: unknown[]) => {
    if (!logger.isLevelEnabled("debug")) return;
    const text = format(...args);
    const space = text.indexOf(" ");
    // `sdk` names the SDK's logger (azure:identity:info...): which package said it, at which of its levels.
    logger.debug({ sdk: space > 0 ? text.slice(0, space) : "azure" }, text.slice(space + 1, space + 1 + MAX_CHARS));
  };
  setLogLevel(logger.isLevelEnabled("trace") ? "info" : logger.isLevelEnabled("debug") ? "warning" : undefined);
}
