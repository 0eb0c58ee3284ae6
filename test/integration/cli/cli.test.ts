import assert from "node:assert/strict";
import crypto from "node:crypto";
import fs from "node:fs";
import path from "node:path";
import { describe, test } from "node:test";
import { stringify } from "yaml";
import { DEMO_VALUES } from "../../support/planted.js";
import { cli, demoConfig, launch } from "../../support/daemon.js";
import { tmpDir } from "../../support/tmp.js";

const [API_TOKEN] = DEMO_VALUES;
const HOST_WARNING = /seal\.type host: the cache key is protected by a key file on the same disk; a stolen disk or SD card yields the cache/;
const mode = (p: string) => fs.statSync(p).mode & 0o777;

describe("sealcache CLI", () => {
  test("against a running daemon", async (t) => {
    const dir = tmpDir(t);
    const config = demoConfig(dir, {
      // A fleet channel whose broker is not there: status and doctor say so; nothing else is affected.
      mqtt: { url: "mqtt://127.0.0.1:1", device_id: "gw-17" },
    });
    const d = await launch(t, dir, config, { waitFor: "synced" });
    const c = ["--config", d.configFile];
    const dataDir = String(config.data_dir);

    await t.test("get: the value and a newline", async () => {
      const r = await cli(["get", "demo/api-token", ...c], { allowValues: true });
      assert.equal(r.code, 0, r.stderr);
      assert.equal(r.stdout, `${API_TOKEN}\n`);
      assert.equal(r.stderr, "");
    });

    await t.test("get --raw: exactly the bytes", async () => {
      const r = await cli(["get", "demo/api-token", "--raw", ...c], { allowValues: true });
      assert.equal(r.code, 0, r.stderr);
      assert.equal(r.stdout, API_TOKEN);
    });

    await t.test("get --json: the API object", async () => {
      const r = await cli(["get", "demo/kafka-password", "--json", ...c], { allowValues: true });
      assert.equal(r.code, 0, r.stderr);
      const j = JSON.parse(r.stdout);
      assert.equal(j.name, "demo/kafka-password");
      assert.equal(j.value, DEMO_VALUES[2]);
      assert.equal(j.version, 1);
      assert.equal(j.stale, false);
      assert.equal(typeof j.age_s, "number");
      assert.ok(!Number.isNaN(Date.parse(j.fetched_at)));
    });

    await t.test("list: names, state and versions, never values", async () => {
      const r = await cli(["list", ...c]);
      assert.equal(r.code, 0, r.stderr);
      const lines = r.stdout.trimEnd().split("\n");
      assert.match(lines[0]!, /^NAME\s+STATE\s+AGE\s+VERSION\s+PROVIDER\s+ERROR$/);
      assert.deepEqual(
        lines.slice(1).map((l) => l.split(/\s+/).slice(0, 2)),
        [
          ["demo/api-token", "ok"],
          ["demo/db-password", "ok"],
          ["demo/kafka-password", "ok"],
        ],
      );
      const j = JSON.parse((await cli(["list", "--json", "--prefix", "demo/db", ...c])).stdout);
      assert.deepEqual(
        j.secrets.map((s: { name: string }) => s.name),
        ["demo/db-password"],
      );
      assert.equal(j.secrets[0].value, undefined);
    });

    await t.test("status: health in words, with the host seal warning; --json", async () => {
      const r = await cli(["status", ...c]);
      assert.equal(r.code, 0, r.stderr);
      assert.match(r.stdout, /^sealcache \S+: ok, up \d+s\n/);
      assert.match(r.stdout, /^seal: host: host key .*host\.key$/m);
      assert.match(r.stdout, new RegExp(`^WARNING: ${HOST_WARNING.source}`, "m"));
      assert.match(r.stdout, /^secrets: 3 configured, 3 ok, 0 stale, 0 expired, 0 not synced, 0 with errors$/m);
      assert.match(r.stdout, /^demo\s+file\s+online\s/m);
      assert.match(r.stdout, /^mqtt: (connecting|backoff) \(mqtt:\/\/127\.0\.0\.1:1 as gw-17\)/m);
      const j = JSON.parse((await cli(["status", "--json", ...c])).stdout);
      assert.equal(j.status, "ok");
      assert.equal(j.sealed, false);
      assert.equal(j.seal.type, "host");
      assert.ok(
        j.seal.warnings.some((w: string) => HOST_WARNING.test(w)),
        JSON.stringify(j.seal),
      );
    });

    await t.test("refresh: all, one by name, --json", async () => {
      const all = await cli(["refresh", ...c]);
      assert.equal(all.code, 0, all.stderr);
      assert.equal(all.stdout, "refresh queued for 3 secrets\n");
      const one = await cli(["refresh", "demo/api-token", "--json", ...c]);
      assert.equal(one.code, 0, one.stderr);
      assert.deepEqual(JSON.parse(one.stdout), { queued: ["demo/api-token"] });
    });

    await t.test("doctor: ok on a healthy setup, warns about the host seal and a broker out of reach", async () => {
      const r = await cli(["doctor", ...c]);
      assert.equal(r.code, 0, r.stdout + r.stderr);
      const lines = r.stdout.trimEnd().split("\n");
      assert.deepEqual(
        lines.filter((l) => l.startsWith("fail")),
        [],
      );
      for (const want of [
        `ok    config: ${d.configFile} is valid`,
        `ok    data_dir: ${dataDir} is private (0700)`,
        `ok    cache: ${path.join(dataDir, "cache.db")} mode 0600`,
        `ok    seal: ${path.join(dataDir, "kek.sealed")} present`,
        `ok    socket: daemon answers on ${d.socket}: ok`,
        "ok    backend: demo: online",
      ]) {
        assert.ok(lines.includes(want), `missing ${JSON.stringify(want)} in:\n${r.stdout}`);
      }
      assert.ok(
        lines.some((l) => l.startsWith("warn  seal: ") && HOST_WARNING.test(l)),
        r.stdout,
      );
      assert.ok(
        lines.some((l) => /^warn {2}broker: mqtt:\/\/127\.0\.0\.1:1: /.test(l)),
        r.stdout,
      );
      const j = JSON.parse((await cli(["doctor", "--json", ...c])).stdout);
      assert.equal(j.ok, true);
      assert.ok(j.checks.some((x: { check: string; level: string }) => x.check === "socket" && x.level === "ok"));
    });

    await t.test("doctor: exit 1 and a fail line naming the folder and its mode when data_dir is 0755", async () => {
      fs.chmodSync(dataDir, 0o755);
      try {
        const r = await cli(["doctor", ...c]);
        assert.equal(r.code, 1, r.stdout);
        const fails = r.stdout.split("\n").filter((l) => l.startsWith("fail"));
        assert.deepEqual(fails, [`fail  data_dir: data_dir ${dataDir} has mode 0755, open to group or others; run: chmod 700 ${dataDir}`]);
        const j = JSON.parse((await cli(["doctor", "--json", ...c])).stdout);
        assert.equal(j.ok, false);
      } finally {
        fs.chmodSync(dataDir, 0o700);
      }
    });

    await t.test("exit 3: not found", async () => {
      const g = await cli(["get", "demo/nope", ...c]);
      assert.equal(g.code, 3);
      assert.equal(g.stdout, "");
      assert.equal(g.stderr, 'sealcache: not_found: no secret named "demo/nope" is configured\n');
      const r = await cli(["refresh", "demo/nope", ...c]);
      assert.equal(r.code, 3, r.stderr);
    });

    await t.test("exit 2: usage errors", async () => {
      const cases: [string[], RegExp][] = [
        [["frobnicate", ...c], /^sealcache: unknown command "frobnicate"; see sealcache --help\n$/],
        [["get", "demo/api-token", "--bogus", ...c], /^sealcache: unknown option --bogus; see sealcache --help\n$/],
        [["get", ...c], /^sealcache: get takes one secret name: sealcache get NAME \[--json\|--raw\]\n$/],
        [["get", "a", "b", ...c], /^sealcache: get takes one secret name/],
        [["refresh", "a", "b", ...c], /^sealcache: refresh takes at most one secret name/],
        [["get", "Bad/Name", ...c], /^sealcache: bad_request: secret name "Bad\/Name" must match/],
      ];
      for (const [args, stderr] of cases) {
        const r = await cli(args);
        assert.equal(r.code, 2, `${args.join(" ")}: ${r.stderr}`);
        assert.match(r.stderr, stderr);
        assert.equal(r.stdout, "");
      }
      const bare = await cli([]);
      assert.equal(bare.code, 2, "no command: help on stdout, usage exit");
      assert.match(bare.stdout, /^NAME\n {4}sealcache - /);
    });

    await t.test("exit 5: a socket nobody listens on is unavailable, and the message names it", async () => {
      const sock = path.join(dir, "nobody.sock");
      const r = await cli(["get", "demo/api-token", "--socket", sock]);
      assert.equal(r.code, 5);
      assert.equal(r.stdout, "");
      assert.equal(
        r.stderr,
        `sealcache: unavailable: cannot reach the daemon at ${sock} (ENOENT): is the daemon running? (systemctl status sealcache, or pass --socket)\n`,
      );
    });
  });

  test("exit 4: a policy allowing uid 0 only demo/api-token", async (t) => {
    const dir = tmpDir(t);
    const uid = process.getuid?.() ?? 0;
    const d = await launch(t, dir, demoConfig(dir, { policy: [{ match: { uid }, allow: ["demo/api-token"] }] }), { waitFor: "synced" });
    const c = ["--config", d.configFile];
    const ok = await cli(["get", "demo/api-token", ...c], { allowValues: true });
    assert.equal(ok.code, 0, ok.stderr);
    assert.equal(ok.stdout, `${API_TOKEN}\n`);
    const denied = await cli(["get", "demo/db-password", ...c]);
    assert.equal(denied.code, 4);
    assert.equal(denied.stdout, "");
    assert.match(
      denied.stderr,
      new RegExp(`^sealcache: forbidden: caller uid ${uid} \\(pid \\d+\\) may not read "demo/db-password"; see the policy section of the config\\n$`),
    );
    const raw = await cli(["get", "demo/kafka-password", "--raw", ...c]);
    assert.equal(raw.code, 4);
    assert.equal(raw.stdout, "");
    const refresh = await cli(["refresh", ...c]);
    assert.equal(refresh.code, 4, "refresh needs admin: true");
    assert.match(refresh.stderr, /may not trigger a refresh; it needs a policy rule with admin: true/);
    const list = JSON.parse((await cli(["list", "--json", ...c])).stdout);
    assert.deepEqual(
      list.secrets.map((s: { name: string }) => s.name),
      ["demo/api-token"],
    );
  });

  test("exit 5: the daemon is not running; the message names the config's socket", async (t) => {
    const dir = tmpDir(t);
    const d = await launch(t, dir, demoConfig(dir), { waitFor: "socket" });
    assert.equal(await d.stop(), 0);
    for (const cmd of [["get", "demo/api-token"], ["list"], ["status"], ["refresh"]]) {
      const r = await cli([...cmd, "--config", d.configFile]);
      assert.equal(r.code, 5, `${cmd.join(" ")}: ${r.stderr}`);
      assert.ok(r.stderr.startsWith(`sealcache: unavailable: cannot reach the daemon at ${d.socket} (`), r.stderr);
      assert.match(r.stderr, /is the daemon running\?/);
    }
  });

  test("init: creates data_dir 0700 and kek.sealed 0600; refuses a second time with exit 1; the daemon uses the key", async (t) => {
    const dir = tmpDir(t);
    const config = demoConfig(dir);
    const dataDir = String(config.data_dir);
    const file = path.join(dir, "sealcache.yaml");
    fs.writeFileSync(file, stringify(config));
    const kek = path.join(dataDir, "kek.sealed");

    const first = await cli(["init", "--config", file]);
    assert.equal(first.code, 0, first.stderr);
    assert.equal(first.stdout, `sealed a new cache key in ${kek} (seal.type host)\n`);
    assert.match(first.stderr, new RegExp(`^WARNING: ${HOST_WARNING.source}`));
    assert.equal(mode(dataDir), 0o700);
    assert.equal(mode(kek), 0o600);
    const hash = () => crypto.createHash("sha256").update(fs.readFileSync(kek)).digest("hex");
    const before = hash();

    const second = await cli(["init", "--config", file]);
    assert.equal(second.code, 1, second.stderr);
    assert.equal(second.stdout, "");
    assert.equal(second.stderr, `sealcache: init: ${kek} already exists; the cache is initialised (rotate-kek replaces a key)\n`);
    assert.equal(hash(), before, "the sealed key is not replaced");

    const again = await cli(["init", "--json", "--config", file]);
    assert.equal(again.code, 1);

    const d = await launch(t, dir, config, { waitFor: "synced" });
    const r = await d.get("/v1/secrets/demo/api-token?format=raw");
    assert.equal(r.status, 200);
    assert.equal(r.body, API_TOKEN);
    assert.equal(hash(), before, "the daemon unsealed the key init made");
  });

  test("--help and -h: the command list and exit codes, exit 0", async () => {
    for (const flag of ["--help", "-h"]) {
      const r = await cli([flag]);
      assert.equal(r.code, 0);
      assert.equal(r.stderr, "");
      for (const cmd of ["daemon", "get NAME", "list", "status", "refresh [NAME]", "init", "doctor", "version"]) {
        assert.match(r.stdout, new RegExp(`^    ${cmd.replace(/[[\]]/g, "\\$&")}\\s`, "m"), `${cmd} missing from ${flag}`);
      }
      assert.match(r.stdout, /0 ok, 1 failure, 2 usage, 3 not found, 4 forbidden, 5 unavailable/);
      assert.match(r.stdout, /--config FILE/);
    }
    const h = await cli(["get", "--help"]);
    assert.equal(h.code, 0);
    assert.match(h.stdout, /^COMMANDS$/m);
  });
});
