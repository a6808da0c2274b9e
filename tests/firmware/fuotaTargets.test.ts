/**
 * How a LoRaWAN node becomes a FUOTA target (edge/config/firmware.ts, edge/profiles/firmware.ts,
 * edge/firmware/targets.ts): the profile method `fuota` (no register at all), the built-in
 * lora-streetlight that has it, and the GenAppKey the node's multicast keys derive from.
 */
import { describe, expect, it } from 'vitest';
import { parseConfig } from '../../edge/config/index.js';
import { resolveTargets } from '../../edge/firmware/targets.js';
import { deviceFirmwareOf, firmwareOf } from '../../edge/profiles/firmware.js';
import { loadProfiles } from '../../edge/profiles/index.js';
import { configIssues, withAcmeProfile } from '../helpers/configText.js';

const KEY = '000102030405060708090a0b0c0d0e0f';

/** A gateway with LoRaWAN nodes lamp-1 (GenAppKey), lamp-2 (OTAA: its AppKey serves), lamp-3 (ABP without one), of `profile`. */
function loraGateway(profile = 'lora-streetlight', extra = ''): string {
  return `gateway: { id: gw }
groups: [ { id: street-1 } ]
devices:
  - { id: lamp-1, devEui: 70b3d5499a000001, profile: ${profile}, groups: [street-1] }
  - { id: lamp-2, devEui: 70b3d5499a000002, profile: ${profile}, groups: [street-1] }
  - { id: lamp-3, devEui: 70b3d5499a000003, profile: ${profile}, groups: [street-1] }
lorawan:
  devices:
    - { devEui: 70b3d5499a000001, activation: abp, devAddr: 260b0001, nwkSKey: ${KEY}, appSKey: ${KEY}, genAppKey: ${KEY} }
    - { devEui: 70b3d5499a000002, activation: otaa, joinEui: '0000000000000001', appKey: ${KEY} }
    - { devEui: 70b3d5499a000003, activation: abp, devAddr: 260b0003, nwkSKey: ${KEY}, appSKey: ${KEY} }
${extra}`;
}

/** What the LoRaWAN driver answers for genAppKey (driver.ts): its own, else an OTAA node's AppKey, else none. */
const keysOf = (config: ReturnType<typeof parseConfig>['config']) => ({
  genAppKey: (id: string) => {
    const eui = config.devices.find((d) => d.id === id)?.devEui;
    const d = config.lorawan?.devices.find((x) => x.devEui === eui);
    const hex = d?.genAppKey ?? (d?.activation === 'otaa' ? d.appKey : undefined);
    return hex ? Buffer.from(hex, 'hex') : null;
  },
});

describe('the fuota method', () => {
  it('the built-in lora-streetlight takes FUOTA; a Modbus device does not', () => {
    const profiles = loadProfiles([]);
    expect(deviceFirmwareOf({ profile: 'lora-streetlight', devEui: '70b3d5499a000001' }, profiles)).toEqual({ method: 'fuota', decl: { method: 'fuota' } });
    expect(deviceFirmwareOf({ profile: 'streetlight-controller', devEui: undefined }, profiles)).toMatchObject({ method: 'registerBlock' });
  });

  it('a custom LoRaWAN profile declares it with no register; firmwareOf gives it', () => {
    const { config } = parseConfig(
      loraGateway(
        'acme-lora',
        `profiles:
  - name: acme-lora
    transport: lorawan
    kind: lighting
    firmware: { method: fuota }
`,
      ),
      { file: 'devices.yaml', env: {} },
    );
    const profiles = loadProfiles(config.profiles);
    expect(firmwareOf(profiles.get('acme-lora'))).toEqual({ method: 'fuota', decl: { method: 'fuota' } });
    expect(deviceFirmwareOf(config.devices[0]!, profiles)).toEqual({ method: 'fuota', decl: { method: 'fuota' } });
  });

  it('a Modbus profile may not declare fuota, nor a LoRaWAN profile a Modbus method, nor fuota with registers', () => {
    expect(configIssues(withAcmeProfile('    points:\n      - { name: fw, table: input, address: 9, role: firmwareVersion }\n    firmware: { method: fuota }\n'), { env: {} })).toEqual([
      '11:5 profiles[0].firmware: an update method "fuota" is LoRaWAN (transport: lorawan); this profile is transport "modbus"',
    ]);
    expect(configIssues(withAcmeProfile('    transport: lorawan\n    firmware: { method: fuota, size: 100 }\n'), { env: {} })).toEqual([expect.stringMatching(/profiles\[0\]\.firmware\.size: unknown key "size"/)]);
  });
});

describe('lorawan.fuota', () => {
  it('frequency: a frequency in no EU868 sub-band is refused when the configuration loads, naming the path', () => {
    expect(configIssues(loraGateway('lora-streetlight', '  fuota: { frequency: 869300000 }\n'), { env: {} })).toEqual([
      '12:23 lorawan.fuota.frequency: 869300000 Hz is in no EU868 sub-band (g1 868–868.6, g2 868.7–869.2, g3 869.4–869.65, g4 869.7–870, g 863–868 MHz)',
    ]);
    expect(configIssues(loraGateway('lora-streetlight', '  fuota: { frequency: 868100000 }\n'), { env: {} })).toEqual([]);
  });
});

describe('LoRaWAN nodes as targets', () => {
  it('a node with a GenAppKey (or an OTAA node, whose AppKey serves) is a fuota target', () => {
    const { config } = parseConfig(loraGateway(), { file: 'devices.yaml', env: {} });
    const r = resolveTargets({ devices: ['lamp-1', 'lamp-2'] }, config, loadProfiles([]), 'technician', [], keysOf(config));
    expect(r).toEqual({
      ok: true,
      targets: [
        { device: 'lamp-1', method: 'fuota', kind: 'lighting', bus: null, groups: ['street-1'], wave: 0 },
        { device: 'lamp-2', method: 'fuota', kind: 'lighting', bus: null, groups: ['street-1'], wave: 0 },
      ],
    });
  });

  it('a node without one refuses the deployment, naming the key to set; without the driver, any LoRaWAN node does', () => {
    const { config } = parseConfig(loraGateway(), { file: 'devices.yaml', env: {} });
    expect(resolveTargets({ groups: ['street-1'] }, config, loadProfiles([]), 'technician', [], keysOf(config))).toEqual({
      ok: false,
      code: 'E_FW_TARGET',
      reason: 'device "lamp-3" has no GenAppKey for FUOTA: set lorawan.devices[].genAppKey for DevEUI 70b3d5499a000003 (an OTAA node\'s appKey serves without one)',
    });
    expect(resolveTargets({ devices: ['lamp-1'] }, config, loadProfiles([]), 'technician', [], { unavailable: 'the LoRaWAN driver is not running (lorawan.enabled)' })).toEqual({
      ok: false,
      code: 'E_FW_TARGET',
      reason: 'device "lamp-1" is a LoRaWAN node, and the LoRaWAN driver is not running (lorawan.enabled)',
    });
  });

});
