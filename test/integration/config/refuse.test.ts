import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import crypto from "node:crypto";
import fs from "node:fs";
import path from "node:path";
import { describe, test } from "node:test";
import { stringify } from "yaml";
import { MAIN, demoConfig, launch } from "../../support/daemon.js";
import { assertNoLeaks } from "../../support/planted.js";
import { tmpDir } from "../../support/tmp.js";

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** `sealcache daemon --config FILE`, killed if it is still running after `ms` (it must not start). */
function daemonOn(file: string, ms = 10_000, opts: { args?: string[]; env?: NodeJS.ProcessEnv } = {}): Promise<Run> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [MAIN, "daemon", "--config", file, ...(opts.args ?? [])], {
      env: { ...process.env, ...opts.env },
      stdio: ["ignore", "pipe", "pipe"],
    });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (c: Buffer) => (stdout += c.toString("utf8")));
    child.stderr.on("data", (c: Buffer) => (stderr += c.toString("utf8")));
    const timer = setTimeout(() => child.kill("SIGKILL"), ms);
    child.on("error", reject);
    child.on("exit", (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

/** Every entry under `dir` with its mode, size, mtime and content hash. */
function snapshot(dir: string): Record<string, string> {
  const out: Record<string, string> = {};
  const walk = (d: string) => {
    for (const e of fs.readdirSync(d, { withFileTypes: true })) {
      const p = path.join(d, e.name);
      const st = fs.lstatSync(p);
      const hash = e.isFile() ? crypto.createHash("sha256").update(fs.readFileSync(p)).digest("hex") : "";
      out[path.relative(dir, p)] = `${st.mode.toString(8)} ${st.size} ${st.mtimeMs} ${hash}`;
      if (e.isDirectory()) walk(p);
    }
  };
  walk(dir);
  return out;
}

function assertRefused(r: Run, file: string, keyPath: string): void {
  assert.equal(r.code, 1, `exit code; stderr:\n${r.stderr}\nstdout:\n${r.stdout}`);
  assert.ok(r.stderr.includes(`invalid config ${file}`), `stderr names the file:\n${r.stderr}`);
  assert.ok(r.stderr.includes(`${keyPath}:`), `stderr names ${keyPath}:\n${r.stderr}`);
  assertNoLeaks(r.stdout + r.stderr, "daemon output on a bad config");
}

describe("the daemon refuses to start on a bad config", () => {
  test("misspelled key: exit 1, file and key path named, nothing created", async (t) => {
    const dir = tmpDir(t);
    const config = demoConfig(dir, { sync: { intervall: "30s" } });
    const file = path.join(dir, "sealcache.yaml");
    fs.writeFileSync(file, stringify(config));
    const before = snapshot(dir);
    const r = await daemonOn(file);
    assertRefused(r, file, "sync.intervall");
    assert.equal(fs.existsSync(String(config.data_dir)), false, "data_dir must not be created");
    assert.equal(fs.existsSync(String(config.socket)), false, "no socket");
    assert.deepEqual(snapshot(dir), before);
  });

  test("YAML syntax error: the line is named", async (t) => {
    const dir = tmpDir(t);
    const file = path.join(dir, "sealcache.yaml");
    fs.writeFileSync(file, `data_dir: ${path.join(dir, "data")}\nsocket: ${path.join(dir, "s.sock")}\nsync: { interval: 5m\nlog: { level: info }\n`);
    const r = await daemonOn(file);
    assert.equal(r.code, 1, r.stderr);
    assert.ok(r.stderr.includes(`invalid config ${file}`), r.stderr);
    assert.match(r.stderr, /line 4, column 1: YAML syntax/);
    assert.equal(fs.existsSync(path.join(dir, "data")), false);
  });

  test("a missing *_file is checked at start, before anything is touched", async (t) => {
    const dir = tmpDir(t);
    const config = demoConfig(dir, {
      mqtt: { url: "mqtts://broker:8883", ca_file: path.join(dir, "no-such-ca.pem") },
    });
    const file = path.join(dir, "sealcache.yaml");
    fs.writeFileSync(file, stringify(config));
    const r = await daemonOn(file);
    assertRefused(r, file, "mqtt.ca_file");
    assert.match(r.stderr, /mqtt\.ca_file: cannot read .*no-such-ca\.pem \(ENOENT\)/);
    assert.equal(fs.existsSync(String(config.data_dir)), false);
  });

  test("an existing cache is left byte for byte as it was", async (t) => {
    const dir = tmpDir(t);
    const good = demoConfig(dir);
    const d = await launch(t, dir, good, { waitFor: "synced" });
    assert.equal(await d.stop(), 0);
    const dataDir = String(good.data_dir);
    assert.ok(fs.existsSync(path.join(dataDir, "cache.db")) && fs.existsSync(path.join(dataDir, "kek.sealed")));
    const before = snapshot(dataDir);

    const bad = { ...good, secrets: { ...(good.secrets as object), "demo/extra": { provider: "lokal", path: "api-token" } } };
    fs.writeFileSync(d.configFile, stringify(bad));
    const r = await daemonOn(d.configFile);
    assertRefused(r, d.configFile, "secrets.demo/extra.provider");
    assert.match(r.stderr, /no provider named "lokal"; defined providers: demo/);
    assert.deepEqual(snapshot(dataDir), before, "data_dir must be untouched");
    assert.equal(fs.existsSync(String(good.socket)), false, "no socket left behind");
  });

  test("a bad environment override or flag is blamed on the variable or flag, not the file; a misspelt SEALCACHE_* name is refused", async (t) => {
    const dir = tmpDir(t);
    const config = demoConfig(dir);
    const file = path.join(dir, "sealcache.yaml");
    fs.writeFileSync(file, stringify(config));
    const cases: [string, { args?: string[]; env?: NodeJS.ProcessEnv }, string][] = [
      [
        "environment value",
        { env: { SEALCACHE_SYNC_INTERVAL: "abc" } },
        'environment SEALCACHE_SYNC_INTERVAL: expected a duration such as "30s", "5m" or "1h", got "abc"',
      ],
      [
        "flag value",
        { args: ["--log-level", "loud"] },
        'flag --log-level: must be one of "fatal", "error", "warn", "info", "debug", "trace", "silent", got "loud"',
      ],
      [
        "misspelt name",
        { env: { SEALCACHE_SYNC_INTERVALL: "1m" } },
        "environment SEALCACHE_SYNC_INTERVALL: not a config key (did you mean SEALCACHE_SYNC_INTERVAL?)",
      ],
    ];
    for (const [what, opts, issue] of cases) {
      const r = await daemonOn(file, 10_000, opts);
      assert.equal(r.code, 1, `${what}: exit code; stderr:\n${r.stderr}`);
      assert.ok(r.stderr.includes(`invalid config overrides (environment or flags) for ${file}:`), `${what}: the header does not blame the file:\n${r.stderr}`);
      assert.ok(!r.stderr.includes(`invalid config ${file}`), `${what}:\n${r.stderr}`);
      assert.ok(r.stderr.includes(issue), `${what}: stderr names the source:\n${r.stderr}`);
      assert.equal(fs.existsSync(String(config.data_dir)), false, `${what}: data_dir must not be created`);
    }
  });
});
