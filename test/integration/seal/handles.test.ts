import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { test } from "node:test";
import { isTpmError, Tpm, type SealedObject } from "../../../native/tpm2/index.js";
import { encodeTpm2Blob } from "../../../src/seal/tpm2-blob.js";
import { startSwtpm } from "../../support/swtpm.js";
import { dataDir, refused, same, sealerFor } from "./helpers.js";

const CYCLES = 1_000;

// swtpm, like a real TPM without a resource manager, holds only 3 transient
// objects and 3 sessions: one leaked handle per cycle would fail within a few
// cycles, and a slow leak shows in the counts taken by tpm2_getcap afterwards.
test(`${CYCLES} unseal cycles, failures included, leave no transient object or session behind`, async (t) => {
  const tpm = await startSwtpm(t);
  const baseline = await tpm.handles();
  assert.deepEqual(baseline, { transient: [], sessions: [] });

  const data = new Uint8Array(randomBytes(32));
  let good: SealedObject;
  let open: SealedObject;
  let stale: SealedObject;
  let srkName: Uint8Array;
  await Tpm.with(tpm.tcti, async (x) => {
    const srk = await x.createPrimary();
    srkName = srk.name;
    good = await x.seal(srk, data, { pcrs: [16] });
    open = await x.seal(srk, data);
    stale = await x.seal(srk, data, { pcrs: [23] });
    await x.flush(srk);
  });
  await tpm.extendPcr(23); // `stale` now fails its policy at TPM2_Unseal, after Load, session and PolicyPCR
  const corrupt = { ...good!, private: Uint8Array.from(good!.private, (b, i) => (i === good!.private.length - 4 ? b ^ 1 : b)) };

  const outcomes = { ok: 0, policy: 0, integrity: 0 };
  const x = await Tpm.open(tpm.tcti);
  try {
    const srk = await x.createPrimary();
    for (let i = 0; i < CYCLES; i++) {
      const k = i % 20;
      const [blob, pcrs] = k === 0 ? [stale!, [23]] : k === 1 ? [corrupt, [16]] : k < 5 ? [open!, []] : [good!, [16]];
      try {
        const out = await x.unseal(srk, blob, { pcrs });
        assert.ok(same(out, data), `cycle ${i}: unsealed data differs`);
        outcomes.ok++;
      } catch (e) {
        assert.ok(isTpmError(e) && (e.kind === "policy" || e.kind === "integrity"), `cycle ${i}: ${String(e)}`);
        outcomes[e.kind as "policy" | "integrity"]++;
      }
      if (i % 250 === 249) {
        assert.equal((await x.transientHandles()).length, 1, `after ${i + 1} cycles only the SRK is loaded`);
        assert.deepEqual(await x.sessionHandles(), [], `after ${i + 1} cycles no session is loaded`);
      }
    }
    await x.flush(srk);
  } finally {
    await x.close();
  }
  assert.deepEqual(outcomes, { ok: 900, policy: 50, integrity: 50 });

  // Whole sealer operations: a connection each, opened and closed, refusals included.
  const dir = dataDir(t);
  const sealer = await sealerFor("tpm2", tpm.tcti, dir, [16]);
  const blob = encodeTpm2Blob({ srkName: srkName!, pcrs: [16], pcrValues: await Tpm.with(tpm.tcti, (y) => y.pcrRead([16])), ...good! });
  const staleBlob = encodeTpm2Blob({ srkName: srkName!, pcrs: [23], pcrValues: new Map([[23, new Uint8Array(32)]]), ...stale! });
  for (let i = 0; i < 20; i++) {
    if (i % 4 === 3) await refused(sealer.unseal(staleBlob), /PCR 23 changed/);
    else assert.ok(same(await sealer.unseal(blob), data));
  }

  assert.deepEqual(await tpm.handles(), baseline, "TPM2_CAP_HANDLES is back to the baseline");
});
