// npm 11 warns about (and with strict-allow-scripts refuses) dependencies whose
// install scripts package.json has not approved. The approvals must be exactly
// the packages whose scripts the build needs, read from the lockfile, so a new
// dependency with an install script is a reviewed change, not a warning.
import assert from "node:assert/strict";
import fs from "node:fs";
import path from "node:path";
import { test } from "node:test";
import { ROOT } from "../../support/daemon.js";

const read = (f: string) => JSON.parse(fs.readFileSync(path.join(ROOT, f), "utf8"));

test("package.json allowScripts covers exactly the locked packages that have install scripts: the build's approved, the rest denied", () => {
  const lock = read("package-lock.json") as { packages: Record<string, { hasInstallScript?: boolean }> };
  const withScripts = Object.entries(lock.packages)
    .filter(([p, v]) => p !== "" && v.hasInstallScript === true)
    .map(([p]) => p.slice(p.lastIndexOf("node_modules/") + "node_modules/".length))
    .sort();
  const allow = (read("package.json") as { allowScripts?: Record<string, boolean> }).allowScripts ?? {};
  assert.deepEqual(Object.keys(allow).sort(), withScripts, "every install script is a reviewed decision");
  const approved = Object.keys(allow)
    .filter((k) => allow[k] === true)
    .sort();
  // Native addons and esbuild's binary; protobufjs's postinstall (pulled in by the GCP SDK)
  // only prints a version-scheme warning, so it is denied.
  assert.deepEqual(approved, ["better-sqlite3", "esbuild", "koffi"], "the install scripts the build relies on");
  assert.ok(
    Object.values(allow).every((v) => typeof v === "boolean"),
    JSON.stringify(allow),
  );
});

test("the README's demo section says what the first install does", () => {
  const readme = fs.readFileSync(path.join(ROOT, "README.md"), "utf8");
  const demo = readme.slice(readme.indexOf("## Two commands"), readme.indexOf("<!-- readme:test -->"));
  assert.match(demo, /compiles `better-sqlite3`/);
  assert.match(demo, /allowScripts/);
});
