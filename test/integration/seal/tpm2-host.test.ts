import assert from "node:assert/strict";
import fs from "node:fs";
import path from "node:path";
import { test } from "node:test";
import { createKek, loadKek } from "../../../src/seal/kek.js";
import { startSwtpm } from "../../support/swtpm.js";
import { dataDir, readBlob, refused, same, sealerFor } from "./helpers.js";

test("seal.type tpm2+host needs both the TPM and the host key", async (t) => {
  const [a, b] = await Promise.all([startSwtpm(t), startSwtpm(t)]);
  const dir = dataDir(t);
  const sealer = await sealerFor("tpm2+host", a.tcti, dir, [16]);
  const kek = await createKek(sealer, dir);
  const hostKey = path.join(dir, "host.key");
  assert.equal(fs.statSync(hostKey).mode & 0o777, 0o600, "the host key is created 0600");
  assert.equal(readBlob(dir).type, "tpm2+host");
  assert.ok(same(await loadKek(sealer, dir), kek), "round trip with both");
  const ok = await sealer.describe();
  assert.equal(ok.ok, true, ok.detail);
  assert.match(ok.detail, /still matches; host key host\.key present/);

  // The TPM alone is not enough.
  const saved = fs.readFileSync(hostKey);
  fs.rmSync(hostKey);
  await refused(loadKek(sealer, dir), /the TPM opened its part, but the host key part failed/, /host key .*host\.key is missing/);
  const missing = await sealer.describe();
  assert.equal(missing.ok, false);
  assert.match(missing.detail, /host\.key is missing/);
  assert.ok(!fs.existsSync(hostKey), "a failed unseal does not create a new host key");

  // Another host key is not enough either (the TPM part opens, the host part does not).
  fs.writeFileSync(hostKey, Buffer.alloc(32, 1), { mode: 0o600 });
  await refused(loadKek(sealer, dir), /does not open with host key/);
  fs.writeFileSync(hostKey, saved, { mode: 0o600 });
  assert.ok(same(await loadKek(sealer, dir), kek), "the right host key opens it again");

  // The disk with its host key, but another TPM: refused.
  await refused(loadKek(await sealerFor("tpm2+host", b.tcti, dir, [16]), dir), /sealed by another TPM/);

  // And PCR policy still applies to the TPM part.
  await a.extendPcr(16);
  await refused(loadKek(sealer, dir), /PCR 16 changed/);
  assert.deepEqual(await a.handles(), { transient: [], sessions: [] });
});
