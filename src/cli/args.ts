import { parseArgs } from "node:util";
import { UsageError } from "./exit.js";

type OptionSpec = { type: "string" | "boolean"; short?: string };

/** Options every command takes. */
const GLOBAL: Record<string, OptionSpec> = {
  config: { type: "string", short: "c" },
  socket: { type: "string" },
  "data-dir": { type: "string" },
  "log-level": { type: "string" },
  json: { type: "boolean" },
  help: { type: "boolean", short: "h" },
  version: { type: "boolean" },
};

/** Options that belong to one command. */
const LOCAL: Record<string, OptionSpec> = {
  raw: { type: "boolean" },
  prefix: { type: "string" },
  since: { type: "string" },
  name: { type: "string" },
  limit: { type: "string" },
  reseal: { type: "boolean" },
  "recovery-key-file": { type: "string" },
  env: { type: "string" },
  "from-file": { type: "string" },
  "delete-source": { type: "boolean" },
  "on-change": { type: "string" },
  wait: { type: "string" },
  template: { type: "string" },
  out: { type: "string" },
  mode: { type: "string" },
  watch: { type: "boolean" },
  key: { type: "string" },
  aud: { type: "string" },
  cmd: { type: "string" },
  all: { type: "boolean" },
  ttl: { type: "string" },
  kid: { type: "string" },
};

interface CommandSpec {
  /** As --help and the README show it; usage errors quote it. */
  readonly synopsis: string;
  /** Positional arguments: at least, at most, and what one is called in a message. */
  readonly args: readonly [min: number, max: number, what?: string];
  readonly options: readonly string[];
}

/** Every command, its synopsis and what it accepts. A test checks --help and the README against the synopses. */
export const COMMANDS: Readonly<Record<string, CommandSpec>> = {
  daemon: { synopsis: "daemon", args: [0, 0], options: [] },
  get: { synopsis: "get NAME [--json|--raw]", args: [1, 1, "secret name"], options: ["raw"] },
  list: { synopsis: "list [--prefix P]", args: [0, 0], options: ["prefix"] },
  status: { synopsis: "status", args: [0, 0], options: [] },
  refresh: { synopsis: "refresh [NAME]", args: [0, 1, "secret name"], options: [] },
  audit: { synopsis: "audit [--since 1h|ISO] [--name NAME] [--limit N]", args: [0, 0], options: ["since", "name", "limit"] },
  init: { synopsis: "init [--reseal [--recovery-key-file F]]", args: [0, 0], options: ["reseal", "recovery-key-file"] },
  "rotate-kek": { synopsis: "rotate-kek", args: [0, 0], options: [] },
  import: { synopsis: "import NAME --from-file F [--delete-source]", args: [1, 1, "secret name"], options: ["from-file", "delete-source"] },
  revoke: { synopsis: "revoke NAME|--all", args: [0, 1, "secret name"], options: ["all"] },
  exec: {
    synopsis: "exec --env VAR=NAME... [--on-change restart|signal:SIG|none] [--wait DURATION] -- CMD ARGS",
    // The words after `--` are CMD ARGS (ParsedArgs.rest); none may come before it.
    args: [0, 0],
    options: ["env", "on-change", "wait"],
  },
  render: {
    synopsis: "render --template T --out F [--mode 0600] [--watch] [--on-change CMD]",
    args: [0, 0],
    options: ["template", "out", "mode", "watch", "on-change"],
  },
  doctor: { synopsis: "doctor", args: [0, 0], options: [] },
  "fleet keygen": { synopsis: "fleet keygen --out F", args: [0, 0], options: ["out"] },
  "fleet sign": {
    synopsis: "fleet sign --key F --aud DEVICE|fleet --cmd refresh|revoke [--name N]... [--all] [--ttl 7d] [--kid NAME]",
    args: [0, 0],
    options: ["key", "aud", "cmd", "name", "all", "ttl", "kid"],
  },
  version: { synopsis: "version", args: [0, 0], options: [] },
  help: { synopsis: "help", args: [0, 1, "command"], options: [] },
};

export interface ParsedArgs {
  readonly command: string | undefined;
  readonly args: string[];
  readonly values: Record<string, string | boolean | undefined>;
  /** Every value of a string option given more than once (`--name a --name b`), in order; `values` holds the last. */
  readonly lists: Record<string, string[]>;
  /** The words after `--` for exec (CMD ARGS), undefined when there was no `--`. */
  readonly rest: string[] | undefined;
}

/** Commands with subcommands: `fleet keygen`, `fleet sign` are looked up as one name. */
const GROUPS: Readonly<Record<string, readonly string[]>> = { fleet: ["keygen", "sign"] };

/**
 * The command line, checked against the command's own spec: an unknown option, a
 * missing option value, an option of another command and extra words are usage
 * errors in our words, each with a pointer to --help (node's parser text names no
 * command and quotes oddly).
 */
export function parseCommandLine(argv: string[]): ParsedArgs {
  const options = { ...GLOBAL, ...LOCAL };
  const { tokens, positionals } = parseArgs({ args: argv, options, strict: false, allowPositionals: true, tokens: true });
  const group = positionals[0] !== undefined ? GROUPS[positionals[0]] : undefined;
  const sub = group ? positionals[1] : undefined;
  const command = group && sub !== undefined && group.includes(sub) ? `${positionals[0]} ${sub}` : positionals[0];
  const spec = command === undefined ? undefined : COMMANDS[command];
  const values: Record<string, string | boolean | undefined> = {};
  const lists: Record<string, string[]> = {};
  // exec runs what follows `--` as it is: those words are neither options nor its arguments.
  const terminator = command === "exec" ? tokens.find((t) => t.kind === "option-terminator") : undefined;
  const end = terminator?.index ?? Infinity;
  for (const t of tokens) {
    if (t.kind !== "option" || t.index > end) continue;
    const o = options[t.name];
    if (!o) throw new UsageError(`unknown option ${t.rawName}${nearest(t.name)}; see sealcache --help`);
    if (o.type === "string" && (t.value === undefined || (!t.inlineValue && t.value.startsWith("-")))) {
      throw new UsageError(`option ${t.rawName} needs a value (${t.rawName} VALUE, or ${t.rawName}=VALUE for one starting with -); see sealcache --help`);
    }
    if (o.type === "boolean" && t.value !== undefined) throw new UsageError(`option ${t.rawName} takes no value; see sealcache --help`);
    if (spec && t.name in LOCAL && !spec.options.includes(t.name)) {
      throw new UsageError(`option ${t.rawName} does not apply to ${command}: sealcache ${spec.synopsis}; see sealcache --help`);
    }
    values[t.name] = t.value ?? true;
    if (t.value !== undefined) (lists[t.name] ??= []).push(t.value);
  }
  if (command === "get" && values.json === true && values.raw === true)
    throw new UsageError(`--json and --raw exclude each other: sealcache ${COMMANDS.get!.synopsis}`);
  const before = terminator ? tokens.filter((t) => t.kind === "positional" && t.index < end).length : positionals.length;
  const args = positionals.slice(command?.includes(" ") ? 2 : 1, before);
  const rest = terminator ? positionals.slice(before) : undefined;
  if (group && !spec && values.help !== true) {
    const subs = group.map((g) => `sealcache ${COMMANDS[`${positionals[0]} ${g}`]!.synopsis}`).join(" | ");
    throw new UsageError(`${positionals[0]} takes a subcommand${sub === undefined ? "" : ` (not ${JSON.stringify(sub.slice(0, 60))})`}: ${subs}`);
  }
  // Help asked for: the words around it do not matter.
  if (spec && values.help !== true) checkArgs(command!, spec, args, values);
  return { command, args, values, lists, rest };
}

function checkArgs(command: string, spec: CommandSpec, args: string[], values: Record<string, unknown>): void {
  const [min, max, what = "argument"] = spec.args;
  if (args.length >= min && args.length <= max) return;
  const expected = max === 0 ? "no arguments" : min === max ? `one ${what}` : `at most one ${what}`;
  if (command === "exec")
    throw new UsageError(`exec runs the command given after --: sealcache ${spec.synopsis} (got ${JSON.stringify(args[0]!.slice(0, 40))} before --)`);
  // `list demo/` most likely meant a prefix.
  const hint =
    command === "list" && args.length === 1 && values.prefix === undefined ? ` (for names starting with ${args[0]}: sealcache list --prefix ${args[0]})` : "";
  throw new UsageError(`${command} takes ${expected}: sealcache ${spec.synopsis}${hint}`);
}

/** ", did you mean --json?" for a near miss of a known option (edit distance at most 2). */
function nearest(name: string): string {
  let best: string | undefined;
  let bestD = 3;
  for (const known of [...Object.keys(GLOBAL), ...Object.keys(LOCAL)]) {
    const d = distance(name, known);
    if (d < bestD) [best, bestD] = [known, d];
  }
  return best && name.length > 1 ? ` (did you mean --${best}?)` : "";
}

function distance(a: string, b: string): number {
  const row = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    let prev = row[0]!;
    row[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const cur = row[j]!;
      row[j] = Math.min(row[j]! + 1, row[j - 1]! + 1, prev + (a[i - 1] === b[j - 1] ? 0 : 1));
      prev = cur;
    }
  }
  return row[b.length]!;
}
