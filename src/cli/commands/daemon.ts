import { startDaemon } from "../../daemon/daemon.js";
import { StopSignals, forceExitAfter } from "../../daemon/signals.js";
import { describeError } from "../../errors.js";
import { createLogger, routeProcessWarnings } from "../../log.js";
import { loadFull, type GlobalOptions } from "../context.js";

/** Longer than any part's own bound on closing (sync.timeout aborts in-flight fetches at once), shorter than systemd's 90 s. */
const STOP_DEADLINE_MS = 20_000;

/** `daemon`: run in the foreground until SIGTERM/SIGINT (systemd, or a terminal). */
export async function daemon(g: GlobalOptions): Promise<never> {
  // First: a stop signal from here on ends in a clean stop, never in the default action.
  const signals = new StopSignals();
  const { config, file } = loadFull(g, true);
  const logger = createLogger({ level: config.log.level });
  signals.attach(logger);
  routeProcessWarnings(logger);
  const d = await startDaemon(config, file, logger);
  const sig = await signals.next();
  logger.info({ signal: sig }, "signal received");
  forceExitAfter(STOP_DEADLINE_MS, logger);
  // A part that fails to close still ends in a logged, prompt exit (1), not an unhandled rejection.
  await d.stop().catch((e: unknown) => {
    logger.error({ err: describeError(e) }, "did not stop cleanly");
    process.exitCode = 1;
  });
  // Exit now rather than let node drain its loop: while it tears its handles down
  // the stop signals' handlers are gone, and one more Ctrl-C arriving in that
  // window would end a clean stop as "killed by SIGINT" (logs are written
  // synchronously, so nothing is lost).
  process.exit(process.exitCode === undefined ? 0 : Number(process.exitCode));
}
