import fs from "node:fs";
import net from "node:net";
import path from "node:path";
import type { Config } from "../../config/schema.js";
import { plural } from "../format.js";

type Add = (check: string, level: "ok" | "warn" | "fail", message: string) => void;

const AWS_SERVICE: Record<string, string> = { "aws-secrets-manager": "secretsmanager", "aws-ssm": "ssm", "aws-sts": "sts" };

/**
 * Backend checks doctor can make on its own while the daemon is not running
 * (before its first start, or stopped): the file provider's folder and files
 * (existence only, nothing is read), and whether each network backend accepts a
 * TCP connection. Credentials and paths inside a backend are the daemon's to
 * check: doctor fetches nothing, so it mints no Vault lease and reads no value.
 * `env` is not checked: the daemon's environment is not doctor's.
 */
export async function probeBackends(c: Config, add: Add): Promise<void> {
  for (const [name, opts] of Object.entries(c.providers)) {
    const o = opts as Record<string, unknown> & { type: string };
    const secrets = Object.values(c.secrets).filter((s) => s.provider === name);
    if (secrets.length === 0) continue;
    if (o.type === "file") {
      probeFiles(
        name,
        String(o.dir),
        secrets.map((s) => s.path),
        add,
      );
      continue;
    }
    const where = o.type === "vault" ? String(o.address) : awsEndpoint(o);
    if (where === undefined) continue;
    const problem = await connects(where);
    add(
      "backend",
      problem ? "warn" : "ok",
      `${name}: ${problem ? `cannot connect to ${where} (${problem})` : `${where} accepts connections`} (checked by doctor; the daemon checks ` +
        `credentials once it runs)`,
    );
  }
}

function probeFiles(name: string, dir: string, paths: string[], add: Add): void {
  try {
    if (!fs.statSync(dir).isDirectory()) return add("backend", "warn", `${name}: ${dir} is not a folder`);
  } catch (e) {
    return add(
      "backend",
      "warn",
      `${name}: folder ${dir} is not available (${(e as NodeJS.ErrnoException).code ?? "error"}); its ${plural(paths.length, "secret")} cannot be fetched`,
    );
  }
  const missing = [...new Set(paths)].filter((p) => !fs.existsSync(path.join(dir, p)));
  if (missing.length === 0) return add("backend", "ok", `${name}: ${dir} holds every configured file (${paths.length})`);
  const named = missing.slice(0, 10).join(", ") + (missing.length > 10 ? `, and ${missing.length - 10} more` : "");
  add("backend", "warn", `${name}: ${missing.length} of ${plural(new Set(paths).size, "configured file")} missing in ${dir}: ${named}`);
}

/** The endpoint an AWS provider calls: its `endpoint`, or the regional one when a region is known. */
function awsEndpoint(o: Record<string, unknown> & { type: string }): string | undefined {
  if (typeof o.endpoint === "string") return o.endpoint;
  const region = (o.region as string | undefined) ?? process.env.AWS_REGION ?? process.env.AWS_DEFAULT_REGION;
  const svc = AWS_SERVICE[o.type];
  return region && svc ? `https://${svc}.${region}.amazonaws.com` : undefined;
}

/** Undefined when `url`'s host accepts a TCP connection within 3 s, else why not. */
function connects(url: string): Promise<string | undefined> {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    return Promise.resolve("not a URL");
  }
  const port = Number(u.port || (u.protocol === "http:" ? 80 : 443));
  return new Promise((resolve) => {
    const s = net.connect({ host: u.hostname.replace(/^\[|\]$/g, ""), port, timeout: 3_000 });
    s.once("connect", () => {
      s.destroy();
      resolve(undefined);
    });
    s.once("timeout", () => {
      s.destroy();
      resolve("no answer within 3 s");
    });
    s.once("error", (e: NodeJS.ErrnoException) => resolve(e.code ?? e.message));
  });
}
