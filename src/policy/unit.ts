/**
 * systemd unit names: what a policy rule's `unit` means and how a caller's unit is
 * read from its cgroup. A process's unit is the first cgroup path component that
 * is not a slice, as `sd_pid_get_unit()` has it: `/system.slice/edge-agent.service`
 * is `edge-agent.service`, and a user's own services sit below `user@UID.service`,
 * so an account cannot start a process that looks like a system service.
 */

const UNIT_TYPES = ["service", "socket", "device", "mount", "automount", "swap", "target", "path", "timer", "slice", "scope"] as const;
const SUFFIX = new RegExp(`\\.(${UNIT_TYPES.join("|")})$`);
// systemd's VALID_CHARS plus `\` (escapes such as \x2d); at most 255 bytes.
const VALID = /^[A-Za-z0-9:_.\\@-]{1,255}$/;

/** `edge-agent` means `edge-agent.service`, as `systemctl` reads it. */
export function normaliseUnit(name: string): string {
  return SUFFIX.test(name) ? name : `${name}.service`;
}

/** Why a configured unit name can never be a process's unit, or undefined. */
export function unitProblem(name: string): string | undefined {
  if (!VALID.test(name) || name.startsWith(".")) return "is not a valid systemd unit name";
  if (name.endsWith(".slice")) return "is a slice; processes belong to the service or scope inside it, so name that";
  return undefined;
}

/**
 * The systemd unit of a process from the text of /proc/PID/cgroup: the unified
 * hierarchy (`0::/path`) first, the v1 `name=systemd` hierarchy otherwise.
 * Undefined when the process is in no unit (a login shell outside systemd, a
 * container's root cgroup) or the path cannot be read as one; such a caller
 * matches no `unit` rule.
 */
export function unitFromCgroup(text: string): string | undefined {
  let unified: string | undefined;
  let named: string | undefined;
  for (const line of text.split("\n")) {
    const m = /^(\d+):([^:]*):(.*)$/.exec(line);
    if (!m) continue;
    if (m[1] === "0" && m[2] === "") unified = m[3];
    else if (m[2]!.split(",").includes("name=systemd")) named = m[3];
  }
  return unitFromPath(unified) ?? unitFromPath(named);
}

function unitFromPath(path: string | undefined): string | undefined {
  if (path === undefined || !path.startsWith("/")) return undefined;
  for (const raw of path.split("/")) {
    if (raw === "") continue;
    // `..` appears when the reader is in a cgroup namespace below the process's cgroup.
    if (raw === "." || raw === "..") return undefined;
    // systemd prefixes a component with `_` when it would clash with a kernel name.
    const seg = raw.startsWith("_") ? raw.slice(1) : raw;
    if (seg.endsWith(".slice")) continue;
    return SUFFIX.test(seg) && VALID.test(seg) ? seg : undefined;
  }
  return undefined;
}
