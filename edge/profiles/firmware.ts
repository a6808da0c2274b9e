/**
 * How a device takes firmware, from its profile alone (issue 17): the update method its
 * `firmware:` section declares and the point of role firmwareVersion it reports its version in.
 * The firmware engine asks firmwareOf and nothing else: a device whose profile gives null cannot
 * be a target (E_FW_TARGET). The section itself, and the checks that make the answer whole (the
 * version point exists and is numeric, registers do not overlap), are the config's
 * (edge/config/firmware.ts).
 */
import type { FirmwareMethod, PointConfig, ProfileConfig, ProfileFirmware } from '../config/schema.js';

export interface DeviceFirmware {
  method: FirmwareMethod;
  /** the profile's `firmware:` section, as declared (defaults filled in) */
  decl: ProfileFirmware;
  /** the point of role firmwareVersion: read before an update and after the device's reboot */
  versionPoint: PointConfig;
}

/**
 * The update method of a Modbus profile, or null when it declares none (or is LoRaWAN, or lacks
 * its version point: never valid config, the schema refuses it; read as no method, never guessed).
 */
export function firmwareOf(profile: Pick<ProfileConfig, 'transport' | 'points' | 'firmware'> | undefined): DeviceFirmware | null {
  const decl = profile?.firmware;
  if (profile === undefined || decl === undefined || profile.transport !== 'modbus') return null;
  const versionPoint = profile.points.find((p) => p.role === 'firmwareVersion');
  if (versionPoint === undefined) return null;
  return { method: decl.method, decl, versionPoint };
}
