import { randomBytes } from "node:crypto";
import fs from "node:fs";
import path from "node:path";
import { stringify } from "yaml";
import { tempDir } from "./cleanup.js";

export interface Fixture {
  readonly dir: string;
  readonly configFile: string;
  readonly socket: string;
  readonly dataDir: string;
  readonly secretsDir: string;
  readonly names: readonly string[];
}

export interface FixtureOptions {
  /** Parent of the temp dir (default os.tmpdir()); the flash bench needs a real disk. */
  readonly base?: string;
  /**
   * Parent of the secrets folder when it should live apart from the data_dir: on a
   * gateway the file provider reads a tmpfs (/run/secrets, a Kubernetes secret
   * mount), and creating 100,000 files on this machine's ext4 takes 30 s.
   */
  readonly sourceBase?: string;
  /** The config's `sync` section; default `{ interval: "1h" }`, which keeps the sync engine quiet. */
  readonly sync?: Record<string, unknown>;
}

/** bench/s000001 …: fixed width up to 999,999, so every response body has the same size. */
export function secretName(i: number): string {
  return `bench/s${String(i).padStart(6, "0")}`;
}

/** The file under secrets/ that holds secret `name`. */
function fileOf(name: string): string {
  return path.basename(name);
}

export function namesFor(count: number): string[] {
  return Array.from({ length: count }, (_, i) => secretName(i + 1));
}

/**
 * A temp dir with `count` secrets, one file each under secrets/ (32 base64 chars,
 * like an API token), and a daemon config serving them from the file provider.
 */
export function writeFixture(count: number, o: FixtureOptions = {}): Fixture {
  const dir = tempDir("scb-", o.base);
  const secretsDir = o.sourceBase ? tempDir("scb-src-", o.sourceBase) : path.join(dir, "secrets");
  if (!o.sourceBase) fs.mkdirSync(secretsDir, { mode: 0o700 });
  const all = namesFor(count);
  for (const name of all) fs.writeFileSync(path.join(secretsDir, fileOf(name)), randomBytes(24).toString("base64"), { mode: 0o600 });
  return configFixture(dir, all, secretsDir, o);
}

/**
 * The config of a fixture in `dir` (data_dir `dir/data`, socket `dir/s.sock`)
 * serving `names` from `secretsDir`, which need not exist: a copy of a warm cache
 * points it at a missing folder so that every answer comes from the cache.
 */
export function configFixture(dir: string, all: readonly string[], secretsDir: string, o: Pick<FixtureOptions, "sync"> = {}): Fixture {
  const socket = path.join(dir, "s.sock");
  const dataDir = path.join(dir, "data");
  const head = {
    data_dir: dataDir,
    socket,
    seal: { type: "host" },
    sync: o.sync ?? { interval: "1h" },
    providers: { files: { type: "file", dir: secretsDir } },
    log: { level: "warn" },
  };
  const configFile = path.join(dir, "sealcache.yaml");
  fs.writeFileSync(configFile, stringify(head) + secretsYaml(all));
  return { dir, configFile, socket, dataDir, secretsDir, names: all };
}

/**
 * The `secrets:` section in the block style an operator (or `yaml`) writes, built
 * by hand: stringifying 100,000 entries with `yaml` takes two seconds per config.
 */
export function secretsYaml(all: readonly string[]): string {
  const lines = ["secrets:"];
  for (const name of all) lines.push(`  ${name}:`, "    provider: files", `    path: ${fileOf(name)}`);
  return lines.join("\n") + "\n";
}
