// A gateway's wall clock is not to be trusted: it boots at 1970 without a
// real-time clock and NTP steps it later, by years. Schedules and ages run on the
// monotonic clock; the wall clock is for display and for what survives a restart.
import assert from "node:assert/strict";
import fs from "node:fs";
import path from "node:path";
import { describe, test } from "node:test";
import { demoConfig, eventually, launch, sleep, type RunningDaemon } from "../../support/daemon.js";
import { fakeWallClock } from "../../support/faketime.js";
import { DEMO_VALUES, planted } from "../../support/planted.js";
import { tmpDir } from "../../support/tmp.js";

interface Answer {
  status: number;
  value?: string;
  stale?: boolean;
  age_s?: number | null;
  fetched_at?: string;
  age: string | undefined;
}

async function lookup(d: RunningDaemon, name: string): Promise<Answer> {
  const r = await d.get(`/v1/secrets/${name}`);
  const j = r.status === 200 ? r.json<{ value: string; stale: boolean; age_s: number | null; fetched_at: string }>() : {};
  return { status: r.status, ...j, age: r.headers.age as string | undefined };
}

const syncs = (d: RunningDaemon) => (d.output().match(/"msg":"sync batch applied"/g) ?? []).length;

describe("wall-clock steps", { timeout: 90_000 }, () => {
  test("restarted at 1970 over a cache filled today: values are stale of unknown age (never 'fresh, age 0'), and a sync runs at once", async (t) => {
    const dir = tmpDir(t);
    const config = demoConfig(dir);
    const first = await launch(t, dir, config, { waitFor: "synced" });
    await first.stop();
    // The backend is out of reach at boot (the folder is gone), so what the cache holds is all there is.
    const secretsDir = path.join(dir, "secrets");
    fs.renameSync(secretsDir, `${secretsDir}.away`);
    const clock = fakeWallClock(dir, "@1970-01-02 00:00:00");
    const d = await launch(t, dir, config, { env: clock.env });
    await eventually(() => /provider unreachable/.test(d.output()), 10_000, "the first sync attempt, at once");
    const a = await lookup(d, "demo/api-token");
    assert.equal(a.status, 200, "still served");
    assert.equal(a.value, DEMO_VALUES[0]);
    assert.equal(a.stale, true, "not fresh: its age cannot be known");
    assert.equal(a.age_s, null);
    assert.equal(a.age, undefined, "no Age header rather than a wrong 0");
    assert.ok(Date.parse(a.fetched_at!) > Date.parse("2026-01-01"), "fetched_at is the recorded one");
    const health = (await d.get("/v1/health")).json<{ status: string; secrets: { stale: number } }>();
    assert.equal(health.status, "degraded");
    assert.equal(health.secrets.stale, 3);
    // The backend comes back: refreshed on the backoff schedule, not 57 years from now.
    fs.renameSync(`${secretsDir}.away`, secretsDir);
    const fresh = await eventually(
      async () => {
        const x = await lookup(d, "demo/api-token");
        return x.stale === false && x;
      },
      15_000,
      "a fresh value",
    );
    assert.ok(fresh.age_s !== null && fresh.age_s! <= 2, `age ${fresh.age_s}`);
  });

  test("stepped back a day while running: refreshes go on, a rotation is served, ages stay true, the step is logged once", async (t) => {
    const dir = tmpDir(t);
    const clock = fakeWallClock(dir);
    const config = demoConfig(dir, { sync: { interval: "1s", jitter: 0.2, backoff_min: "200ms", backoff_max: "1s" } });
    const d = await launch(t, dir, config, { waitFor: "synced", env: clock.env });
    clock.step("-1d");
    await eventually(() => /wall clock stepped/.test(d.output()), 65_000, "the step noticed");
    const rotated = planted("after-step");
    fs.writeFileSync(path.join(dir, "secrets/api-token"), `${rotated}\n`);
    const a = await eventually(
      async () => {
        const x = await lookup(d, "demo/api-token");
        return x.value === rotated && x;
      },
      5_000,
      "the rotation served after the step",
    );
    assert.equal(a.stale, false);
    assert.ok(a.age_s !== null && a.age_s! >= 0 && a.age_s! <= 2, `age ${a.age_s}`);
    const before = syncs(d);
    await sleep(3_000);
    assert.ok(syncs(d) - before >= 2, "still syncing every second");
    assert.equal((d.output().match(/wall clock stepped/g) ?? []).length, 1, "logged once");
  });

  test("stepped forward two days: a value confirmed seconds ago is not expired (max_stale), and stays fresh", async (t) => {
    const dir = tmpDir(t);
    const clock = fakeWallClock(dir);
    const config = demoConfig(dir, { sync: { interval: "30s", max_stale: "1h", backoff_min: "200ms", backoff_max: "1s" } });
    const d = await launch(t, dir, config, { waitFor: "synced", env: clock.env });
    clock.step("+2d");
    await sleep(100);
    const a = await lookup(d, "demo/api-token");
    assert.equal(a.status, 200, "not 410 expired");
    assert.equal(a.stale, false);
    assert.ok(a.age_s !== null && a.age_s! <= 2, `age ${a.age_s}`);
    assert.ok(Date.parse(a.fetched_at!) > Date.now() + 86_400_000, "fetched_at is shown in the (stepped) wall clock of now");
  });
});
