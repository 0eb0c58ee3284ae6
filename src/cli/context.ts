import fs from "node:fs";
import path from "node:path";
import { DEFAULT_CONFIG_PATH, loadConfig, type LoadedConfig, type Override } from "../config/load.js";
import type { Config } from "../config/schema.js";
import { isConfigError } from "../errors.js";
import type { Target } from "./client.js";

export interface GlobalOptions {
  readonly config: string | undefined;
  readonly socket: string | undefined;
  readonly dataDir: string | undefined;
  readonly logLevel: string | undefined;
  readonly json: boolean;
}

export interface Io {
  out(text: string | Uint8Array): void;
  err(text: string): void;
  readonly isTTY: boolean;
}

/**
 * CLI flags as config overrides. Path flags are taken from the working directory,
 * as a shell user expects (relative paths in the file are taken from its folder).
 */
export function overridesOf(g: GlobalOptions): Record<string, Override> {
  const o: Record<string, Override> = {};
  if (g.socket) o.socket = { value: path.resolve(g.socket), source: "flag --socket" };
  if (g.dataDir) o.data_dir = { value: path.resolve(g.dataDir), source: "flag --data-dir" };
  if (g.logLevel) o["log.level"] = { value: g.logLevel, source: "flag --log-level" };
  return o;
}

export function configPath(g: GlobalOptions): string {
  return g.config ?? process.env.SEALCACHE_CONFIG ?? DEFAULT_CONFIG_PATH;
}

export function loadFull(g: GlobalOptions, checkFiles: boolean): LoadedConfig {
  return loadConfig({ file: configPath(g), overrides: overridesOf(g), checkFiles });
}

export const DEFAULT_SOCKET = "/run/sealcache/sealcache.sock";

/**
 * Where the daemon listens, for the commands that only talk to it. A client that
 * cannot read the default config (not in the right group, no file) still works
 * with the default socket; an explicit --config that is broken is an error. When
 * the default config does not exist at all, a missing default socket most likely
 * means the daemon's config is elsewhere, and the error says so.
 */
export function socketFor(g: GlobalOptions): Target & { config: Config | undefined } {
  if (g.socket) return { socket: g.socket, config: undefined };
  if (process.env.SEALCACHE_SOCKET) return { socket: process.env.SEALCACHE_SOCKET, config: undefined };
  try {
    const { config } = loadFull(g, false);
    return { socket: config.socket, config };
  } catch (e) {
    const explicit = g.config !== undefined || process.env.SEALCACHE_CONFIG !== undefined;
    if (explicit || !isConfigError(e) || !/cannot read the config file/.test(e.message)) throw e;
    const whenAbsent = fs.existsSync(DEFAULT_CONFIG_PATH)
      ? undefined
      : `the default config ${DEFAULT_CONFIG_PATH} was not found either; if the daemon runs with another config, pass --config FILE or set ` +
        `SEALCACHE_CONFIG=FILE (or --socket PATH)`;
    return { socket: DEFAULT_SOCKET, config: undefined, whenAbsent };
  }
}
