import assert from "node:assert/strict";
import path from "node:path";
import { describe, test } from "node:test";
import { loadConfig } from "../../../src/config/load.js";
import { type ConfigError, isConfigError } from "../../../src/errors.js";
import { FIXTURE_ENV, FIXTURES, fixtures } from "./fixtures.js";

// Each bad fixture and every issue it must produce, exactly and in order (CONVENTIONS #12).
// A RegExp is used only where the text after the key path comes from the YAML parser.
const EXPECTED: Record<string, readonly (string | RegExp)[]> = {
  "bad-yaml-syntax.yaml": [/^line 5, column 1: YAML syntax: missed comma between flow collection entries$/],
  "bad-duplicate-key.yaml": [/^line 4, column 1: YAML syntax: duplicated mapping key$/],
  "bad-unknown-top-level-key.yaml": ["datadir: unknown key (misspelled? see the config reference in README.md)"],
  "bad-unknown-nested-key.yaml": ["sync.intervall: unknown key (misspelled? see the config reference in README.md)"],
  "bad-unknown-provider-key.yaml": [
    "providers.local.dir: required (expected string)",
    "providers.local.dirr: unknown key (misspelled? see the config reference in README.md)",
  ],
  "bad-wrong-type.yaml": ["sync.concurrency: expected number, got string"],
  "bad-duration.yaml": ['sync.interval: expected a duration such as "30s", "5m" or "1h", got "5 minutes"'],
  "bad-jitter-range.yaml": ["sync.jitter: must be at most 1"],
  "bad-provider-type.yaml": [
    'providers.kv.type: must be one of "file", "env", "vault", "aws-secrets-manager", "aws-ssm", "aws-sts", "gcp-secret-manager", "azure-key-vault"',
  ],
  "bad-azure-auth-keys.yaml": [
    "providers.kv.auth.client_secret_file: required (expected string)",
    "providers.kv.auth.certificate_file: unknown key (misspelled? see the config reference in README.md)",
  ],
  "bad-azure-vault-url.yaml": ["providers.kv.vault_url: must be an https:// URL (tokens are sent to it)"],
  "bad-undefined-provider.yaml": ['secrets.demo/api-token.provider: no provider named "lokal"; defined providers: local'],
  "bad-secret-name-uppercase.yaml": [
    `secrets.Demo/API-Token: secret name "Demo/API-Token" must match [a-z0-9][a-z0-9._/-]* (lower case letters, digits, '.', '_', '/', '-')`,
  ],
  "bad-secret-name-dotdot.yaml": [`secrets.demo/../etc: secret name "demo/../etc" must not contain empty, '.' or '..' path segments`],
  "bad-unset-env.yaml": ["providers.vault.address: environment variable SEALCACHE_TEST_UNSET_VAR is not set"],
  // A path is shown whole up to 60 characters, else by its last 60 (where the checkout sits decides which).
  "bad-missing-file.yaml": [
    new RegExp(
      `^providers\\.vault\\.auth\\.secret_id_file: cannot read (${escapeRegex(path.join(FIXTURES, "files/no-such-secret_id"))}|…${escapeRegex(path.join(FIXTURES, "files/no-such-secret_id").slice(-60))}) \\(ENOENT\\)$`,
    ),
  ],
  "bad-policy-glob.yaml": ["policy.0.allow.1: must be a secret-name glob such as kafka/* or db/**"],
  "bad-policy-empty-match.yaml": ["policy.0.match: must name at least one of uid, user, gid, group, unit, exe"],
  "bad-mqtt-scheme.yaml": ["mqtt.url: must be an mqtt://, mqtts://, ws:// or wss:// URL"],
  "bad-mqtt-password-secret.yaml": ['mqtt.password_secret: no secret named "mqtt/password" under secrets'],
  "bad-mqtt-password-both.yaml": ["mqtt.password_file: password_secret and password_file exclude each other; keep one"],
  "bad-mqtt-cert-without-key.yaml": ["mqtt.key_file: cert_file and key_file go together (a client certificate and its key)"],
  "bad-mqtt-tls-on-plain.yaml": ['mqtt.ca_file: needs TLS: use an mqtts:// or wss:// url (it is "mqtt")'],
  "bad-mqtt-device-id.yaml": ["mqtt.device_id: must be 1-64 letters, digits, '.', '_' or '-', starting with a letter or digit"],
  "bad-mqtt-topic-prefix.yaml": ["mqtt.topic_prefix: must be topic levels separated by / (no empty level, no + or #, not starting with $)"],
  "bad-mqtt-max-lifetime.yaml": ["mqtt.commands.max_lifetime: must be at most 365d"],
  "bad-mqtt-trust-key-name.yaml": ["mqtt.commands.trust.fleet ops: key names (the commands' kid) are 1-64 letters, digits, '.', '_' or '-'"],
  "bad-mqtt-trust-missing-file.yaml": [
    new RegExp(
      `^mqtt\\.commands\\.trust\\.fleet-ops: cannot read (${escapeRegex(path.join(FIXTURES, "files/no-such-fleet-ops.pub"))}|…${escapeRegex(path.join(FIXTURES, "files/no-such-fleet-ops.pub").slice(-60))}) \\(ENOENT\\)$`,
    ),
  ],
  "bad-mqtt-reconnect.yaml": ["mqtt.reconnect.min: min must not be greater than max"],
  "bad-mqtt-session-expiry.yaml": ["mqtt.session_expiry: must be at least 1m"],
  "bad-gcp-endpoint.yaml": [
    'providers.gcp.endpoint: must be HOST or HOST:PORT such as "secretmanager.googleapis.com:443" (gRPC over TLS: no scheme)',
    "providers.gcp.tls.cert_file: unknown key (misspelled? see the config reference in README.md)",
  ],
};

function escapeRegex(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
}

function load(name: string): ConfigError {
  const file = path.join(FIXTURES, name);
  try {
    loadConfig({ file, env: FIXTURE_ENV, checkFiles: true });
  } catch (e) {
    assert.ok(isConfigError(e), `${name}: expected a ConfigError, got ${String(e)}`);
    return e;
  }
  assert.fail(`${name} was accepted; it must be refused`);
}

describe("bad config fixtures", () => {
  test("every bad-*.yaml has an expected error, and every expectation has a fixture", () => {
    assert.deepEqual(fixtures("bad-"), Object.keys(EXPECTED).sort());
  });

  for (const [name, expected] of Object.entries(EXPECTED)) {
    test(`${name} is refused with exactly its error`, () => {
      const err = load(name);
      assert.equal(err.code, "config");
      assert.equal(err.issues.length, expected.length, `issues: ${JSON.stringify(err.issues)}`);
      expected.forEach((want, i) => {
        if (typeof want === "string") assert.equal(err.issues[i], want);
        else assert.match(err.issues[i]!, want);
      });
      // The message an operator sees names the file, then each issue.
      assert.ok(err.message.startsWith(`invalid config ${path.join(FIXTURES, name)}:\n`), err.message);
      for (const issue of err.issues) assert.ok(err.message.includes(issue));
    });
  }

  test("a *_file is only checked when checkFiles is asked for (tooling may skip it)", () => {
    const file = path.join(FIXTURES, "bad-missing-file.yaml");
    const { config } = loadConfig({ file, env: FIXTURE_ENV, checkFiles: false });
    const vault = config.providers.vault as { auth: { secret_id_file: string } };
    assert.equal(vault.auth.secret_id_file, path.join(FIXTURES, "files/no-such-secret_id"));
  });

  test("a config file that cannot be read is a ConfigError naming the file", () => {
    const file = path.join(FIXTURES, "no-such-config.yaml");
    assert.throws(
      () => loadConfig({ file, env: FIXTURE_ENV }),
      (e: unknown) => isConfigError(e) && e.message.includes(file) && /cannot read the config file \(ENOENT\)/.test(e.issues[0]!),
    );
  });
});
