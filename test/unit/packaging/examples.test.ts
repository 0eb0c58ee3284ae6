// The example units and template in packaging/examples (installed by the .deb
// under /usr/share/doc/sealcache/examples) are what an operator copies: each
// sealcache command line in them must be one the CLI accepts, and the template
// must compile, naming the secrets the units are allowed.
import assert from "node:assert/strict";
import fs from "node:fs";
import path from "node:path";
import { test } from "node:test";
import { parseCommandLine } from "../../../src/cli/args.js";
import { compileTemplate } from "../../../src/cli/render/template.js";
import { ROOT } from "../../support/daemon.js";

const DIR = path.join(ROOT, "packaging/examples");

/** systemd's Exec*= lines of a unit, continuation lines joined. */
function execLines(unit: string): string[] {
  const joined = fs.readFileSync(unit, "utf8").replace(/\\\n\s*/g, "");
  return joined
    .split("\n")
    .filter((l) => /^Exec(Start|StartPre|Reload)=/.test(l))
    .map((l) => l.slice(l.indexOf("=") + 1));
}

/** Words as systemd splits them: whitespace, with '...' and "..." quoting. */
function words(line: string): string[] {
  const out: string[] = [];
  for (const m of line.matchAll(/'([^']*)'|"((?:[^"\\]|\\.)*)"|(\S+)/g)) out.push(m[1] ?? m[2] ?? m[3]!);
  return out;
}

test("every sealcache command line in the example units is one the CLI accepts", () => {
  const units = fs.readdirSync(DIR).filter((f) => f.endsWith(".service"));
  assert.deepEqual(units.sort(), ["edge-agent-exec.service", "edge-agent-render-watch.service", "edge-agent-render.service"]);
  const commands = new Set<string>();
  for (const u of units) {
    for (const line of execLines(path.join(DIR, u))) {
      const [cmd, ...argv] = words(line);
      if (cmd !== "/usr/bin/sealcache") continue;
      const parsed = parseCommandLine(argv);
      commands.add(parsed.command!);
      if (parsed.command === "exec") {
        assert.ok(parsed.rest && parsed.rest.length > 0, `${u}: exec without a command`);
        assert.ok((parsed.lists.env ?? []).length > 0 && parsed.lists.env!.every((e) => /^[A-Z_]+=[a-z0-9/_-]+$/.test(e)), `${u}: ${line}`);
      }
      if (parsed.command === "render") assert.deepEqual(parsed.lists.template, ["/etc/edge-agent/agent.yaml.tpl"], u);
    }
  }
  assert.deepEqual([...commands].sort(), ["exec", "render"]);
});

test("the example template compiles and names the secrets the policy comments allow", () => {
  const file = path.join(DIR, "agent.yaml.tpl");
  const t = compileTemplate(file, fs.readFileSync(file, "utf8"));
  assert.deepEqual(t.names, ["kafka/username", "kafka/password"]);
  const text = t.render(
    new Map([
      ["kafka/username", "pipeline"],
      ["kafka/password", "pw"],
    ]),
  );
  assert.match(text, /^ {2}password: "pw"$/m);
  assert.match(text, /^# \{\{ secret "NAME" \}\} is replaced/m, "the escaped braces in the comment come out as they are");
});
