import { FLEET_AUDIENCE } from "../fleet/verify.js";

/** The topics of one gateway (README "Fleet channel (MQTT)"). */
export interface FleetTopics {
  /** Retained status, and the will. */
  readonly status: string;
  /** `{jti, ok, code, message}` for every command. */
  readonly result: string;
  /** Commands for this device. */
  readonly cmd: string;
  /** Commands for every device. */
  readonly fleetCmd: string;
}

export function fleetTopics(prefix: string, deviceId: string): FleetTopics {
  return {
    status: `${prefix}/${deviceId}/status`,
    result: `${prefix}/${deviceId}/result`,
    cmd: `${prefix}/${deviceId}/cmd`,
    fleetCmd: `${prefix}/${FLEET_AUDIENCE}/cmd`,
  };
}
