/**
 * firmwareOf (edge/profiles/firmware.ts): the one answer the firmware engine asks of a profile,
 * its update method and version point. The built-in Modbus profiles declare one each (a
 * register-block bootloader, file records); a profile without `firmware:` has none; a bad
 * declaration never gets that far: a profile file or a devices.yaml refuses it with the field
 * path (and line:col in a devices.yaml).
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { parseConfig, type ProfileConfig } from '../../edge/config/index.js';
import { StreetboxError } from '../../edge/errors.js';
import { firmwareOf } from '../../edge/profiles/firmware.js';
import { loadProfileFile, loadProfiles } from '../../edge/profiles/index.js';
import { configIssues, withAcmeProfile } from '../helpers/configText.js';

const builtins = loadProfiles([]);

/** The issues of a devices.yaml, each as `line:col path: message`. */
const issues = (text: string): string[] => configIssues(text, { env: {} });

describe('firmwareOf: the built-in profiles', () => {
  it('streetlight-controller: a register-block bootloader (left by writing 0 where 0xB007 entered it), version in holding 30', () => {
    const fw = firmwareOf(builtins.get('streetlight-controller'));
    expect(fw).toEqual({
      method: 'registerBlock',
      decl: {
        method: 'registerBlock',
        enter: { register: 110, value: 0xb007 },
        block: { register: 112, registers: 120 },
        size: 100,
        checksum: 102,
        commit: { register: 104, value: 0xc0de },
        abort: { register: 110, value: 0 },
        rebootS: 30,
      },
      versionPoint: expect.objectContaining({ name: 'firmware_version', table: 'holding', address: 30, type: 'uint16', access: 'r', role: 'firmwareVersion' }),
    });
  });

  it('traffic-controller: file records from file 1, 100 registers a record, version in input 5, no enter', () => {
    const fw = firmwareOf(builtins.get('traffic-controller'));
    expect(fw).toEqual({
      method: 'fileRecord',
      decl: { method: 'fileRecord', file: 1, recordRegisters: 100, size: 100, checksum: 102, commit: { register: 104, value: 0xc0de }, rebootS: 60 },
      versionPoint: expect.objectContaining({ name: 'firmware_version', table: 'input', address: 5, type: 'uint16', role: 'firmwareVersion' }),
    });
    expect(fw!.decl).not.toHaveProperty('enter');
    expect(fw!.decl).not.toHaveProperty('abort'); // no bootloader to leave
  });

  it("the version point is polled with the rest: the traffic controller's inputs stay one request, the light's holding registers one", () => {
    const light = builtins.require('streetlight-controller').points.filter((p) => p.table === 'holding');
    expect(Math.max(...light.map((p) => p.address))).toBe(30);
    const traffic = builtins.require('traffic-controller').points.filter((p) => p.table === 'input').map((p) => p.address);
    expect(traffic).toContain(5);
  });

  it('lora-streetlight and an unknown profile: none', () => {
    expect(firmwareOf(builtins.get('lora-streetlight'))).toBeNull();
    expect(firmwareOf(builtins.get('no-such-profile'))).toBeNull();
    expect(firmwareOf(undefined)).toBeNull();
  });
});

describe('firmwareOf: custom profiles', () => {
  it('declared in devices.yaml: the method, the declaration with its defaults, the version point', () => {
    const { config } = parseConfig(
      withAcmeProfile(`    points:
      - { name: status, table: input, address: 0 }
      - { name: fw, table: input, address: 9, type: uint32, role: firmwareVersion }
    firmware: { method: fileRecord, file: 4, recordRegisters: 119, size: 200, checksum: 202, commit: { register: 204, value: 1 } }
`),
      { file: 'devices.yaml', env: {} },
    );
    const registry = loadProfiles(config.profiles);
    expect(firmwareOf(registry.get('acme'))).toEqual({
      method: 'fileRecord',
      decl: { method: 'fileRecord', file: 4, recordRegisters: 119, size: 200, checksum: 202, commit: { register: 204, value: 1 }, rebootS: 30 },
      versionPoint: expect.objectContaining({ name: 'fw', type: 'uint32' }),
    });
  });

  it('a profile without firmware: none, even with a version point', () => {
    const { config } = parseConfig(withAcmeProfile('    points:\n      - { name: fw, table: input, address: 9, role: firmwareVersion }\n'), { file: 'devices.yaml', env: {} });
    expect(firmwareOf(config.profiles[0])).toBeNull();
  });

  it('a custom profile that replaces a built-in without firmware: none', () => {
    const { points, alarms, kind } = builtins.require('streetlight-controller');
    const plain: ProfileConfig = { name: 'streetlight-controller', transport: 'modbus', kind, points, alarms };
    expect(firmwareOf(loadProfiles([plain]).get('streetlight-controller'))).toBeNull();
  });

  it('never guessed from a profile the schema would refuse: no version point, or LoRaWAN', () => {
    const traffic = builtins.require('traffic-controller');
    expect(firmwareOf({ ...traffic, points: traffic.points.filter((p) => p.role !== 'firmwareVersion') })).toBeNull();
    expect(firmwareOf({ ...traffic, transport: 'lorawan' })).toBeNull();
  });
});

describe('bad declarations never reach firmwareOf', () => {
  it('in devices.yaml: every issue at its line:col and field path', () => {
    expect(
      issues(
        withAcmeProfile(`    points:
      - { name: fw, table: holding, address: 101, role: firmwareVersion }
    firmware:
      method: registerBlock
      block: { register: 112, registers: 0 }
      size: 100
      checksum: 100
      commit: { register: 104, value: -1 }
`),
      ),
    ).toEqual([
      '12:7 profiles[0].firmware: missing required key "enter"',
      '13:42 profiles[0].firmware.block.registers: expected an integer 1..122, got 0',
      '16:39 profiles[0].firmware.commit.value: expected an integer 0..65535, got -1',
    ]);
    // once the fields are right, the registers are checked
    expect(
      issues(
        withAcmeProfile(`    points:
      - { name: fw, table: holding, address: 101, role: firmwareVersion }
    firmware:
      method: registerBlock
      enter: { register: 105, value: 1 }
      block: { register: 104, registers: 8 }
      size: 100
      checksum: 100
      commit: { register: 106, value: 2 }
`),
      ),
    ).toEqual([
      '14:26 profiles[0].firmware.block.register: "block" (registers 104..112) overlaps "commit" (register 106) and "enter" (register 105): each takes registers of its own',
      '16:17 profiles[0].firmware.checksum: "checksum" (registers 100..101) overlaps "size" (registers 100..101): each takes registers of its own',
    ]);
  });

  describe('in a profile file', () => {
    let dir: string | undefined;
    afterEach(() => {
      if (dir !== undefined) rmSync(dir, { recursive: true, force: true });
      dir = undefined;
    });

    const load = (yaml: string): ProfileConfig => {
      dir = mkdtempSync(join(tmpdir(), 'streetbox-fw-profile-'));
      const file = join(dir, 'acme.yaml');
      writeFileSync(file, yaml);
      return loadProfileFile(file);
    };

    it('a good one loads and answers', () => {
      const p = load(`name: acme
kind: other
points:
  - { name: fw, table: input, address: 0, role: firmwareVersion }
firmware: { method: registerBlock, enter: { register: 10, value: 1 }, block: { register: 20, registers: 64 }, size: 0, checksum: 2, commit: { register: 4, value: 2 }, rebootS: 5 }
`);
      expect(firmwareOf(p)).toMatchObject({ method: 'registerBlock', decl: { block: { register: 20, registers: 64 }, rebootS: 5 }, versionPoint: { name: 'fw' } });
    });

    it('a bad one is E_CONFIG naming the file and each field path', () => {
      let thrown: unknown;
      try {
        load(`name: acme
kind: other
points:
  - { name: fw, table: input, address: 0 }
firmware: { method: fileRecord, file: 1, recordRegisters: 100, block: { register: 1, registers: 2 }, size: 0, checksum: 1, commit: { register: 4, value: 2 } }
`);
      } catch (err) {
        thrown = err;
      }
      expect(thrown).toBeInstanceOf(StreetboxError);
      expect((thrown as StreetboxError).code).toBe('E_CONFIG');
      expect((thrown as Error).message).toMatch(/acme\.yaml: invalid profile: firmware: Unrecognized key: "block"/);
      thrown = undefined;
      try {
        load(`name: acme
kind: other
points:
  - { name: fw, table: input, address: 0 }
firmware: { method: fileRecord, file: 1, recordRegisters: 100, size: 0, checksum: 1, commit: { register: 4, value: 2 } }
`);
      } catch (err) {
        thrown = err;
      }
      expect((thrown as Error).message).toMatch(/acme\.yaml: invalid profile: firmware: a profile with firmware needs a point of role firmwareVersion.*; firmware\.checksum: "checksum" \(registers 1\.\.2\) overlaps "size" \(registers 0\.\.1\)/);
    });
  });
});
