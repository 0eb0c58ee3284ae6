import assert from "node:assert/strict";
import { spawn, execFileSync } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import { test } from "node:test";
import { ROOT, sleep } from "../../support/daemon.js";
import { req } from "../../support/http.js";
import { assertNoLeaks, databaseBytes, DEMO_VALUES } from "../../support/planted.js";
import { tmpDir } from "../../support/tmp.js";

/** The command between the `readme:demo` markers, exactly as an operator would paste it. */
function readmeCommand(marker: string): string {
  const readme = fs.readFileSync(path.join(ROOT, "README.md"), "utf8");
  const m = new RegExp(`<!-- readme:${marker} -->\\s*\`\`\`(?:sh|bash)?\\n([^\\n]+)\\n\`\`\``).exec(readme);
  assert.ok(m, `README.md has no readme:${marker} command block`);
  return m[1]!.trim();
}

test("the README's test command is what .ci/run runs", () => {
  const ci = fs.readFileSync(path.join(ROOT, ".ci/run"), "utf8");
  assert.ok(
    ci.split("\n").some((l) => l.trim() === readmeCommand("test")),
    ".ci/run must run the README's test command verbatim",
  );
});

test("the README's first command, run in a fresh copy, serves a demo secret", async (t) => {
  const dir = tmpDir(t, "sc-readme-");
  fs.cpSync(ROOT, dir, {
    recursive: true,
    filter: (src) => !/^\/(\.git|\.demo|\.cache|\.scratch|dist|test\/\.logs)(\/|$)/.test(src.slice(ROOT.length)),
  });
  const command = readmeCommand("demo");
  const child = spawn("bash", ["-c", command], { cwd: dir, detached: true, stdio: ["ignore", "pipe", "pipe"] });
  let out = "";
  child.stdout.on("data", (c: Buffer) => (out += c.toString()));
  child.stderr.on("data", (c: Buffer) => (out += c.toString()));
  t.after(() => {
    try {
      process.kill(-child.pid!, "SIGTERM");
    } catch {
      /* already gone */
    }
  });
  let exited: number | null = null;
  child.on("exit", (code) => (exited = code ?? -1));
  const until = Date.now() + 240_000;
  while (!out.includes("is serving on")) {
    assert.equal(exited, null, `${command} exited early:\n${out.slice(-2000)}`);
    assert.ok(Date.now() < until, `no "is serving on" within 240 s from: ${command}\n${out.slice(-2000)}`);
    await sleep(50);
  }
  const socket = path.join(dir, ".demo/sealcache.sock");
  const r = await req(socket, "/v1/secrets/demo/api-token");
  assert.equal(r.status, 200);
  assert.equal(r.json().value, DEMO_VALUES[0]);
  // The query commands it prints work as printed.
  const curlLine = out.split("\n").find((l) => l.trim().startsWith("curl --unix-socket"))!;
  assert.ok(curlLine, "the demo prints a curl command");
  const viaCurl = execFileSync("bash", ["-c", curlLine.trim()], { cwd: dir, stdio: ["ignore", "pipe", "ignore"] }).toString();
  assert.equal(JSON.parse(viaCurl).value, DEMO_VALUES[0]);
  const cliLine = out.split("\n").find((l) => l.includes("get demo/kafka-password"))!;
  assert.equal(execFileSync("bash", ["-c", cliLine.trim()], { cwd: dir }).toString(), `${DEMO_VALUES[2]}\n`);

  process.kill(-child.pid!, "SIGTERM");
  await new Promise((resolve) => child.on("exit", resolve));
  // Logs and the sealed cache hold no plaintext; the value was served, not logged.
  assertNoLeaks(
    out
      .split("\n")
      .filter((l) => l.startsWith("{"))
      .join("\n"),
    "demo daemon log",
  );
  const db = databaseBytes(path.join(dir, ".demo/data/cache.db"));
  assert.ok(db.length > 0);
  assertNoLeaks(db, "the demo cache.db");
});
