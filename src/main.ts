import { parseArgs } from "node:util";
import { describeError, isConfigError, isSealcacheError } from "./errors.js";
import { EXIT, UsageError, exitCodeFor } from "./cli/exit.js";
import type { GlobalOptions, Io } from "./cli/context.js";
import { HELP } from "./cli/help.js";
import { VERSION } from "./version.js";

const io: Io = {
  out: (t) => void process.stdout.write(t),
  err: (t) => void process.stderr.write(t),
  isTTY: process.stdout.isTTY === true,
};

async function main(argv: string[]): Promise<number> {
  let parsed;
  try {
    parsed = parseArgs({
      args: argv,
      allowPositionals: true,
      strict: true,
      options: {
        config: { type: "string", short: "c" },
        socket: { type: "string" },
        "data-dir": { type: "string" },
        "log-level": { type: "string" },
        json: { type: "boolean", default: false },
        raw: { type: "boolean", default: false },
        prefix: { type: "string" },
        since: { type: "string" },
        name: { type: "string" },
        limit: { type: "string" },
        reseal: { type: "boolean", default: false },
        "recovery-key-file": { type: "string" },
        help: { type: "boolean", short: "h", default: false },
        version: { type: "boolean", default: false },
      },
    });
  } catch (e) {
    throw new UsageError(describeError(e));
  }
  const v = parsed.values;
  const [command, ...args] = parsed.positionals;
  if (v.version || command === "version") {
    io.out(`sealcache ${VERSION}\n`);
    return EXIT.ok;
  }
  if (v.help || command === undefined || command === "help") {
    io.out(HELP);
    return command === undefined && !v.help ? EXIT.usage : EXIT.ok;
  }
  const g: GlobalOptions = { config: v.config, socket: v.socket, dataDir: v["data-dir"], logLevel: v["log-level"], json: v.json === true };
  switch (command) {
    case "daemon":
      return (await import("./cli/commands/daemon.js")).daemon(g);
    case "get":
      return (await import("./cli/commands/get.js")).get(g, args, { raw: v.raw === true }, io);
    case "list":
      return (await import("./cli/commands/list.js")).list(g, { prefix: v.prefix }, io);
    case "status":
      return (await import("./cli/commands/status.js")).status(g, io);
    case "refresh":
      return (await import("./cli/commands/refresh.js")).refresh(g, args, io);
    case "init":
      return (await import("./cli/commands/init.js")).init(g, { reseal: v.reseal === true, recoveryKeyFile: v["recovery-key-file"] }, io);
    case "rotate-kek":
      return (await import("./cli/commands/rotate-kek.js")).rotateKekCommand(g, io);
    case "audit":
      return (await import("./cli/commands/audit.js")).audit(g, args, { since: v.since, name: v.name, limit: v.limit }, io);
    case "doctor":
      return (await import("./cli/commands/doctor.js")).doctor(g, io);
    default:
      throw new UsageError(`unknown command ${JSON.stringify(command)}; see sealcache --help`);
  }
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (e: unknown) => {
    if (e instanceof UsageError) {
      io.err(`sealcache: ${e.message}\n`);
      process.exitCode = EXIT.usage;
    } else if (isConfigError(e)) {
      io.err(`sealcache: ${e.message}\n`);
      process.exitCode = EXIT.failure;
    } else if (isSealcacheError(e)) {
      io.err(`sealcache: ${e.code}: ${e.message}\n`);
      process.exitCode = exitCodeFor(e.code);
    } else {
      io.err(`sealcache: ${describeError(e)}\n`);
      process.exitCode = EXIT.failure;
    }
  },
);
