import { startDaemon } from "../../daemon/daemon.js";
import { describeError } from "../../errors.js";
import { createLogger } from "../../log.js";
import { loadFull, type GlobalOptions } from "../context.js";

/** `daemon`: run in the foreground until SIGTERM/SIGINT (systemd, or a terminal). */
export async function daemon(g: GlobalOptions): Promise<number> {
  const { config, file } = loadFull(g, true);
  const logger = createLogger({ level: config.log.level });
  const d = await startDaemon(config, file, logger);
  await new Promise<void>((resolve) => {
    const onSignal = (sig: NodeJS.Signals) => {
      logger.info({ signal: sig }, "signal received");
      process.off("SIGTERM", onSignal);
      process.off("SIGINT", onSignal);
      // A part that fails to close still ends in a logged, prompt exit (1), not an unhandled rejection.
      void d
        .stop()
        .catch((e: unknown) => {
          logger.error({ err: describeError(e) }, "did not stop cleanly");
          process.exitCode = 1;
        })
        .finally(resolve);
    };
    process.on("SIGTERM", onSignal);
    process.on("SIGINT", onSignal);
    process.on("SIGHUP", () => logger.warn("SIGHUP: configuration reload is not supported; restart the service to apply changes"));
  });
  return process.exitCode === undefined ? 0 : Number(process.exitCode);
}
