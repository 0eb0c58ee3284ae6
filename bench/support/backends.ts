import fs from "node:fs";
import path from "node:path";
import { makeCerts } from "../../test/support/certs.js";
import { FakeAws } from "../../test/support/fake-aws.js";
import { FakeGcp } from "../../test/support/fake-gcp.js";
import { FakeVault } from "../../test/support/fake-vault.js";

/** One backend a daemon reads one secret from: its `providers` block, the secret entry, and how to stop its test server. */
export interface OneSecretBackend {
  readonly providers: Record<string, unknown>;
  readonly secret: Record<string, unknown>;
  stop(): Promise<void>;
}

const VALUE = `value-${"x".repeat(26)}`;

/**
 * Per provider type, a daemon's worth of backend for the per-type memory and
 * start-up figures: the local test servers of test/support/, credentials from
 * files (so the daemon needs no environment). Adding a provider type to the
 * figures is adding an entry here.
 */
export const ONE_SECRET_BACKENDS: Record<string, (dir: string) => Promise<OneSecretBackend>> = {
  async file(dir) {
    const secrets = path.join(dir, "secrets");
    fs.mkdirSync(secrets, { mode: 0o700 });
    fs.writeFileSync(path.join(secrets, "s"), VALUE, { mode: 0o600 });
    return { providers: { p: { type: "file", dir: secrets } }, secret: { provider: "p", path: "s" }, stop: async () => undefined };
  },
  async vault(dir) {
    const fv = await new FakeVault().start();
    fv.putKv2("secret/data/bench/s", { v: VALUE });
    const tokenFile = path.join(dir, "token");
    fs.writeFileSync(tokenFile, fv.issueToken(0), { mode: 0o600 });
    return { providers: { p: { type: "vault", address: fv.url, auth: { method: "token", token_file: tokenFile } } }, secret: { provider: "p", path: "secret/data/bench/s", key: "v" }, stop: () => fv.stop() };
  },
  async "aws-secrets-manager"(dir) {
    const fa = await new FakeAws().start();
    fa.putSecret("bench/s", VALUE);
    const credFile = path.join(dir, "aws-credentials");
    fs.writeFileSync(credFile, `[bench]\naws_access_key_id = ${fa.accessKeyId}\naws_secret_access_key = ${fa.secretAccessKey}\n`, { mode: 0o600 });
    return { providers: { p: { type: "aws-secrets-manager", region: fa.region, endpoint: fa.url, profile: "bench", credentials_file: credFile } }, secret: { provider: "p", path: "bench/s" }, stop: () => fa.stop() };
  },
  async "gcp-secret-manager"(dir) {
    const certs = makeCerts(path.join(dir, "certs"));
    const gcp = await new FakeGcp({ key: fs.readFileSync(certs.serverKey), cert: fs.readFileSync(certs.serverCert) }).start();
    gcp.addVersion("s", VALUE);
    return {
      providers: { p: { type: "gcp-secret-manager", endpoint: gcp.endpoint, tls: { ca_file: certs.caFile, server_name: "localhost" }, credentials_file: gcp.writeServiceAccount(dir) } },
      secret: { provider: "p", path: `projects/${gcp.project}/secrets/s` },
      stop: () => gcp.stop(),
    };
  },
};
