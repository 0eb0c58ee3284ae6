import fs from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";

/** test/fixtures/config: good-*.yaml must load, bad-*.yaml must fail with their paired issues. */
export const FIXTURES = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../../fixtures/config");

/** The environment every fixture is loaded with: nothing from the real environment leaks in. */
export const FIXTURE_ENV: NodeJS.ProcessEnv = { GATEWAY_ID: "gw-17" };

export function fixtures(prefix: "good-" | "bad-"): string[] {
  return fs
    .readdirSync(FIXTURES)
    .filter((f) => f.startsWith(prefix) && f.endsWith(".yaml"))
    .sort();
}
