import assert from "node:assert/strict";
import fs from "node:fs";

/**
 * Values planted in fixtures so tests can prove they never leak: every log,
 * error text, CLI error and database byte is searched for them.
 */
export const DEMO_VALUES = ["demo-api-token-7Q2mX9vLp4", "demo-db-password-Hk3Zr8Wq1", "demo-kafka-password-Vn6Ty2Bs0"] as const;
export const PLANTED_PREFIX = "PLANTED-";

/** A recognisable secret value; anything containing PLANTED_PREFIX must never be logged. */
export function planted(tag: string): string {
  return `${PLANTED_PREFIX}${tag}-${Math.random().toString(36).slice(2, 10)}`;
}

export function leaksIn(text: string | Buffer, extra: readonly string[] = []): string[] {
  const s = typeof text === "string" ? text : text.toString("latin1");
  const hits = [...DEMO_VALUES, ...extra].filter((v) => s.includes(v));
  if (s.includes(PLANTED_PREFIX)) hits.push(PLANTED_PREFIX + "…");
  return hits;
}

export function assertNoLeaks(text: string | Buffer, where: string, extra: readonly string[] = []): void {
  const hits = leaksIn(text, extra);
  assert.deepEqual(hits, [], `planted secret value(s) found in ${where}`);
}

/** Every byte of a SQLite database and its WAL. */
export function databaseBytes(dbFile: string): Buffer {
  return Buffer.concat(["", "-wal", "-shm"].filter((s) => fs.existsSync(dbFile + s)).map((s) => fs.readFileSync(dbFile + s)));
}
