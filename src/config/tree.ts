import { keyPath } from "./quote.js";
import { MARK, type BadByte } from "./read.js";

/**
 * The least budget of values a config may expand to (see aliasBudget). YAML
 * aliases (`*name`) are references in js-yaml's tree, so parsing a "billion
 * laughs" document is cheap; it is every later walk over it (interpolation, the
 * schema) that would visit each of its 9^9 leaves.
 */
export const MIN_ALIAS_BUDGET = 1_000_000;

/**
 * How many values (mappings, lists and scalars, counting a subtree again each
 * time an alias re-uses it) a config of `chars` characters may hold. A document
 * without aliases needs at least two characters a value (`0,`), so it never
 * reaches one per character; only aliases re-using whole subtrees can.
 */
export function aliasBudget(chars: number): number {
  return Math.max(MIN_ALIAS_BUDGET, chars);
}

/**
 * One walk over the freshly parsed tree, before anything else walks it: refuses
 * an alias bomb once the walk has visited `budget` values (so it costs at most
 * that many steps, whatever the expansion), and names every key path whose key
 * or string value holds a NUL character (`"\0"` escapes included) or, when the
 * file held them, a NUL byte or invalid UTF-8 (the markers decodeConfig left).
 */
export function checkTree(root: unknown, budget: number, bad: BadByte | undefined): { problems: string[] } {
  const problems: string[] = [];
  const at: (string | number)[] = [];
  let visits = 0;
  const what = (s: string): string | undefined => {
    if (s.includes("\0")) return "contains a NUL character; config strings may not";
    if (bad && s.includes(MARK.nul)) return "contains a NUL byte; config strings may not";
    if (bad && s.includes(MARK.utf8)) return "contains bytes that are not valid UTF-8 (the config must be UTF-8 text)";
    return undefined;
  };
  const visit = (node: unknown): boolean => {
    if (++visits > budget) return false;
    if (typeof node === "string") {
      const p = what(node);
      if (p) problems.push(`${keyPath(at)}: ${p}`);
      return true;
    }
    if (node === null || typeof node !== "object") return true;
    if (Array.isArray(node)) {
      for (let i = 0; i < node.length; i++) {
        at.push(i);
        const ok = visit(node[i]);
        at.pop();
        if (!ok) return false;
      }
      return true;
    }
    for (const k of Object.keys(node)) {
      at.push(k);
      const p = what(k);
      if (p) problems.push(`${keyPath(at)}: the key ${p}`);
      const ok = visit((node as Record<string, unknown>)[k]);
      at.pop();
      if (!ok) return false;
    }
    return true;
  };
  if (!visit(root)) {
    return {
      problems: [`YAML aliases (*name) expand this config to more than ${budget} values; refused as an alias bomb (see "Config reference" in README.md)`],
    };
  }
  if (bad && problems.length === 0) {
    problems.push(
      `line ${bad.line}, column ${bad.column}: ${bad.kind === "nul" ? "a NUL byte" : "bytes that are not valid UTF-8"}; the config must be UTF-8 ` +
        `text without NUL bytes`,
    );
  }
  return { problems };
}
