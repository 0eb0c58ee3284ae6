import fs from "node:fs";

/** Local account names from /etc/passwd and /etc/group (no NSS: a gateway's accounts are local). */
export interface Accounts {
  uidOf(user: string): number | undefined;
  gidOf(group: string): number | undefined;
}

export function readAccounts(passwd = "/etc/passwd", group = "/etc/group"): Accounts {
  const users = parse(passwd);
  const groups = parse(group);
  return { uidOf: (u) => users.get(u), gidOf: (g) => groups.get(g) };
}

/** The name of a local group, for messages ("join the group sealcache"). */
export function groupNameOf(gid: number, group = "/etc/group"): string | undefined {
  for (const [name, id] of parse(group)) if (id === gid) return name;
  return undefined;
}

function parse(file: string): Map<string, number> {
  const out = new Map<string, number>();
  let text = "";
  try {
    text = fs.readFileSync(file, "utf8");
  } catch {
    return out;
  }
  for (const line of text.split("\n")) {
    const f = line.split(":");
    if (f.length >= 3 && f[0] && /^\d+$/.test(f[2]!)) out.set(f[0], Number(f[2]));
  }
  return out;
}
