import { MemoryJtiStore } from "../src/fleet/jti-store.js";
import { createLogger } from "../src/log.js";
import { MqttPart, type MqttEvent } from "../src/mqtt/part.js";
import { systemClock } from "../src/sync/clock.js";
import { FakeFleetCore } from "../test/support/fleet-core.js";
import { Mosquitto } from "../test/support/mosquitto.js";
import { peakOverMean, simulateRestart } from "./fleet-sim.js";
import { removeDir, tempDir, track } from "./support/cleanup.js";
import { emit, note, target } from "./support/report.js";

const CLIENTS = 1_000;
/** How long the broker is down in the restart (SIGTERM, then start on the same port). */
const DOWN_MS = 2_000;
const WINDOW_MS = 60_000;
/** The daemon's defaults (mqtt.reconnect), with a connection counting as established after 5 s instead of 30 s to keep the bench short. */
const RECONNECT = { min: 1_000, max: 300_000, spread: 60_000 };
const STABLE_MS = 5_000;

/**
 * A fleet reconnecting after a broker restart. Real: CLIENTS MQTT parts (the
 * daemon's own src/mqtt/part.ts, each with its persistent session, status and
 * backoff; plain mqtt:// to a local mosquitto, so the bench measures the
 * schedule rather than TLS handshakes on 2 cores) in this one process; the broker
 * is stopped, started again DOWN_MS later, and every connection attempt in the
 * minute after the stop is counted per second. Simulated: the same scheduler on
 * a fake clock for 1,000 and 10,000 gateways, with the default spread and with
 * plain full jitter from 1 s, for comparison. Figure: attempt-rate peak over
 * mean (per second, over the first minute; target ≤ 2).
 */
export async function fleetBench(): Promise<void> {
  await realRestart("real", RECONNECT.spread);
  await realRestart("real_plain", 0);
  for (const clients of [1_000, 10_000]) {
    for (const [label, spreadMs] of [
      ["spread", RECONNECT.spread],
      ["plain", 0],
    ] as const) {
      const r = simulateRestart({ clients, downMs: DOWN_MS, backoff: { minMs: RECONNECT.min, maxMs: RECONNECT.max, spreadMs, stableMs: STABLE_MS } });
      emit("fleet", `sim_${label}_${clients}_peak_over_mean`, r.peakOverMean, "ratio");
      emit("fleet", `sim_${label}_${clients}_reconnected_share_60s`, r.reconnected / clients, "ratio");
    }
  }
}

/** One restart of the broker under CLIENTS parts whose mqtt.reconnect.spread is `spreadMs`; figures prefixed `label`. */
async function realRestart(label: string, spreadMs: number): Promise<void> {
  const dir = tempDir("scb-mqtt-");
  const cleanups: (() => void | Promise<void>)[] = [];
  const parts: MqttPart[] = [];
  try {
    const broker = await Mosquitto.startAnonymous({ after: (fn) => cleanups.push(fn) }, dir);
    broker.onSpawn = (c) => void track(c);
    const events: (MqttEvent & { client: number })[] = [];
    const logger = createLogger({ level: "silent" });
    for (let i = 0; i < CLIENTS; i++) {
      const device = `bench-${String(i).padStart(4, "0")}`;
      const part = new MqttPart({
        config: {
          url: broker.url,
          device_id: device,
          client_id: device,
          topic_prefix: "sealcache",
          session_expiry: 3_600_000,
          reconnect: { ...RECONNECT, spread: spreadMs },
          commands: { trust: {}, max_lifetime: 86_400_000 },
        },
        secretNames: false,
        logger,
        core: new FakeFleetCore([]),
        jtis: new MemoryJtiStore(),
        clock: systemClock,
        timing: { stableMs: STABLE_MS },
        onEvent: (e) => events.push({ ...e, client: i }),
      });
      parts.push(part);
      await part.start();
    }
    const connected = () => parts.filter((p) => p.state().state === "connected").length;
    const until = Date.now() + 60_000;
    while (connected() < CLIENTS && Date.now() < until) await sleep(100);
    note(`fleet: ${connected()} of ${CLIENTS} clients connected; waiting ${STABLE_MS / 1000 + 1} s for the connections to count as established`);
    await sleep(STABLE_MS + 1_000);

    const t0 = performance.now();
    await broker.stop();
    await sleep(DOWN_MS);
    await broker.start();
    const restartedAt = performance.now() - t0;
    await sleep(WINDOW_MS - (performance.now() - t0));
    const perSecond = new Array<number>(WINDOW_MS / 1000).fill(0);
    const firstConnect = new Map<number, number>();
    for (const e of events) {
      const at = e.mono - t0;
      if (at < 0 || at >= WINDOW_MS) continue;
      if (e.type === "attempt") perSecond[Math.floor(at / 1000)]!++;
      if (e.type === "connected" && !firstConnect.has(e.client)) firstConnect.set(e.client, at);
    }
    const ratio = peakOverMean(perSecond);
    const times = [...firstConnect.values()].sort((a, b) => a - b);
    note(
      `fleet: ${label} (spread ${spreadMs / 1000} s): broker stopped at 0 s, listening again at ${(restartedAt / 1000).toFixed(1)} s; attempts per second: ${perSecond.join(" ")}`,
    );
    emit("fleet", `${label}_clients`, CLIENTS, "requests");
    emit(
      "fleet",
      `${label}_attempts_first_minute`,
      perSecond.reduce((a, b) => a + b, 0),
      "requests",
    );
    emit("fleet", `${label}_peak_attempts_per_s`, Math.max(...perSecond), "req/s");
    emit("fleet", `${label}_peak_over_mean`, ratio, "ratio");
    if (spreadMs > 0) target("fleet", `${label}_peak_over_mean`, ratio, "<=", 2);
    emit("fleet", `${label}_reconnected_share_60s`, times.length / CLIENTS, "ratio");
    if (times.length > 0) emit("fleet", `${label}_reconnect_median_s`, times[Math.floor(times.length / 2)]! / 1000, "s");
  } finally {
    await Promise.all(parts.map((p) => p.stop()));
    for (const fn of cleanups.reverse()) await fn();
    removeDir(dir);
  }
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, Math.max(0, ms)));
}
