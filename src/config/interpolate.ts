/**
 * Replaces `${NAME}` in every string of a parsed YAML tree with the environment
 * variable's value; `$${` stays a literal `${`. An unset variable is an error
 * naming the key path, never an empty string (that is how a gateway ends up
 * talking to "https://:8200").
 */
export function interpolateEnv(node: unknown, env: NodeJS.ProcessEnv, at: string[], problems: string[]): unknown {
  if (typeof node === "string") return interpolateString(node, env, at, problems);
  if (Array.isArray(node)) return node.map((v, i) => interpolateEnv(v, env, [...at, String(i)], problems));
  if (node !== null && typeof node === "object") {
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(node)) out[k] = interpolateEnv(v, env, [...at, k], problems);
    return out;
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
        problems.push(`${at.join(".")}: environment variable ${name} is not set`);
        return "";
      }
      return v;
    }
    problems.push(`${at.join(".")}: ${JSON.stringify(whole)} is not a valid reference; use \${NAME} with NAME made of letters, digits and _ (or $\${ for a literal)`);
    void bad;
    return "";
  });
}
