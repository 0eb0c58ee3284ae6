import { clip, keyPath, quote } from "./quote.js";

/**
 * Replaces `${NAME}` in every string of a parsed YAML tree with the environment
 * variable's value; `$${` stays a literal `${`. An unset variable is an error
 * naming the key path, never an empty string (that is how a gateway ends up
 * talking to "https://:8200").
 */
export function interpolateEnv(node: unknown, env: NodeJS.ProcessEnv, at: string[], problems: string[]): unknown {
  if (typeof node === "string") return interpolateString(node, env, at, problems);
  // In place, and with one key-path stack pushed and popped rather than a copy
  // per level: the tree is freshly parsed and ours, and at 100,000 secrets the
  // copies were most of the walk's time and garbage.
  if (Array.isArray(node)) {
    for (let i = 0; i < node.length; i++) {
      at.push(String(i));
      node[i] = interpolateEnv(node[i], env, at, problems);
      at.pop();
    }
    return node;
  }
  if (node !== null && typeof node === "object") {
    const obj = node as Record<string, unknown>;
    for (const k in obj) {
      const v = obj[k];
      if (typeof v !== "object" && (typeof v !== "string" || !v.includes("${"))) continue;
      at.push(k);
      obj[k] = interpolateEnv(v, env, at, problems);
      at.pop();
    }
    return obj;
  }
  return node;
}

const REF = /\$\$\{|\$\{([A-Za-z_][A-Za-z0-9_]*)\}|\$\{([^}]*)\}?/g;

function interpolateString(s: string, env: NodeJS.ProcessEnv, at: string[], problems: string[]): string {
  if (!s.includes("${")) return s;
  return s.replace(REF, (whole, name: string | undefined, bad: string | undefined) => {
    if (whole === "$${") return "${";
    if (name !== undefined) {
      const v = env[name];
      if (v === undefined) {
        problems.push(`${keyPath(at)}: environment variable ${clip(name)} is not set`);
        return "";
      }
      return v;
    }
    problems.push(`${keyPath(at)}: ${quote(whole)} is not a valid reference; use \${NAME} with NAME made of letters, digits and _ (or $\${ for a literal)`);
    void bad;
    return "";
  });
}
