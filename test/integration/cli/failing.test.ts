// A secret whose refresh fails is visible where an operator looks: `status` names
// it with its error (bounded), /v1/health names it where metrics.secret_names
// allows (counts otherwise), the sync log line carries the cause, doctor warns.
import assert from "node:assert/strict";
import fs from "node:fs";
import path from "node:path";
import { test } from "node:test";
import { cli, demoConfig, eventually, launch, type RunningDaemon } from "../../support/daemon.js";
import { assertNoLeaks } from "../../support/planted.js";
import { tmpDir } from "../../support/tmp.js";

interface Health {
  status: string;
  secrets: { errors: number };
  failing: { count: number; by_provider: Record<string, number>; secrets: { name: string; provider: string; state: string; error: string }[] | null };
}

const health = async (d: RunningDaemon): Promise<Health> => (await d.get("/v1/health")).json();

/** The demo secrets synced, then api-token's file removed and a refresh run, so that one secret fails. */
async function oneFailing(t: Parameters<typeof launch>[0], patch: Record<string, unknown> = {}): Promise<{ d: RunningDaemon; dir: string }> {
  const dir = tmpDir(t);
  const d = await launch(t, dir, demoConfig(dir, patch), { waitFor: "synced" });
  fs.rmSync(path.join(dir, "secrets", "api-token"));
  assert.equal((await d.get("/v1/refresh", { method: "POST" })).status, 202);
  await eventually(async () => (await health(d)).secrets.errors === 1, 10_000, "the removed file recorded as an error");
  return { d, dir };
}

test("one failing secret (its file removed)", async (t) => {
  const { d, dir } = await oneFailing(t);
  const missing = `${path.join(dir, "secrets", "api-token")} does not exist`;
  const c = ["--config", d.configFile];

  await t.test("status names it with its state and error", async () => {
    const st = await cli(["status", ...c]);
    assert.equal(st.code, 0, st.stderr);
    assert.match(st.stdout, /, 1 with errors$/m);
    const lines = st.stdout.split("\n");
    const head = lines.findIndex((l) => /^FAILING SECRET\s+STATE\s+ERROR$/.test(l));
    assert.ok(head >= 0, `status has a table of failing secrets:\n${st.stdout}`);
    assert.match(lines[head + 1]!, new RegExp(`^demo/api-token\\s+stale\\s+${missing.replace(/[.*+?^${}()|[\]\\/]/g, "\\$&")}$`));
    assert.equal(lines[head + 2], "", "one row: only the failing secret");
  });

  await t.test("/v1/health counts it per provider, naming nothing without metrics.secret_names", async () => {
    // Any account that can open the socket reads /v1/health.
    const r = await d.get("/v1/health");
    assert.ok(!r.body.includes("demo/api-token") && !r.body.includes("does not exist"), `health names no secret and no error by default: ${r.body}`);
    const h = r.json() as Health;
    assert.equal(h.status, "degraded");
    assert.deepEqual(h.failing, { count: 1, by_provider: { demo: 1 }, secrets: null });
  });

  await t.test("the sync log line carries the cause", () => {
    const log = d
      .output()
      .split("\n")
      .find((l) => l.includes("secret not refreshed; cached value kept") && l.includes('"demo/api-token"'));
    assert.ok(log, "the sync log line is there");
    assert.equal(JSON.parse(log).err, missing, `the log line carries the cause: ${log}`);
  });

  await t.test("doctor warns (socket degraded, and the secret with its error); exit 0", async () => {
    const doc = await cli(["doctor", ...c]);
    assert.equal(doc.code, 0, "a failing secret is a warning, not a failure");
    const dl = doc.stdout.split("\n");
    assert.ok(dl.includes(`warn  socket: daemon answers on ${d.socket}: degraded (1 secret failing, 1 stale)`), doc.stdout);
    assert.ok(dl.includes(`warn  secret: demo/api-token (stale): ${missing}`), doc.stdout);
    assert.ok(!dl.some((l) => l.startsWith("ok    socket: daemon answers")), doc.stdout);
    const j = JSON.parse((await cli(["doctor", "--json", ...c])).stdout) as { ok: boolean; checks: { check: string; level: string; message: string }[] };
    assert.equal(j.ok, true);
    assert.ok(j.checks.some((x) => x.check === "secret" && x.level === "warn" && x.message === `demo/api-token (stale): ${missing}`));
  });
});

test("twelve failing secrets with metrics.secret_names: health names the first 10 with their errors, status shows 10 and counts the rest", async (t) => {
  const dir = tmpDir(t);
  const base = demoConfig(dir);
  const extra = Object.fromEntries(Array.from({ length: 12 }, (_, i) => [`gone/s${String(i).padStart(2, "0")}`, { provider: "demo", path: `gone-${i}` }]));
  const d = await launch(t, dir, { ...base, secrets: { ...(base.secrets as object), ...extra }, metrics: { secret_names: true } }, { waitFor: "socket" });
  const h = await eventually(
    async () => {
      const x = await health(d);
      return x.failing?.count === 12 ? x : undefined;
    },
    10_000,
    "12 failing secrets",
  );
  assert.deepEqual(h.failing.by_provider, { demo: 12 });
  assert.equal(h.failing.secrets!.length, 10);
  assert.deepEqual(
    h.failing.secrets!.map((s) => s.name),
    Object.keys(extra).slice(0, 10),
  );
  for (const [i, s] of h.failing.secrets!.entries()) {
    assert.equal(s.provider, "demo");
    assert.equal(s.state, "not_synced");
    assert.equal(s.error, `${path.join(dir, "secrets", `gone-${i}`)} does not exist`);
  }

  const st = await cli(["status", "--config", d.configFile]);
  assert.equal(st.code, 0, st.stderr);
  const rows = st.stdout.split("\n").filter((l) => l.startsWith("gone/"));
  assert.deepEqual(
    rows.map((l) => l.split(/\s+/)[0]),
    Object.keys(extra).slice(0, 10),
  );
  assert.match(st.stdout, /^\.\.\. and 2 more \(sealcache list shows every secret's error\)$/m);
  assertNoLeaks(st.stdout, "status");
});

test("failing secrets the caller may not read: status names those it may, and counts the others", async (t) => {
  const uid = process.getuid?.() ?? 0;
  const dir = tmpDir(t);
  const base = demoConfig(dir, { policy: [{ match: { uid }, allow: ["demo/*"], admin: true }] });
  const d = await launch(
    t,
    dir,
    { ...base, secrets: { ...(base.secrets as object), "other/missing": { provider: "demo", path: "no-such-file" } } },
    { waitFor: "socket" },
  );
  await eventually(async () => (await d.get("/v1/health")).json().secrets?.ok === 3, 10_000, "the demo secrets synced");
  fs.rmSync(path.join(dir, "secrets", "api-token"));
  assert.equal((await d.get("/v1/refresh", { method: "POST" })).status, 202);
  await eventually(async () => (await health(d)).failing.count === 2, 10_000, "both failing");
  const st = await cli(["status", "--config", d.configFile]);
  assert.equal(st.code, 0, st.stderr);
  assert.match(st.stdout, /^demo\/api-token\s+stale\s+/m);
  assert.ok(!st.stdout.includes("other/missing"), "a name this account may not read is not shown");
  assert.match(
    st.stdout,
    /^1 failing secret is not named: this account may not read it \(names are shown to an account the policy lets read them, or to any with metrics\.secret_names: true\)$/m,
  );
});
