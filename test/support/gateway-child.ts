// A gateway's MQTT part over a FakeFleetCore in a process of its own, so a test can
// SIGKILL it (the will) or stop it cleanly (SIGTERM). argv[2]: a JSON file with
// { config: MqttConfig }. Prints one JSON line per part event on stdout.
import fs from "node:fs";
import { MemoryJtiStore } from "../../src/fleet/jti-store.js";
import { createLogger } from "../../src/log.js";
import { MqttPart } from "../../src/mqtt/part.js";
import { systemClock } from "../../src/sync/clock.js";
import { FakeFleetCore } from "./fleet-core.js";

const { config } = JSON.parse(fs.readFileSync(process.argv[2]!, "utf8"));
const part = new MqttPart({
  config,
  secretNames: false,
  logger: createLogger({ level: "info", destination: process.stderr }).child({ part: "mqtt" }),
  core: new FakeFleetCore(),
  jtis: new MemoryJtiStore(),
  clock: systemClock,
  timing: { statusMinIntervalMs: 500, keepaliveS: 5 },
  onEvent: (e) => process.stdout.write(JSON.stringify(e) + "\n"),
});
process.on("SIGTERM", () => void part.stop().then(() => process.exit(0)));
await part.start();
