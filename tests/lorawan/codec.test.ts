/** The lora-streetlight codec against the example frames of edge/profiles/lora-streetlight.md. */
import { describe, expect, it } from 'vitest';
import {
  CodecError,
  decodeCommand,
  decodeStatus,
  encodeCommand,
  encodeStatus,
  statusConfirms,
} from '../../edge/profiles/loraStreetlight.js';

describe('lora-streetlight uplink status (FPort 2)', () => {
  it('decodes the documented example frame', () => {
    expect(decodeStatus(Buffer.from('012800F0000030392103' + '2300', 'hex'))).toEqual({
      dimLevel: 40,
      power: 24,
      energy: 12.345,
      lampOn: true,
      lampFailure: false,
      driverFault: false,
      mainsFailure: false,
      manualOverride: false,
      scheduleId: 3,
      temperature: 35,
    });
  });

  it('decodes fault flags and a negative temperature', () => {
    const s = decodeStatus(Buffer.from('0100000000000000' + '0e' + '00' + 'f6' + '00', 'hex'));
    expect(s).toMatchObject({ dimLevel: 0, lampOn: false, lampFailure: true, driverFault: true, mainsFailure: true, manualOverride: false, temperature: -10 });
  });

  it('round-trips through encodeStatus', () => {
    const s = { dimLevel: 65, power: 39.1, energy: 1234.567, lampOn: true, lampFailure: false, driverFault: true, mainsFailure: false, manualOverride: true, scheduleId: 7, temperature: 41 };
    expect(decodeStatus(encodeStatus(s))).toEqual(s);
    // version 01 | level 41 | 391 × 0.1 W | 1234567 Wh | flags on+driver+manual+schedule | schedule 7 | 41 °C | 00
    expect(encodeStatus(s).toString('hex')).toBe('01410187' + '0012d687' + '35072900');
  });

  it.each([
    ['too short', '0128'],
    ['wrong version', '022800f0000030390103' + '2300'],
    ['dim level over 100', '016500f0000030390103' + '2300'],
  ])('rejects %s', (_n, hex) => {
    expect(() => decodeStatus(Buffer.from(hex, 'hex'))).toThrow(CodecError);
  });
});

describe('lora-streetlight downlink commands (FPort 10)', () => {
  it.each([
    [{ action: 'dim', level: 40 } as const, '0128'],
    [{ action: 'on' } as const, '02'],
    [{ action: 'off' } as const, '03'],
    [{ action: 'schedule', scheduleId: 7 } as const, '0407'],
  ])('%o ⇄ %s', (cmd, hex) => {
    expect(encodeCommand(cmd).toString('hex')).toBe(hex);
    expect(decodeCommand(Buffer.from(hex, 'hex'))).toEqual(cmd);
  });

  it('refuses out-of-range values and unknown commands', () => {
    expect(() => encodeCommand({ action: 'dim', level: 101 })).toThrow(CodecError);
    expect(() => encodeCommand({ action: 'schedule', scheduleId: 256 })).toThrow(CodecError);
    expect(() => decodeCommand(Buffer.from('09', 'hex'))).toThrow(CodecError);
  });

  it('a status confirms the command it shows applied', () => {
    const s = decodeStatus(Buffer.from('012800f0000030392103' + '2300', 'hex'));
    expect(statusConfirms({ action: 'dim', level: 40 }, s)).toBe(true);
    expect(statusConfirms({ action: 'dim', level: 50 }, s)).toBe(false);
    expect(statusConfirms({ action: 'on' }, s)).toBe(true);
    expect(statusConfirms({ action: 'off' }, s)).toBe(false);
    expect(statusConfirms({ action: 'schedule', scheduleId: 3 }, s)).toBe(true);
  });
});
