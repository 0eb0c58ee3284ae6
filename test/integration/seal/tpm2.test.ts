import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { createHash } from "node:crypto";
import fs from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { describe, test } from "node:test";
import { createKek, loadKek } from "../../../src/seal/kek.js";
import { resealKek } from "../../../src/seal/reseal.js";
import { createRecovery, openRecovery } from "../../../src/seal/recovery.js";
import { decodeTpm2Blob, encodeTpm2Blob } from "../../../src/seal/tpm2-blob.js";
import { isTpmError, Tpm } from "../../../native/tpm2/index.js";
import { startSwtpm } from "../../support/swtpm.js";
import { dataDir, readBlob, refused, same, sealerFor, sodium, writeBlob } from "./helpers.js";

const run = promisify(execFile);
const CHILD = path.join(path.dirname(fileURLToPath(import.meta.url)), "seal-child.ts");

describe("seal.type tpm2 against swtpm", () => {
  test("seals and unseals the cache key in-process; the blob describes itself", async (t) => {
    const tpm = await startSwtpm(t);
    const dir = dataDir(t);
    const sealer = await sealerFor("tpm2", tpm.tcti, dir, [7, 16]);
    const kek = await createKek(sealer, dir);
    assert.equal(kek.length, 32);

    const again = await loadKek(sealer, dir);
    assert.ok(same(again, kek), "unsealed key equals the sealed one");

    const { type, blob } = readBlob(dir);
    assert.equal(type, "tpm2");
    assert.ok(!Buffer.from(blob).includes(Buffer.from(kek)), "kek.sealed does not hold the key in clear");
    const b = decodeTpm2Blob(blob);
    assert.deepEqual(b.pcrs, [7, 16]);
    const srk = await Tpm.with(tpm.tcti, async (x) => {
      const s = await x.createPrimary();
      await x.flush(s);
      return s;
    });
    assert.ok(same(b.srkName, srk.name), "the blob records the name of the SRK it was sealed under");
    assert.equal(b.pcrValues.get(16)!.length, 32);

    const info = await sealer.describe();
    assert.equal(info.ok, true, info.detail);
    assert.match(info.detail, /IBM/, "names the manufacturer");
    assert.match(info.detail, /PCR policy \(sha256 PCR 7, 16\) still matches/);
    assert.deepEqual(await tpm.handles(), { transient: [], sessions: [] }, "nothing left loaded in the TPM");
  });

  test("a key sealed in one process unseals in another", async (t) => {
    const tpm = await startSwtpm(t);
    const dir = dataDir(t);
    const child = async (op: string) => {
      const r = await run(process.execPath, ["--import", "tsx", CHILD, op, "tpm2", tpm.tcti, dir]);
      return (JSON.parse(r.stdout) as { sha256: string }).sha256;
    };
    const sealedBy = await child("init");
    const openedBy = await child("load");
    assert.equal(openedBy, sealedBy, "a second process unseals the same key");
    const here = await loadKek(await sealerFor("tpm2", tpm.tcti, dir, [16]), dir);
    assert.equal(createHash("sha256").update(here).digest("hex"), sealedBy, "and so does this one");
  });

  test("a key sealed on one TPM does not open on another", async (t) => {
    const [a, b] = await Promise.all([startSwtpm(t), startSwtpm(t)]);
    const dir = dataDir(t);
    await createKek(await sealerFor("tpm2", a.tcti, dir), dir);
    const onB = await sealerFor("tpm2", b.tcti, dir);
    await refused(loadKek(onB, dir), /sealed by another TPM/, /restore data_dir on its original device/);
    const info = await onB.describe();
    assert.equal(info.ok, false);
    assert.match(info.detail, /sealed by another TPM/);

    // Not only our name check: with B's SRK name written into the blob, B's TPM itself refuses to load it.
    const bName = await Tpm.with(b.tcti, async (x) => {
      const s = await x.createPrimary();
      await x.flush(s);
      return s.name;
    });
    const forged = encodeTpm2Blob({ ...decodeTpm2Blob(readBlob(dir).blob), srkName: bName });
    writeBlob(dir, forged);
    await refused(loadKek(onB, dir), /rejected the sealed cache key|refused the sealed cache key/);
    assert.deepEqual(await b.handles(), { transient: [], sessions: [] }, "the refusal left nothing loaded");
  });

  test("PCR 16 extended: refused naming PCR 16; the recovery key reseals", async (t) => {
    const tpm = await startSwtpm(t);
    const dir = dataDir(t);
    const s = await sodium();
    const sealer = await sealerFor("tpm2", tpm.tcti, dir, [16]);
    const kek = await createKek(sealer, dir);
    const recoveryKey = await createRecovery(s, dir, kek);
    assert.match(recoveryKey, /^([0-9A-HJKMNP-TV-Z]{7}-){7}[0-9A-HJKMNP-TV-Z]{7}$/, "8 groups of 7 base32 characters");
    assert.ok(same(await loadKek(sealer, dir), kek));

    // With a PCR policy the object has no userWithAuth: a plain HMAC session cannot open it, even now.
    const bound = decodeTpm2Blob(readBlob(dir).blob);
    await assert.rejects(
      Tpm.with(tpm.tcti, async (x) => x.unseal(await x.createPrimary(), bound, { pcrs: [] })),
      (e: Error) => isTpmError(e) && /TPM2_Unseal/.test(e.message),
    );

    await tpm.extendPcr(16);
    const e = await refused(loadKek(sealer, dir), /PCR 16 changed since it was sealed/, /reseal/, /recovery key/);
    assert.doesNotMatch(e.message, /PCR 7\b/);
    const info = await sealer.describe();
    assert.equal(info.ok, false);
    assert.match(info.detail, /PCR 16 changed/);

    // The TPM enforces the policy, not only our comparison: record the new value and it still refuses.
    const old = readBlob(dir).blob;
    const cur = await Tpm.with(tpm.tcti, (x) => x.pcrRead([16]));
    writeBlob(dir, encodeTpm2Blob({ ...decodeTpm2Blob(old), pcrValues: cur }));
    await refused(loadKek(sealer, dir), /refused the PCR policy/);
    writeBlob(dir, old);

    await refused(
      openRecovery(
        dir,
        recoveryKey.replace(/^./, (c) => (c === "2" ? "3" : "2")),
      ),
      /mistyped/,
    );
    const recovered = await openRecovery(dir, recoveryKey.toLowerCase().replace(/-/g, " "));
    assert.ok(same(recovered, kek), "the recovery key gives back the cache key");
    await resealKek(sealer, dir, recovered);
    assert.ok(same(await loadKek(sealer, dir), kek), "after reseal the key unseals with the new PCR 16");
    assert.equal((await sealer.describe()).ok, true);
    assert.deepEqual(await tpm.handles(), { transient: [], sessions: [] });
  });

  test("a corrupt kek.sealed is refused with a clear error", async (t) => {
    const tpm = await startSwtpm(t);
    const dir = dataDir(t);
    const sealer = await sealerFor("tpm2", tpm.tcti, dir);
    await createKek(sealer, dir);
    const good = readBlob(dir).blob;

    writeBlob(dir, good.subarray(0, good.length - 10));
    await refused(loadKek(sealer, dir), /not a valid TPM-sealed key \(corrupt or truncated/);
    writeBlob(dir, Uint8Array.of(9, ...good.subarray(1)));
    await refused(loadKek(sealer, dir), /unknown format 9/);

    const b = decodeTpm2Blob(good);
    const priv = Uint8Array.from(b.private);
    priv[priv.length - 5]! ^= 0x01;
    writeBlob(dir, encodeTpm2Blob({ ...b, private: priv }));
    await refused(loadKek(sealer, dir), /rejected the sealed cache key|refused the sealed cache key as malformed/, /corrupt/);
    const pub = Uint8Array.from(b.public);
    pub[pub.length - 3]! ^= 0x40;
    writeBlob(dir, encodeTpm2Blob({ ...b, public: pub }));
    await refused(loadKek(sealer, dir), /corrupt/);
    assert.deepEqual(await tpm.handles(), { transient: [], sessions: [] }, "failed loads left nothing behind");
  });

  test("a missing TCTI, a missing device and a stopped simulator are named", async (t) => {
    const dir = dataDir(t);
    const kek = new Uint8Array(32).fill(7);
    const none = await sealerFor("tpm2", "nonexistent-tcti", dir);
    await refused(none.seal(kek), /no TCTI named "nonexistent-tcti"/, /libtss2-tcti-nonexistent-tcti\.so\.0 cannot be loaded/);
    const d = await none.describe();
    assert.equal(d.ok, false);
    assert.match(d.detail, /nonexistent-tcti/);

    const dev = await sealerFor("tpm2", "device:/dev/tpmrm-sealcache-test", dir);
    await refused(dev.seal(kek), /no TPM device at \/dev\/tpmrm-sealcache-test/, /seal\.type: host/);

    const tpm = await startSwtpm(t);
    await tpm.stop();
    const down = await sealerFor("tpm2", tpm.tcti, dir);
    await refused(down.seal(kek), /cannot reach the TPM through TCTI "swtpm:host=127\.0\.0\.1,port=\d+"/, /simulator running/);
  });

  test("a seal type mismatch is refused by kek.sealed's own record", async (t) => {
    const tpm = await startSwtpm(t);
    const dir = dataDir(t);
    await createKek(await sealerFor("tpm2", tpm.tcti, dir), dir);
    await refused(loadKek(await sealerFor("host", tpm.tcti, dir), dir), /sealed with seal\.type tpm2/);
    assert.ok(fs.existsSync(path.join(dir, "kek.sealed")));
  });
});
