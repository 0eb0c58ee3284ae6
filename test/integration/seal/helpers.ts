import assert from "node:assert/strict";
import fs from "node:fs";
import path from "node:path";
import { loadSodium, type Sodium } from "../../../src/crypto/sodium.js";
import { isSealError, type SealError } from "../../../src/errors.js";
import { createLogger } from "../../../src/log.js";
import { createSealer } from "../../../src/seal/registry.js";
import type { Sealer } from "../../../src/seal/sealer.js";
import { tmpDir } from "../../support/tmp.js";

export type SealType = "tpm2" | "tpm2+host" | "host";

let sodiumP: Promise<Sodium> | undefined;
export function sodium(): Promise<Sodium> {
  return (sodiumP ??= loadSodium());
}

/** A 0700 data_dir in a temp folder removed after the test. */
export function dataDir(t: Parameters<typeof tmpDir>[0]): string {
  const d = path.join(tmpDir(t, "sc-seal-"), "data");
  fs.mkdirSync(d, { mode: 0o700 });
  return d;
}

/** A sealer built the way the daemon builds one: through the registry. */
export async function sealerFor(type: SealType, tcti: string, dir: string, pcrs: number[] = []): Promise<Sealer> {
  return createSealer({
    dataDir: dir,
    seal: { type, tcti, pcrs, counter_index: 0x01005343 },
    sodium: await sodium(),
    logger: createLogger({ level: "silent" }),
  });
}

/** Awaits a SealError whose message matches every pattern; returns it. */
export async function refused(p: Promise<unknown>, ...patterns: RegExp[]): Promise<SealError> {
  let err: unknown;
  try {
    await p;
  } catch (e) {
    err = e;
  }
  assert.ok(err !== undefined, "expected a refusal, but it succeeded");
  assert.ok(isSealError(err), `expected a SealError, got ${String(err)}`);
  for (const re of patterns) assert.match(err.message, re);
  return err;
}

export function same(a: Uint8Array, b: Uint8Array): boolean {
  return Buffer.from(a).equals(Buffer.from(b));
}

/** Reads kek.sealed's blob (base64 in JSON). */
export function readBlob(dir: string): { type: string; blob: Uint8Array } {
  const j = JSON.parse(fs.readFileSync(path.join(dir, "kek.sealed"), "utf8")) as { type: string; blob: string };
  return { type: j.type, blob: new Uint8Array(Buffer.from(j.blob, "base64")) };
}

export function writeBlob(dir: string, blob: Uint8Array): void {
  const file = path.join(dir, "kek.sealed");
  const j = JSON.parse(fs.readFileSync(file, "utf8")) as Record<string, unknown>;
  j.blob = Buffer.from(blob).toString("base64");
  fs.writeFileSync(file, JSON.stringify(j));
}
