// Templates for `render`: Handlebars, held to one construct. Handlebars parses
// (a maintained grammar, line and column for every node and every syntax error);
// we walk its AST and allow text, comments and {{ secret "NAME" }} only, so every
// name is known before anything is fetched, and compile with the strict options
// (no HTML escaping, unknown helpers and missing values are errors).
import Handlebars from "handlebars/dist/cjs/handlebars.js";
import { nameProblem } from "../../config/names.js";
import { SealcacheError } from "../../errors.js";

export interface Template {
  /** The template file, as errors name it. */
  readonly file: string;
  /** Every secret it names, in order of first use. */
  readonly names: readonly string[];
  /** The text with each {{ secret "NAME" }} replaced by `values.get(NAME)`. */
  render(values: ReadonlyMap<string, string>): string;
}

const COMPILE = { noEscape: true, strict: true, knownHelpers: { secret: true }, knownHelpersOnly: true } as const;
const USE = 'the only expression a template may hold is {{ secret "NAME" }} (write \\{{ for literal braces)';

interface Location {
  start: { line: number; column: number };
}

/** A template that cannot be used: says where (file:line:column, 1-based) and why. */
export function templateError(file: string, where: { line: number; column: number } | undefined, why: string): SealcacheError {
  const at = where ? `${file}:${where.line}:${where.column}` : file;
  return new SealcacheError("bad_template", `template ${at}: ${why}`);
}

/** Parses and checks `text`; throws a bad_template error naming the line and column. */
export function compileTemplate(file: string, text: string): Template {
  const ast = parse(file, text);
  const names: string[] = [];
  for (const node of ast.body) {
    const at = (n: { loc: Location }) => ({ line: n.loc.start.line, column: n.loc.start.column + 1 });
    if (node.type === "ContentStatement" || node.type === "CommentStatement") continue;
    if (node.type !== "MustacheStatement") throw templateError(file, at(node), `${describe(node.type)} is not supported; ${USE}`);
    const m = node as hbs.AST.MustacheStatement;
    const path = m.path.type === "PathExpression" ? (m.path as hbs.AST.PathExpression).original : undefined;
    const arg = m.params[0];
    if (path !== "secret" || m.params.length !== 1 || arg?.type !== "StringLiteral" || (m.hash && m.hash.pairs.length > 0)) {
      throw templateError(file, at(m), USE);
    }
    const name = (arg as hbs.AST.StringLiteral).value;
    const problem = nameProblem(name);
    if (problem) throw templateError(file, at(arg), `secret name ${JSON.stringify(name.slice(0, 64))} ${problem}`);
    if (!names.includes(name)) names.push(name);
  }
  const run = Handlebars.create().compile(ast, COMPILE);
  return {
    file,
    names,
    render(values) {
      const secret = (name: unknown) => {
        // Only names the walk above found reach here; a value that was not fetched is an error, never "".
        const v = typeof name === "string" ? values.get(name) : undefined;
        if (v === undefined) throw templateError(file, undefined, `no value was fetched for ${JSON.stringify(String(name).slice(0, 64))}`);
        return v;
      };
      return run({}, { helpers: { secret }, allowProtoPropertiesByDefault: false, allowProtoMethodsByDefault: false });
    },
  };
}

function parse(file: string, text: string): hbs.AST.Program {
  // Jison's parser throws a bare Error whose text quotes the template around the
  // fault; ours names the position and the tokens instead. Parsing is synchronous,
  // so setting the hook for this call cannot race another.
  const parser = (Handlebars as unknown as { Parser: unknown }).Parser as { parseError?: (msg: string, hash: ParseHash) => never; lexer?: { yylloc?: Yylloc } };
  const saved = Object.hasOwn(parser, "parseError") ? parser.parseError : undefined;
  parser.parseError = (_msg, hash) => {
    const loc = parser.lexer?.yylloc ?? hash.loc;
    const where = loc ? { line: loc.first_line, column: loc.first_column + 1 } : undefined;
    const why =
      hash.token === "EOF" || hash.token === 1
        ? "the template ends inside an expression (a {{ with no }} after it)"
        : hash.token === "INVALID"
          ? "unexpected text inside {{ }}"
          : `unexpected ${String(hash.token)}`;
    throw templateError(file, where, `syntax error: ${why}; ${USE}`);
  };
  try {
    return Handlebars.parse(text);
  } catch (e) {
    if (e instanceof SealcacheError) throw e;
    // Handlebars' own exceptions (a block closed by the wrong name) carry a position.
    const h = e as { lineNumber?: number; column?: number; message?: string };
    const where = typeof h.lineNumber === "number" ? { line: h.lineNumber, column: (h.column ?? 0) + 1 } : undefined;
    throw templateError(
      file,
      where,
      `syntax error: ${String(h.message ?? e)
        .split("\n")[0]!
        .replace(/ - \d+:\d+$/, "")}`,
    );
  } finally {
    if (saved) parser.parseError = saved;
    else delete parser.parseError;
  }
}

interface Yylloc {
  first_line: number;
  first_column: number;
}
interface ParseHash {
  token?: string | number;
  loc?: Yylloc;
}

function describe(type: string): string {
  switch (type) {
    case "BlockStatement":
    case "DecoratorBlock":
      return "a block ({{#...}})";
    case "PartialStatement":
    case "PartialBlockStatement":
      return "a partial ({{> ...}})";
    default:
      return `a ${type}`;
  }
}
