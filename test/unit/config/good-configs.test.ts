import assert from "node:assert/strict";
import path from "node:path";
import { describe, test } from "node:test";
import os from "node:os";
import { loadConfig, parseConfig } from "../../../src/config/load.js";
import { ROOT } from "../../support/daemon.js";
import { FIXTURE_ENV, FIXTURES, fixtures } from "./fixtures.js";

const load = (name: string) => loadConfig({ file: path.join(FIXTURES, name), env: FIXTURE_ENV, checkFiles: true }).config;

describe("good config fixtures", () => {
  test("there are good fixtures, including the full and the minimal shape", () => {
    const names = fixtures("good-");
    assert.ok(names.includes("good-full.yaml") && names.includes("good-minimal.yaml"), names.join(", "));
  });

  for (const name of fixtures("good-")) {
    test(`${name} loads with checkFiles`, () => {
      assert.doesNotThrow(() => load(name));
    });
  }

  test("good-full.yaml: the interface's example shape keeps its meaning", () => {
    const c = load("good-full.yaml");
    assert.equal(c.data_dir, "/var/lib/sealcache");
    assert.equal(c.socket, "/run/sealcache/sealcache.sock");
    assert.deepEqual(c.seal, { type: "tpm2", tcti: "device:/dev/tpmrm0", pcrs: [7], counter_index: 0x01005343 });
    assert.equal(c.sync.interval, 5 * 60_000);
    assert.equal(c.sync.jitter, 0.2);
    assert.equal(c.sync.max_stale, 0);
    assert.deepEqual(c.providers.local, { type: "file", dir: "/run/secrets", max_bytes: 1024 * 1024 });
    const vault = c.providers.vault as { type: string; address: string; auth: Record<string, string>; tls: Record<string, string> };
    assert.equal(vault.type, "vault");
    assert.equal(vault.address, "https://vault:8200");
    // *_file paths resolve against the fixture's folder, not the working directory.
    assert.deepEqual(vault.auth, {
      method: "approle",
      role_id_file: path.join(FIXTURES, "files/role_id"),
      secret_id_file: path.join(FIXTURES, "files/secret_id"),
    });
    assert.equal(vault.tls.ca_file, path.join(FIXTURES, "files/ca.pem"));
    assert.deepEqual(c.secrets["kafka/password"], { provider: "vault", path: "secret/data/expanso/pipeline", key: "kafka_password", refresh: 60_000 });
    assert.deepEqual(c.secrets["demo/api-token"], { provider: "local", path: "api-token" });
    assert.deepEqual(c.policy, [
      { match: { user: "expanso" }, allow: ["kafka/*", "db/**"], admin: false },
      { match: { uid: 0 }, allow: ["**"], admin: true },
    ]);
    assert.equal(c.mqtt?.url, "mqtts://broker:8883");
    assert.equal(c.mqtt?.username, "gw-17", "${GATEWAY_ID} is interpolated");
    assert.equal(c.mqtt?.password_secret, "mqtt/password");
    assert.equal(c.mqtt?.ca_file, path.join(FIXTURES, "files/ca.pem"));
    assert.equal(c.mqtt?.device_id, "gw-17");
    assert.equal(c.mqtt?.client_id, "gw-17", "the client id defaults to the device id (so an ACL may use %c)");
    assert.equal(c.mqtt?.topic_prefix, "sealcache");
    assert.equal(c.mqtt?.cert_file, path.join(FIXTURES, "files/client.pem"));
    assert.deepEqual(c.mqtt?.commands, { trust: { "fleet-ops": path.join(FIXTURES, "files/fleet-ops.pub") }, max_lifetime: 30 * 86_400_000 });
    assert.equal(c.mqtt?.session_expiry, 30 * 86_400_000);
    assert.deepEqual(c.mqtt?.reconnect, { min: 1_000, max: 300_000, spread: 60_000 });
    assert.equal(c.log.level, "info");
  });

  test("good-minimal.yaml: everything not written takes its documented default", () => {
    const c = load("good-minimal.yaml");
    assert.equal(c.data_dir, "/var/lib/sealcache");
    assert.equal(c.socket, "/run/sealcache/sealcache.sock");
    assert.deepEqual(c.seal, { type: "tpm2", tcti: "device:/dev/tpmrm0", pcrs: [], counter_index: 0x01005343 });
    assert.deepEqual(c.sync, { interval: 300_000, jitter: 0.2, max_stale: 0, concurrency: 4, timeout: 30_000, backoff_min: 2_000, backoff_max: 300_000 });
    assert.equal(c.policy, undefined, "no policy section stays absent (the daemon's own uid only)");
    assert.equal(c.mqtt, undefined);
    assert.equal(c.log.level, "info");
  });

  test("an mqtt section with only a url: the device id is the hostname, the rest defaults", () => {
    const c = parseConfig("mqtt: { url: 'mqtt://broker:1883' }\n", { file: path.join(FIXTURES, "inline.yaml"), env: {} }).config;
    const id = os.hostname();
    assert.equal(c.mqtt?.device_id, id);
    assert.equal(c.mqtt?.client_id, id);
    assert.equal(c.mqtt?.topic_prefix, "sealcache");
    assert.deepEqual(c.mqtt?.commands, { trust: {}, max_lifetime: 30 * 86_400_000 });
    assert.equal(c.metrics.secret_names, false);
  });

  test("good-all-providers.yaml: every provider type validates with its own options", () => {
    const c = load("good-all-providers.yaml");
    const types = Object.values(c.providers)
      .map((p) => (p as { type: string }).type)
      .sort();
    assert.deepEqual(types, ["aws-secrets-manager", "aws-ssm", "aws-sts", "azure-key-vault", "env", "file", "gcp-secret-manager", "vault"]);
    assert.equal((c.providers.files as { dir: string }).dir, path.join(FIXTURES, "secrets"));
    assert.equal((c.providers.sts as { duration: number }).duration, 3_600_000);
    assert.equal(c.secrets["a/azure"]?.refresh, 90_000);
    assert.deepEqual(c.providers.gcp, {
      type: "gcp-secret-manager",
      endpoint: "127.0.0.1:8085",
      project: "fleet",
      credentials_file: path.join(FIXTURES, "files/secret_id"),
      tls: { ca_file: path.join(FIXTURES, "files/ca.pem"), server_name: "secretmanager.googleapis.com" },
      concurrency: 16,
    });
  });

  test("the shipped examples/sealcache.yaml is a good config", () => {
    const file = path.join(ROOT, "examples/sealcache.yaml");
    const c = loadConfig({ file, env: {}, checkFiles: true }).config;
    assert.equal(c.data_dir, path.join(ROOT, ".demo/data"));
    assert.equal((c.providers.demo as { dir: string }).dir, path.join(ROOT, "examples/demo-secrets"));
  });
});
