import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import fs from "node:fs";
import path from "node:path";
import { test } from "node:test";
import { CC, Tpm } from "../../../native/tpm2/index.js";
import { createKek, loadKek } from "../../../src/seal/kek.js";
import { startSwtpm } from "../../support/swtpm.js";
import { tmpDir } from "../../support/tmp.js";
import { dataDir, same, sealerFor } from "./helpers.js";

const u32 = (v: number) => Buffer.from([v >>> 24, (v >>> 16) & 0xff, (v >>> 8) & 0xff, v & 0xff]);

/** True when any 8-byte run of `secret` appears in `hay`: a partial leak counts. */
function leaks(hay: Buffer, secret: Uint8Array): boolean {
  for (let i = 0; i + 8 <= secret.length; i++) if (hay.includes(Buffer.from(secret.subarray(i, i + 8)))) return true;
  return false;
}

// Everything between sealcache and the TPM is recorded by the pcap TCTI, as a
// probe on the SPI/LPC bus would see it. Create and Unseal must carry the KEK
// encrypted (salted sessions with parameter encryption).
test("a bus capture of seal and unseal never contains the key", async (t) => {
  const tpm = await startSwtpm(t);
  const capture = path.join(tmpDir(t), "tpm.pcap");
  process.env.TCTI_PCAP_FILE = capture;
  const tcti = `pcap:${tpm.tcti}`;

  const keys: Uint8Array[] = [];
  for (const [type, pcrs] of [
    ["tpm2", [16]],
    ["tpm2", []],
    ["tpm2+host", [16]],
  ] as const) {
    const dir = dataDir(t);
    const sealer = await sealerFor(type, tcti, dir, [...pcrs]);
    const kek = await createKek(sealer, dir);
    assert.ok(same(await loadKek(sealer, dir), kek), `${type} ${pcrs.join(",")}: round trip through the pcap TCTI`);
    keys.push(kek);
  }

  // Control: parameters that are not encrypted do show up in clear in this capture.
  const marker = new Uint8Array(randomBytes(32));
  await Tpm.with(tcti, (x) => x.pcrExtend(23, marker));

  const cap = fs.readFileSync(capture);
  assert.ok(cap.includes(Buffer.from(marker)), "the capture records command parameters in clear (control)");
  assert.ok(cap.includes(u32(CC.Create)) && cap.includes(u32(CC.Unseal)), "the capture holds TPM2_Create and TPM2_Unseal");
  for (const [i, k] of keys.entries()) assert.ok(!leaks(cap, k), `key ${i} does not appear in the capture, not even 8 bytes of it`);
});
