import { randomBytes } from "node:crypto";
import fs from "node:fs";
import path from "node:path";
import { stringify } from "yaml";
import { tempDir } from "./cleanup.js";

export interface Fixture {
  readonly dir: string;
  readonly configFile: string;
  readonly socket: string;
  readonly secretsDir: string;
  readonly names: readonly string[];
}

/** bench/s00001 …: fixed width, so every response body has the same size. */
export function secretName(i: number): string {
  return `bench/s${String(i).padStart(5, "0")}`;
}

/**
 * A temp dir with `count` secrets, one file each under secrets/ (32 base64 chars,
 * like an API token), and a daemon config serving them from the file provider.
 * The 1 h interval keeps the sync engine quiet while a bench runs.
 */
export function writeFixture(count: number): Fixture {
  const dir = tempDir();
  const secretsDir = path.join(dir, "secrets");
  fs.mkdirSync(secretsDir, { mode: 0o700 });
  const names: string[] = [];
  const secrets: Record<string, { provider: string; path: string }> = {};
  for (let i = 1; i <= count; i++) {
    const name = secretName(i);
    const file = path.basename(name);
    fs.writeFileSync(path.join(secretsDir, file), randomBytes(24).toString("base64"), { mode: 0o600 });
    secrets[name] = { provider: "files", path: file };
    names.push(name);
  }
  const socket = path.join(dir, "s.sock");
  const config = {
    data_dir: path.join(dir, "data"),
    socket,
    seal: { type: "host" },
    sync: { interval: "1h" },
    providers: { files: { type: "file", dir: secretsDir } },
    secrets,
    log: { level: "warn" },
  };
  const configFile = path.join(dir, "sealcache.yaml");
  fs.writeFileSync(configFile, stringify(config));
  return { dir, configFile, socket, secretsDir, names };
}
