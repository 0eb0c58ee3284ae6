// Which better-sqlite3 addon the store loads. better-sqlite3 uses V8's API directly,
// so a build loads only into the Node ABI (process.versions.modules) it was compiled
// for. A .deb/.rpm therefore carries one build per supported Node major, as
// native/better_sqlite3-node-v<ABI>.node beside the bundle's main.mjs
// (packaging/native.mjs makes them), and this picks the one for the running Node.
// In a checkout there is no native/ beside main.mjs (or no main.mjs at all, under
// tsx), and node_modules' own build, compiled for this Node by npm ci, is used.
//
// The package is found from this module's own URL, not from a variable a launcher
// sets: the packaged code then works however it is started (the unit, the
// /usr/bin/sealcache shim, `node /usr/lib/sealcache/main.mjs` by hand, a test), and
// a SEALCACHE_* variable would read as a config key (src/config/overrides.ts derives
// those from the schema) while being none.
import fs from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { SealcacheError } from "../errors.js";

/** The package has no better-sqlite3 build for the running Node. */
export class NativeBindingError extends SealcacheError {
  constructor(message: string) {
    super("config", message);
    this.name = "NativeBindingError";
  }
}

export function isNativeBindingError(e: unknown): e is NativeBindingError {
  return e instanceof NativeBindingError;
}

export interface BindingLookup {
  /** The URL of the code asking; tests point it into a fake bundle. Default: this module's. */
  moduleUrl?: string;
  /** Default: process.versions. */
  versions?: { node: string; modules: string };
}

const BINDING = /^better_sqlite3-node-v(\d+)\.node$/;

/**
 * better-sqlite3's `nativeBinding` option: the packaged build for this Node's ABI,
 * or undefined outside a package. Throws NativeBindingError when the package has
 * builds but none for this ABI.
 */
export function sqliteNativeBinding(lookup: BindingLookup = {}): string | undefined {
  const root = bundleRoot(fileURLToPath(lookup.moduleUrl ?? import.meta.url));
  if (root === undefined) return undefined;
  const dir = path.join(root, "native");
  if (!fs.existsSync(dir)) return undefined;
  const { node, modules } = lookup.versions ?? process.versions;
  const file = path.join(dir, `better_sqlite3-node-v${modules}.node`);
  if (fs.existsSync(file)) return file;
  throw missingBinding(dir, node, modules);
}

/**
 * The directory holding main.mjs, when this code runs from the bundle: esbuild's
 * code splitting puts it either in main.mjs itself or in chunks/ beside it, so only
 * the module's own directory and its parent are looked at (never further up, where
 * an unrelated main.mjs could be).
 */
function bundleRoot(moduleFile: string): string | undefined {
  const here = path.dirname(moduleFile);
  return [here, path.dirname(here)].find((d) => fs.existsSync(path.join(d, "main.mjs")));
}

function missingBinding(dir: string, node: string, abi: string): NativeBindingError {
  const releases = manifestReleases(dir);
  const carried = fs
    .readdirSync(dir)
    .map((f) => BINDING.exec(f)?.[1])
    .filter((a): a is string => a !== undefined)
    .sort((a, b) => Number(a) - Number(b));
  const what = carried.map((a) => (releases.has(a) ? `ABI ${a} (Node ${releases.get(a)})` : `ABI ${a}`));
  const majors = [...new Set(carried.map((a) => releases.get(a)?.split(".")[0]).filter((m) => m !== undefined))];
  const fix = majors.length
    ? `install Node.js ${majors.join(", ")} (the nodejs package) or a sealcache package built for Node ${node.split(".")[0]}`
    : carried.length
      ? "install a Node.js whose ABI (node -p process.versions.modules) is one of those"
      : "the package is damaged: reinstall sealcache";
  return new NativeBindingError(
    `this sealcache package has no SQLite (better-sqlite3) build for Node ${node} (ABI ${abi}): ` +
      `${dir} carries ${what.length ? what.join(", ") : "none"}; ${fix}`,
  );
}

/** ABI -> the Node release each build was compiled against, from native/manifest.json; empty if unreadable. */
function manifestReleases(dir: string): Map<string, string> {
  try {
    const m = JSON.parse(fs.readFileSync(path.join(dir, "manifest.json"), "utf8")) as { bindings?: { abi: number; node: string }[] };
    return new Map((m.bindings ?? []).map((b) => [String(b.abi), String(b.node)]));
  } catch {
    // Only the error message uses it; the file names alone still say which ABIs exist.
    return new Map();
  }
}
