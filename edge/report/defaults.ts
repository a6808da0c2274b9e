/**
 * The built-in report strategies (strategy.ts), as data with the reason for each: per point role
 * (edge/profiles/pointRoles.ts), per LoRaWAN radio point, and the LoRaWAN heartbeat of those defaults on a node. A
 * profile point's own `report:` and devices.yaml come first (policy.ts); README "Report
 * strategies" shows this table.
 */
import { LORAWAN_HEARTBEAT, type RadioPoint } from '../profiles/loraStreetlight.js';
import type { PointRole } from '../profiles/pointRoles.js';
import { DEFAULT_STRATEGY, type ReportStrategy } from './strategy.js';

export interface ReportDefault {
  strategy: ReportStrategy;
  /** why this strategy fits, in one line */
  why: string;
}

const onChange = (why: string): ReportDefault => ({ strategy: DEFAULT_STRATEGY, why });
const absolute = (deadband: number, why: string): ReportDefault => ({ strategy: Object.freeze({ ...DEFAULT_STRATEGY, deadband }), why });
const percent = (deadbandPercent: number, why: string): ReportDefault => ({ strategy: Object.freeze({ ...DEFAULT_STRATEGY, deadbandPercent }), why });

/** Every role's strategy: every change of what is commanded or counted; a deadband on what is measured. All with a 15 min heartbeat. */
export const ROLE_DEFAULTS = {
  targetLightLevel: onChange('a dim setpoint changes a few times a night, and each change is a command'),
  switch: onChange('each switching is an event'),
  rampTime: onChange('a setting: changes only when someone sets it'),
  actualLightLevel: onChange('follows the setpoint in whole percents: a few steps a night'),
  activePower: percent(2, 'W: 2 % passes a driver\'s ripple; a failing lamp or a dim step is far beyond it'),
  activeEnergy: absolute(0.1, 'kWh counter: 0.1 kWh steps keep a day\'s consumption exact to 0.1 kWh'),
  operatingHours: onChange('a counter that steps once an hour'),
  lampFailure: onChange('a lamp failure is always stored (every change: no deadband, no minimum interval)'),
  supplyVoltage: percent(2, 'V: 2 % (4.6 V at 230 V) passes mains flicker; a sag or swell beyond it is stored'),
  temperature: absolute(0.5, '°C: half a degree passes a sensor\'s jitter; a driver heating up is stored'),
  firmwareVersion: onChange('changes at an update'),
  programRequest: onChange('each request (and its release) is a command'),
  requestExpiry: onChange('the dead-man counting down: each value shows the request alive'),
  mode: onChange('each change of mode matters (requests are taken only in some)'),
  activeProgram: onChange('each program switch is an event'),
  requestStatus: onChange('each state of a request (active, rejected, expired) is an answer to it'),
} as const satisfies Record<PointRole, ReportDefault>;

/** A strategy for a LoRaWAN device's point: its heartbeat, if it has one, at least LORAWAN_HEARTBEAT (uplinks come minutes apart: loraStreetlight.ts). */
export function onLoRaWAN(s: ReportStrategy): ReportStrategy {
  return s.heartbeat === 0 || s.heartbeat >= LORAWAN_HEARTBEAT ? s : Object.freeze({ ...s, heartbeat: LORAWAN_HEARTBEAT });
}

const radio = (deadband: number, why: string): ReportDefault => ({ strategy: onLoRaWAN({ ...DEFAULT_STRATEGY, deadband }), why });

/** The radio quality of every LoRaWAN uplink (RADIO_POINTS of edge/profiles/loraStreetlight.ts). */
export const RADIO_DEFAULTS = {
  rssi: radio(6, 'dBm: fading moves it a few dB from one uplink to the next; 6 dB (a quarter of the power) is a change of the link'),
  snr: radio(3, 'dB: a few dB of noise between uplinks; 3 dB is a change of the link'),
  dr: radio(0, 'each data rate step (ADR) is a change of the link'),
  gateways: radio(0, 'each change of how many forwarders heard the node is a change of coverage'),
  txPower: radio(0, 'dBm: each TX power step (ADR) is a change of the link'),
  battery: radio(5, '%: a node reports it once a day (DevStatusReq); 5 points pass the jitter of a battery under load'),
  externalPower: radio(0, 'each switch between mains and battery is an event'),
  margin: radio(3, 'dB: as snr, 3 dB is a change of the link'),
} as const satisfies Record<RadioPoint, ReportDefault>;
