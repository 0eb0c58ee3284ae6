import assert from "node:assert/strict";
import fs from "node:fs";
import path from "node:path";
import { test } from "node:test";
import { hex, Tpm } from "../../../native/tpm2/index.js";
import { createKek, loadKek } from "../../../src/seal/kek.js";
import { decodeTpm2Blob } from "../../../src/seal/tpm2-blob.js";
import { startSwtpm } from "../../support/swtpm.js";
import { tmpDir } from "../../support/tmp.js";
import { dataDir, readBlob, refused, same, sealerFor } from "./helpers.js";

test("a persistent SRK at 0x81000001 is used when present; dictionary-attack lockout is named", async (t) => {
  const tpm = await startSwtpm(t);
  const work = tmpDir(t);

  // Sealed while there is no persistent SRK: under sealcache's own (noDA) template SRK.
  const ownDir = dataDir(t);
  const own = await sealerFor("tpm2", tpm.tcti, ownDir, [16]);
  const ownKek = await createKek(own, ownDir);

  // The OS provisions an SRK with tpm2-tools defaults: ECC, but DA-protected (no noDA).
  await tpm.tool("tpm2_createprimary", ["-C", "o", "-G", "ecc", "-c", "srk.ctx", "-Q"], work);
  await tpm.tool("tpm2_evictcontrol", ["-C", "o", "-c", "srk.ctx", "0x81000001"], work);
  await tpm.tool("tpm2_flushcontext", ["-t"]);
  const persistentName = /^name: ([0-9a-f]+)$/m.exec(await tpm.tool("tpm2_readpublic", ["-c", "0x81000001"]))![1]!;

  const pDir = dataDir(t);
  const p = await sealerFor("tpm2", tpm.tcti, pDir, [16]);
  const pKek = await createKek(p, pDir);
  assert.equal(hex(decodeTpm2Blob(readBlob(pDir).blob).srkName), persistentName, "sealed under the persistent SRK");
  assert.ok(same(await loadKek(p, pDir), pKek));
  assert.ok(same(await loadKek(own, ownDir), ownKek), "a key sealed under the template SRK still opens (the SRK is derived again)");

  // Three wrong passwords on a DA-protected object put the TPM into lockout (swtpm: max 3 failures).
  fs.writeFileSync(path.join(work, "in.dat"), "not a secret");
  await tpm.tool(
    "tpm2_create",
    ["-C", "0x81000001", "-i", "in.dat", "-p", "right", "-u", "o.pub", "-r", "o.priv", "-a", "fixedtpm|fixedparent|userwithauth", "-Q"],
    work,
  );
  for (let i = 0; i < 3; i++) {
    await tpm.tool("tpm2_load", ["-C", "0x81000001", "-u", "o.pub", "-r", "o.priv", "-c", "o.ctx", "-Q"], work);
    await assert.rejects(tpm.tool("tpm2_unseal", ["-c", "o.ctx", "-p", "wrong"], work));
    await tpm.tool("tpm2_flushcontext", ["-t"]);
    await tpm.tool("tpm2_flushcontext", ["-s"]);
  }
  assert.equal((await Tpm.with(tpm.tcti, (x) => x.info())).inLockout, true, "the TPM is in lockout");

  await refused(loadKek(p, pDir), /dictionary-attack lockout \(TPM_RC_LOCKOUT\)/, /tpm2_dictionarylockout --clear-lockout/);
  const pInfo = await p.describe();
  assert.equal(pInfo.ok, false);
  assert.match(pInfo.detail, /dictionary-attack lockout.*unsealing is refused/);

  // sealcache's own SRK and sealed objects are noDA: lockout does not stop them, and describe says so.
  assert.ok(same(await loadKek(own, ownDir), ownKek), "the noDA key still opens during lockout");
  const ownInfo = await own.describe();
  assert.equal(ownInfo.ok, true, ownInfo.detail);
  assert.ok(
    ownInfo.warnings.some((w) => /lockout.*exempt \(noDA\)/.test(w)),
    JSON.stringify(ownInfo.warnings),
  );
  assert.deepEqual(await tpm.handles(), { transient: [], sessions: [] });
});
