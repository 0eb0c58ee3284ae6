// GET /v1/watch long-polls (README "Socket API"): immediate answers, waits woken
// by a changed value, 304 on timeout, and the error codes, against a real daemon
// whose policy lets us read demo/api-token, demo/db-password and x/** (nothing
// configured there) but not demo/kafka-password.
import assert from "node:assert/strict";
import fs from "node:fs";
import path from "node:path";
import { test } from "node:test";
import { demoConfig, eventually, launch, sleep, type RunningDaemon } from "../../support/daemon.js";
import { planted } from "../../support/planted.js";
import { tmpDir } from "../../support/tmp.js";
import { startRequest } from "../../support/http.js";
import { API_TOKEN, DB_PASSWORD, assertApiError, assertServing } from "./api-helpers.js";

const ME = process.getuid?.() ?? 0;

async function start(t: Parameters<typeof tmpDir>[0], extraSecrets: string[] = []): Promise<RunningDaemon> {
  const dir = tmpDir(t);
  const policy = [{ match: { uid: ME }, allow: ["demo/api-token", "demo/db-password", "x/**"], admin: true }];
  return launch(t, dir, demoConfig(dir, { policy }), { waitFor: "synced", extraSecrets });
}

async function revision(d: RunningDaemon): Promise<number> {
  const r = await d.get("/v1/watch?names=demo/api-token");
  assert.equal(r.status, 200);
  return r.json().revision as number;
}

/** Rewrites a demo secret file with a new value and asks for a sync. */
async function change(d: RunningDaemon, file: string, content: string): Promise<void> {
  fs.writeFileSync(path.join(d.dir, "secrets", file), content);
  const r = await d.get("/v1/refresh", { method: "POST" });
  assert.equal(r.status, 202);
}

test("without since: an immediate 200 with the current revision and nothing changed", async (t) => {
  const d = await start(t);
  const t0 = Date.now();
  const r = await d.get("/v1/watch?names=demo/api-token,demo/db-password");
  assert.ok(Date.now() - t0 < 2_000, "answered at once");
  assert.equal(r.status, 200);
  const j = r.json();
  assert.deepEqual(Object.keys(j).sort(), ["changed", "revision"]);
  assert.ok(Number.isSafeInteger(j.revision) && j.revision >= 1, `a revision after the first sync: ${j.revision}`);
  assert.deepEqual(j.changed, []);
  assert.equal((await d.get("/v1/health")).json().revision, j.revision, "the same revision health reports");
});

test("since=current waits; a changed value plus a refresh wakes it with 200 and the changed name", async (t) => {
  const value = planted("watch");
  const d = await start(t, [value]);
  const rev = await revision(d);
  const w = startRequest(d.socket, `/v1/watch?names=demo/api-token,demo/db-password&since=${rev}&timeout=20s`);
  await sleep(500);
  assert.equal(w.settled, false, "the watch is still waiting with nothing changed");

  await change(d, "api-token", value + "\n");
  const r = await w.promise;
  assert.equal(r.status, 200);
  const j = r.json();
  assert.deepEqual(j.changed, ["demo/api-token"], "only the name that changed");
  assert.ok(j.revision > rev, `revision moved on: ${rev} -> ${j.revision}`);
  assert.ok(!r.body.includes(value), "a watch answer never carries values");

  const now = await d.get("/v1/secrets/demo/api-token");
  assert.equal(now.json().value, value);
  assert.equal(now.json().version, 2);

  // A client that was away catches up at once from an older revision...
  const late = await d.get(`/v1/watch?names=demo/api-token,demo/db-password&since=${rev}&timeout=20s`);
  assert.equal(late.status, 200);
  assert.deepEqual(late.json().changed, ["demo/api-token"]);
  // ...and one at the new revision waits again (here until its timeout).
  const caughtUp = await d.get(`/v1/watch?names=demo/api-token,demo/db-password&since=${j.revision}&timeout=1s`);
  assert.equal(caughtUp.status, 304);
});

test("timeout=1s with no change answers 304 with no body", async (t) => {
  const d = await start(t);
  const rev = await revision(d);
  const t0 = Date.now();
  const r = await d.get(`/v1/watch?names=demo/api-token&since=${rev}&timeout=1s`, { timeoutMs: 10_000 });
  const ms = Date.now() - t0;
  assert.equal(r.status, 304);
  assert.equal(r.body, "");
  assert.ok(ms >= 900, `waited for the timeout (${ms} ms)`);
  assert.ok(ms < 5_000, `answered soon after the timeout (${ms} ms)`);
});

test("a refresh that changes no value does not wake a watcher; a change to another secret does not either", async (t) => {
  const value = planted("other");
  const d = await start(t, [value]);
  const rev = await revision(d);
  const w = startRequest(d.socket, `/v1/watch?names=demo/api-token&since=${rev}&timeout=2s`);
  await sleep(200);
  assert.equal((await d.get("/v1/refresh", { method: "POST" })).status, 202);
  await change(d, "database.json", JSON.stringify({ username: "pipeline", password: value }));
  await eventually(async () => (await d.get("/v1/secrets/demo/db-password?format=raw")).body === value, 5_000, "db-password changed");
  const r = await w.promise;
  assert.equal(r.status, 304, "the api-token watcher saw no change");
  assert.ok((await revision(d)) > rev, "the store revision did move (for db-password)");
});

test("since from the future (the store was reset) answers at once with every watched name", async (t) => {
  const d = await start(t);
  const rev = await revision(d);
  const r = await d.get(`/v1/watch?names=demo/api-token,demo/db-password&since=${rev + 1000}&timeout=20s`);
  assert.equal(r.status, 200);
  assert.deepEqual(r.json().changed.sort(), ["demo/api-token", "demo/db-password"]);
});

test("errors: unknown name 404, forbidden name 403, bad parameters 400", async (t) => {
  const d = await start(t);
  const rev = await revision(d);
  for (const q of [`names=x/nope&since=${rev}`, "names=x/nope", `names=demo/api-token,x/nope&since=${rev}`]) {
    const j = assertApiError(await d.get(`/v1/watch?${q}&timeout=5s`), 404, "not_found");
    assert.match(j.message, /x\/nope/);
  }
  for (const q of [`names=demo/kafka-password&since=${rev}`, "names=demo/kafka-password", `names=demo/api-token,demo/kafka-password&since=${rev}`]) {
    assertApiError(await d.get(`/v1/watch?${q}&timeout=5s`), 403, "forbidden");
  }
  for (const q of [
    "",
    "names=",
    "names=,,",
    "names=Demo/API",
    "names=demo/../demo/api-token",
    "names=demo/api-token&since=-1",
    "names=demo/api-token&since=abc",
    "names=demo/api-token&since=1.5",
    "names=demo/api-token&timeout=abc",
    "names=demo/api-token&timeout=301s",
    "names=demo/api-token&timeout=1h",
    "names=" + Array.from({ length: 257 }, (_, i) => i.toString(36)).join(","), // more than 256 names
  ]) {
    assertApiError(await d.get(`/v1/watch?${q}`), 400, "bad_request");
  }
});

test("clients disconnecting mid-wait do not break the other watchers", async (t) => {
  const value = planted("db");
  const d = await start(t, [value]);
  const rev = await revision(d);
  const leaving = Array.from({ length: 10 }, () => startRequest(d.socket, `/v1/watch?names=demo/db-password&since=${rev}&timeout=20s`));
  const staying = startRequest(d.socket, `/v1/watch?names=demo/db-password,demo/api-token&since=${rev}&timeout=20s`);
  const otherName = startRequest(d.socket, `/v1/watch?names=demo/api-token&since=${rev}&timeout=3s`);
  await sleep(300);
  for (const w of leaving) w.abandon();
  await sleep(200);
  // Lookups and new watches work while the abandoned waits are cleaned up.
  await assertServing(d);
  assert.equal((await d.get("/v1/secrets/demo/db-password?format=raw")).body, DB_PASSWORD);
  assert.equal(staying.settled, false);

  await change(d, "database.json", JSON.stringify({ password: value }));
  const r = await staying.promise;
  assert.equal(r.status, 200);
  assert.deepEqual(r.json().changed, ["demo/db-password"]);
  assert.ok(r.json().revision > rev);
  const o = await otherName.promise;
  assert.equal(o.status, 304, "a watcher of an unchanged name times out normally");

  assert.equal((await d.get("/v1/secrets/demo/api-token?format=raw")).body, API_TOKEN);
  assert.equal((await d.get("/v1/health")).status, 200);
  assert.doesNotMatch(d.output(), /request failed|"level":(50|60)/, "no internal error logged");
});
