/**
 * How a device takes firmware, from its profile alone (issue 17, issue 18): the update method its
 * `firmware:` section declares and, for a Modbus controller, the point of role firmwareVersion it
 * reports its version in (a LoRaWAN node reports it in TS006 DevVersionAns). The firmware engine
 * asks firmwareOf / deviceFirmwareOf and nothing else: a device that gets null cannot be a target
 * (E_FW_TARGET). The section itself, and the checks that make the answer whole (the version point
 * exists and is numeric, registers do not overlap, the method is the transport's), are the
 * config's (edge/config/firmware.ts).
 */
import type { DeviceConfig, FuotaFirmware, PointConfig, ProfileConfig, ProfileFirmware } from '../config/schema.js';
import { LORA_STREETLIGHT_PROFILE } from './loraStreetlight.js';

export type DeviceFirmware =
  | {
      method: ProfileFirmware['method'];
      /** the profile's `firmware:` section, as declared (defaults filled in) */
      decl: ProfileFirmware;
      /** the point of role firmwareVersion: read before an update and after the device's reboot */
      versionPoint: PointConfig;
    }
  | { method: 'fuota'; decl: FuotaFirmware };

/**
 * The built-in `lora-streetlight` codec (loraStreetlight.ts, code rather than a YAML file) takes
 * firmware over the air: its nodes implement TS003–TS006.
 */
export const LORA_STREETLIGHT_FIRMWARE: FuotaFirmware = { method: 'fuota' };

/**
 * The update method a profile declares, or null when it declares none (or one of another transport,
 * or a Modbus one without its version point: never valid config, the schema refuses it; read as no
 * method, never guessed).
 */
export function firmwareOf(profile: Pick<ProfileConfig, 'transport' | 'points' | 'firmware'> | undefined): DeviceFirmware | null {
  const decl = profile?.firmware;
  if (profile === undefined || decl === undefined) return null;
  if (decl.method === 'fuota') return profile.transport === 'lorawan' ? { method: 'fuota', decl } : null;
  if (profile.transport !== 'modbus') return null;
  const versionPoint = profile.points.find((p) => p.role === 'firmwareVersion');
  if (versionPoint === undefined) return null;
  return { method: decl.method, decl, versionPoint };
}

/**
 * The update method of a device of devices.yaml: its profile's, and for a LoRaWAN node of the
 * built-in `lora-streetlight` (which no YAML file declares) FUOTA; a custom profile of that name
 * replaces the built-in's answer with its own `firmware:` section.
 */
export function deviceFirmwareOf(device: Pick<DeviceConfig, 'profile' | 'devEui'>, profiles: { get(name: string): ProfileConfig | undefined }): DeviceFirmware | null {
  const profile = profiles.get(device.profile);
  if (device.devEui !== undefined && profile === undefined && device.profile === LORA_STREETLIGHT_PROFILE) {
    return { method: 'fuota', decl: LORA_STREETLIGHT_FIRMWARE };
  }
  const fw = firmwareOf(profile);
  // a LoRaWAN node takes no Modbus method, a Modbus controller no FUOTA
  return fw !== null && (fw.method === 'fuota') === (device.devEui !== undefined) ? fw : null;
}
