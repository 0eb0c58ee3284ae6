import assert from "node:assert/strict";
import fs from "node:fs";
import path from "node:path";
import { describe, test } from "node:test";
import { loadConfig } from "../../../src/config/load.js";
import { tmpDir } from "../../support/tmp.js";

describe("paths in the config", () => {
  test("relative paths resolve against the config file's folder, wherever the process runs", (t) => {
    const dir = tmpDir(t);
    const confDir = path.join(dir, "etc", "sealcache");
    fs.mkdirSync(confDir, { recursive: true });
    fs.writeFileSync(path.join(confDir, "token"), "not-a-secret\n");
    fs.writeFileSync(path.join(confDir, "ca.pem"), "ca\n");
    fs.writeFileSync(
      path.join(confDir, "sealcache.yaml"),
      [
        "data_dir: data",
        "socket: ../../run/s.sock",
        "providers:",
        "  local: { type: file, dir: ./secrets }",
        "  vault: { type: vault, address: 'https://v:8200', auth: { method: token, token_file: token } }",
        "mqtt: { url: 'mqtts://b:8883', ca_file: ca.pem }",
      ].join("\n") + "\n",
    );
    // Loaded through a relative path from a different working directory.
    assert.notEqual(process.cwd(), confDir);
    const rel = path.relative(process.cwd(), path.join(confDir, "sealcache.yaml"));
    const { config: c, file } = loadConfig({ file: rel, env: {}, checkFiles: true });
    assert.equal(file, path.join(confDir, "sealcache.yaml"));
    assert.equal(c.data_dir, path.join(confDir, "data"));
    assert.equal(c.socket, path.join(dir, "run", "s.sock"));
    assert.equal((c.providers.local as { dir: string }).dir, path.join(confDir, "secrets"));
    assert.equal((c.providers.vault as { auth: { token_file: string } }).auth.token_file, path.join(confDir, "token"));
    assert.equal(c.mqtt?.ca_file, path.join(confDir, "ca.pem"));
  });

  test("absolute paths are kept, normalised", (t) => {
    const dir = tmpDir(t);
    const file = path.join(dir, "c.yaml");
    fs.writeFileSync(file, "data_dir: /var//lib/../lib/sealcache/\nsocket: /run/sealcache/./s.sock\n");
    const c = loadConfig({ file, env: {} }).config;
    assert.equal(c.data_dir, "/var/lib/sealcache/");
    assert.equal(c.socket, "/run/sealcache/s.sock");
  });

  test("an empty path is refused naming the key", (t) => {
    const dir = tmpDir(t);
    const file = path.join(dir, "c.yaml");
    fs.writeFileSync(file, "data_dir: ''\n");
    assert.throws(
      () => loadConfig({ file, env: {} }),
      (e: { issues?: string[] }) => e.issues?.[0] === "data_dir: must be at least 1 characters",
    );
  });
});
