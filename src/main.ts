import { parseCommandLine } from "./cli/args.js";
import { EXIT, UsageError, reportError } from "./cli/exit.js";
import type { GlobalOptions, Io } from "./cli/context.js";
import { HELP } from "./cli/help.js";
import { VERSION } from "./version.js";

const io: Io = {
  out: (t) => void process.stdout.write(t),
  err: (t) => void process.stderr.write(t),
  isTTY: process.stdout.isTTY === true,
};

async function main(argv: string[]): Promise<number> {
  const { command, args, values: v, lists, rest } = parseCommandLine(argv);
  if (v.version === true || command === "version") {
    io.out(`sealcache ${VERSION}\n`);
    return EXIT.ok;
  }
  if (v.help === true || command === undefined || command === "help") {
    io.out(HELP);
    return command === undefined && v.help !== true ? EXIT.usage : EXIT.ok;
  }
  const str = (k: string) => (typeof v[k] === "string" ? (v[k] as string) : undefined);
  const g: GlobalOptions = { config: str("config"), socket: str("socket"), dataDir: str("data-dir"), logLevel: str("log-level"), json: v.json === true };
  switch (command) {
    case "daemon":
      return (await import("./cli/commands/daemon.js")).daemon(g);
    case "get":
      return (await import("./cli/commands/get.js")).get(g, args, { raw: v.raw === true }, io);
    case "list":
      return (await import("./cli/commands/list.js")).list(g, { prefix: str("prefix") }, io);
    case "status":
      return (await import("./cli/commands/status.js")).status(g, io);
    case "refresh":
      return (await import("./cli/commands/refresh.js")).refresh(g, args, io);
    case "init":
      return (await import("./cli/commands/init.js")).init(g, { reseal: v.reseal === true, recoveryKeyFile: str("recovery-key-file") }, io);
    case "rotate-kek":
      return (await import("./cli/commands/rotate-kek.js")).rotateKekCommand(g, io);
    case "audit":
      return (await import("./cli/commands/audit.js")).audit(g, args, { since: str("since"), name: str("name"), limit: str("limit") }, io);
    case "import":
      return (await import("./cli/commands/import.js")).importCommand(g, args, { fromFile: str("from-file"), deleteSource: v["delete-source"] === true }, io);
    case "revoke":
      return (await import("./cli/commands/revoke.js")).revoke(g, args, { all: v.all === true }, io);
    case "exec":
      return (await import("./cli/commands/exec.js")).execCommand(g, { env: lists.env, onChange: str("on-change"), wait: str("wait") }, rest, io);
    case "render":
      return (await import("./cli/commands/render.js")).render(
        g,
        { templates: lists.template, outs: lists.out, mode: str("mode"), watch: v.watch === true, onChange: str("on-change") },
        io,
      );
    case "doctor":
      return (await import("./cli/commands/doctor.js")).doctor(g, io);
    case "fleet keygen":
      return (await import("./cli/commands/fleet.js")).fleetKeygen(g, { out: str("out") }, io);
    case "fleet sign":
      return (await import("./cli/commands/fleet.js")).fleetSign(
        g,
        { key: str("key"), aud: str("aud"), cmd: str("cmd"), names: lists.name ?? [], all: v.all === true, ttl: str("ttl"), kid: str("kid") },
        io,
      );
    default:
      throw new UsageError(`unknown command ${JSON.stringify(command)}; see sealcache --help`);
  }
}

const argv = process.argv.slice(2);
// Known before parsing, so that a usage error is JSON too when --json was asked for.
const json = argv.slice(0, argv.includes("--") ? argv.indexOf("--") : undefined).includes("--json");
main(argv).then(
  (code) => {
    process.exitCode = code;
  },
  (e: unknown) => {
    process.exitCode = reportError(e, json, io);
  },
);
