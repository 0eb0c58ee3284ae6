// What a new operator runs into after the first commands: our own message for an
// unknown option, JSON errors with --json, extra words refused, --help agreeing
// with the README, an empty prefix said as such, a bounded audit table, JSON
// bodies ending in a newline (curl), and counts in proper English.
import assert from "node:assert/strict";
import fs from "node:fs";
import path from "node:path";
import { describe, test } from "node:test";
import { COMMANDS } from "../../../src/cli/args.js";
import { cli, demoConfig, eventually, launch, ROOT } from "../../support/daemon.js";
import { raw } from "../../support/http.js";
import { tmpDir } from "../../support/tmp.js";

const ERROR_LINE = /^\{"error":"[a-z_]+","message":"[^\n]*"\}\n$/;

test("an unknown option, a misspelt one and a missing value: our message, a pointer to --help, exit 2", async () => {
  const cases: [string[], string][] = [
    [["get", "demo/x", "--bogus"], "sealcache: unknown option --bogus; see sealcache --help\n"],
    [["list", "--prefx", "demo/"], "sealcache: unknown option --prefx (did you mean --prefix?); see sealcache --help\n"],
    [["status", "-x"], "sealcache: unknown option -x; see sealcache --help\n"],
    [
      ["get", "demo/x", "--config"],
      "sealcache: option --config needs a value (--config VALUE, or --config=VALUE for one starting with -); see sealcache --help\n",
    ],
    [["get", "demo/x", "--raw=yes"], "sealcache: option --raw takes no value; see sealcache --help\n"],
    [["status", "--prefix", "demo/"], "sealcache: option --prefix does not apply to status: sealcache status; see sealcache --help\n"],
    [["get", "demo/x", "--raw", "--json"], '{"error":"usage","message":"--json and --raw exclude each other: sealcache get NAME [--json|--raw]"}\n'],
  ];
  for (const [args, stderr] of cases) {
    const r = await cli(args);
    assert.equal(r.code, 2, `${args.join(" ")}: ${r.stderr}`);
    assert.equal(r.stderr, stderr, args.join(" "));
    assert.equal(r.stdout, "");
  }
});

test("extra words are usage errors for every command that takes none, as for get a b", async () => {
  const cases: [string[], string][] = [
    [["list", "extra"], "sealcache: list takes no arguments: sealcache list [--prefix P] (for names starting with extra: sealcache list --prefix extra)\n"],
    [["status", "extra"], "sealcache: status takes no arguments: sealcache status\n"],
    [["doctor", "extra"], "sealcache: doctor takes no arguments: sealcache doctor\n"],
    [["rotate-kek", "extra"], "sealcache: rotate-kek takes no arguments: sealcache rotate-kek\n"],
    [["init", "extra"], "sealcache: init takes no arguments: sealcache init [--reseal [--recovery-key-file F]]\n"],
    [["daemon", "extra"], "sealcache: daemon takes no arguments: sealcache daemon\n"],
    [["get", "a", "b"], "sealcache: get takes one secret name: sealcache get NAME [--json|--raw]\n"],
  ];
  for (const [args, stderr] of cases) {
    const r = await cli([...args, "--socket", "/nonexistent/s.sock"]);
    assert.equal(r.code, 2, `${args.join(" ")}: ${r.stderr}`);
    assert.equal(r.stderr, stderr);
  }
  const help = await cli(["help", "get"]);
  assert.equal(help.code, 0, "help NAME is help");
  assert.match(help.stdout, /^COMMANDS$/m);
});

test("--json errors are one JSON line {error, message} on stderr, stdout empty, the exit status unchanged", async (t) => {
  const dir = tmpDir(t);
  const sock = path.join(dir, "nobody.sock");
  const cases: [string[], number, string, RegExp][] = [
    [["--json", "get", "demo/x", "--bogus"], 2, "usage", /^unknown option --bogus; see sealcache --help$/],
    [["--json", "list", "extra"], 2, "usage", /^list takes no arguments/],
    [["get", "demo/x", "--json", "--socket", sock], 5, "unavailable", /^cannot reach the daemon at .*nobody\.sock \(ENOENT\)/],
    [["--json", "status", "--config", path.join(dir, "none.yaml")], 1, "config", /cannot read the config file \(ENOENT\)/],
  ];
  for (const [args, code, error, message] of cases) {
    const r = await cli(args);
    assert.equal(r.code, code, `${args.join(" ")}: ${r.stderr}`);
    assert.equal(r.stdout, "", "stdout is for results only");
    assert.match(r.stderr, ERROR_LINE, args.join(" "));
    const j = JSON.parse(r.stderr);
    assert.deepEqual(Object.keys(j), ["error", "message"]);
    assert.equal(j.error, error);
    assert.match(j.message, message);
  }
  const help = await cli(["--help"]);
  assert.match(help.stdout, /--json +Machine-readable output on stdout; an error is then one JSON\n\s+line \{"error":CODE,"message":\.\.\.\} on stderr/);
});

describe("synopses: --help, the usage errors and the README say the same", () => {
  const readme = fs.readFileSync(path.join(ROOT, "README.md"), "utf8");
  const cliSection = readme.slice(readme.indexOf("\n## CLI\n"), readme.indexOf("\n## ", readme.indexOf("\n## CLI\n") + 1)).replace(/\s+/g, " ");

  test("every command's synopsis is a COMMANDS line of --help and appears in the README's CLI section", async () => {
    const help = (await cli(["--help"])).stdout;
    const lines = help.slice(help.indexOf("COMMANDS\n"), help.indexOf("\nOPTIONS\n")).split("\n");
    for (const [name, spec] of Object.entries(COMMANDS)) {
      if (name === "help") continue;
      assert.ok(
        lines.some((l) => l === `    ${spec.synopsis}` || l.startsWith(`    ${spec.synopsis}  `)),
        `--help shows ${JSON.stringify(spec.synopsis)}:\n${lines.join("\n")}`,
      );
      assert.ok(cliSection.includes(`\`${spec.synopsis}\``), `the README's CLI section shows \`${spec.synopsis}\``);
    }
  });

  test("the README's CLI section documents SEALCACHE_CONFIG and where --json errors go", () => {
    assert.match(cliSection, /`SEALCACHE_CONFIG`/);
    assert.match(cliSection, /`\{"error":CODE,"message":\.\.\.\}` on stderr/);
  });
});

test("against a daemon: an empty prefix, the audit table, JSON newlines, singular and plural", async (t) => {
  const dir = tmpDir(t);
  const base = demoConfig(dir);
  fs.writeFileSync(path.join(dir, "gcp.json"), "{}\n", { mode: 0o600 });
  const d = await launch(
    t,
    dir,
    {
      ...base,
      providers: { ...(base.providers as object), gcp: { type: "gcp-secret-manager", project: "fleet", credentials_file: path.join(dir, "gcp.json") } },
      secrets: { ...(base.secrets as object), "gcp/one": { provider: "gcp", path: "projects/fleet/secrets/one" } },
    },
    { waitFor: "socket" },
  );
  await eventually(async () => (await d.get("/v1/health")).json().secrets?.ok === 3, 10_000, "the demo secrets synced");
  const c = ["--config", d.configFile];

  await t.test("list --prefix that matches nothing says so, and how many names the account may read", async () => {
    const r = await cli(["list", "--prefix", "zzz", ...c]);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout, 'no names match the prefix "zzz" (this account may read 4 secrets: sealcache list)\n');
  });

  await t.test("audit: a 300-character name is cut with an ellipsis; no other row is widened", async () => {
    const long = "a".repeat(300);
    assert.equal((await d.get(`/v1/secrets/${long}`)).status, 400);
    assert.equal((await d.get("/v1/secrets/demo/api-token")).status, 200);
    const out = await eventually(
      async () => {
        const r = await cli(["audit", "--name", "demo/api-token", ...c]);
        const all = await cli(["audit", ...c]);
        return all.stdout.includes("aaaa") && r.stdout.includes("demo/api-token") ? all.stdout : undefined;
      },
      10_000,
      "both requests in the audit trail",
    );
    const lines = out.trimEnd().split("\n");
    const longRow = lines.find((l) => l.includes("aaaa"))!;
    assert.match(longRow, new RegExp(`\\s${"a".repeat(63)}…\\s`), longRow);
    const tokenRow = lines.find((l) => l.includes("demo/api-token"))!;
    // NAME is the 7th column; with the cut name at 64 characters the rows stay well under 300 wide.
    for (const l of lines) assert.ok(l.length < 220, `row of ${l.length} characters: ${l}`);
    assert.ok(tokenRow.length < 220);
    const j = JSON.parse((await cli(["audit", "--json", ...c])).stdout) as { entries: { name: string | null }[] };
    assert.ok(
      j.entries.some((e) => e.name === "a".repeat(256)),
      "--json keeps the recorded name whole",
    );
  });

  await t.test("JSON bodies on the socket end with a newline (curl), errors and HTTP-level refusals included", async () => {
    for (const p of ["/v1/health", "/v1/secrets", "/v1/secrets/demo/api-token", "/v1/secrets/demo/nope", "/v1/nope"]) {
      const r = await d.get(p);
      assert.ok(r.body.endsWith("}\n"), `${p} (${r.status}) ends with a newline: ${JSON.stringify(r.body.slice(-20))}`);
      assert.equal(Number(r.headers["content-length"]), Buffer.byteLength(r.body));
    }
    const rawRefusal = await raw(d.socket, `GET /${"x".repeat(3000)} HTTP/1.1\r\nHost: s\r\n\r\n`);
    assert.match(rawRefusal, /^HTTP\/1\.1 414 /);
    assert.ok(rawRefusal.endsWith("}\n"), `a parser-level refusal too: ${JSON.stringify(rawRefusal.slice(-40))}`);
    assert.equal((await d.get("/v1/secrets/demo/api-token?format=raw")).body.endsWith("\n"), false, "a raw value is the bytes alone");
    const g = await cli(["get", "demo/api-token", "--json", ...c], { allowValues: true });
    assert.ok(g.stdout.endsWith("}\n") && !g.stdout.endsWith("\n\n"), "get --json prints one line");
  });

  await t.test("1 secret, 4 secrets: singular and plural, not secret(s)", async () => {
    const one = await cli(["refresh", "demo/api-token", ...c]);
    assert.equal(one.stdout, "refresh queued for 1 secret\n");
    const all = await cli(["refresh", ...c]);
    assert.equal(all.stdout, "refresh queued for 4 secrets\n");
    for (const cmd of [["status"], ["doctor"], ["list"]]) {
      const r = await cli([...cmd, ...c]);
      assert.ok(!/\(s\)/.test(r.stdout + r.stderr), `${cmd[0]}: ${r.stdout}`);
    }
  });
});
