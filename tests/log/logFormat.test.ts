/**
 * Lines for people: the gateway's local time with its offset, the level, the module/device
 * labels, the message, the fields; an error's stack below error records; colours only when
 * asked for, never escape codes under NO_COLOR.
 */
import { describe, expect, it } from 'vitest';
import { stripAnsi } from '../../edge/cliStyle.js';
import { formatRecord, parseRecord, prettyLine, syslogPriority } from '../../edge/logFormat.js';

const WINTER = Date.parse('2026-01-15T12:00:00.123Z');
const SUMMER = Date.parse('2026-07-15T12:00:00.000Z');
const ESC = '\x1b[';

const record = (extra: Record<string, unknown>) => ({ level: 30, time: WINTER, pid: 4242, gateway: 'gw-1', ...extra });

describe('formatRecord', () => {
  it('shows the time in the gateway zone with its offset, the level, labels, message and fields', () => {
    const [line] = formatRecord(
      record({ level: 40, module: 'modbus', device: 'lamp-12', bus: 'rs485-1', unit: 12, err: 'timed out after 1000 ms', online: false, detail: { a: 1, b: [2, 3] }, msg: 'modbus device offline' }),
      { zone: 'Europe/Amsterdam' },
    );
    expect(line).toBe('2026-01-15T13:00:00.123+01:00 WARN  modbus/rs485-1/lamp-12 modbus device offline unit=12 err="timed out after 1000 ms" online=false detail={"a":1,"b":[2,3]}');
  });

  it('follows the zone through summer time, and writes UTC as +00:00', () => {
    expect(formatRecord(record({ time: SUMMER, msg: 'x' }), { zone: 'Europe/Amsterdam' })[0]).toMatch(/^2026-07-15T14:00:00\.000\+02:00 INFO  x$/);
    expect(formatRecord(record({ msg: 'x' }))[0]).toMatch(/^2026-01-15T12:00:00\.123\+00:00 INFO  x$/);
    expect(formatRecord(record({ msg: 'x' }), { zone: 'America/New_York' })[0]).toMatch(/^2026-01-15T07:00:00\.123-05:00 /);
  });

  it('names every level, padded, and leaves out pid and gateway', () => {
    const names = [10, 20, 30, 40, 50, 60].map((level) => formatRecord(record({ level, msg: 'm' }))[0]!.split(/ +/)[1]);
    expect(names).toEqual(['TRACE', 'DEBUG', 'INFO', 'WARN', 'ERROR', 'FATAL']);
    const line = formatRecord(record({ level: 40, msg: 'm' }))[0]!;
    expect(line).toContain(' WARN  m');
    expect(line).not.toContain('4242');
    expect(line).not.toContain('gw-1');
  });

  it('quotes strings only when they need it and shows control characters as escapes', () => {
    const [line] = formatRecord(record({ msg: 'a\nb', path: '/dev/ttyUSB0', name: 'Lamp 12', empty: '', eq: 'a=b', evil: '\x1b[31mred' }));
    expect(line).toContain('a\\u000ab');
    expect(line).toContain('path=/dev/ttyUSB0 name="Lamp 12" empty="" eq="a=b" evil="\\u001b[31mred"');
    expect(line).not.toContain('\x1b');
    expect(line).not.toContain('\n');
  });

  it('a label that is not a name stays a field', () => {
    const [line] = formatRecord(record({ module: 'sim', bus: { id: 'rs485-1' }, msg: 'm' }));
    expect(line).toContain('INFO  sim m bus={"id":"rs485-1"}');
  });

  it('shows an error as its message and fields; the stack on indented lines from level error', () => {
    const err = { type: 'StreetboxError', message: 'connect failed', code: 'E_SYNC', stack: 'StreetboxError: connect failed\n    at connect (sync.ts:10:5)\n    at run (sync.ts:20:3)' };
    const lines = formatRecord(record({ level: 50, module: 'supervisor', component: 'sync', err, retryInMs: 1000, msg: 'component degraded' }));
    expect(lines).toEqual([
      '2026-01-15T12:00:00.123+00:00 ERROR supervisor/sync component degraded err="connect failed" err.code=E_SYNC retryInMs=1000',
      '    StreetboxError: connect failed',
      '        at connect (sync.ts:10:5)',
      '        at run (sync.ts:20:3)',
    ]);
    expect(formatRecord(record({ level: 40, err, msg: 'w' }))).toHaveLength(1);
  });

  it('no escape codes without colour (NO_COLOR decides before here); colours when asked', () => {
    const r = record({ level: 50, module: 'modbus', msg: 'bus lost', bus: 'rs485-1' });
    const plain = formatRecord(r, { color: false }).join('\n');
    expect(plain).not.toContain(ESC);
    const coloured = formatRecord(r, { color: true }).join('\n');
    expect(coloured).toContain(`${ESC}31mERROR`);
    expect(coloured).toContain(`${ESC}36mmodbus/rs485-1`);
    expect(stripAnsi(coloured)).toBe(plain);
  });

  it('prints a banner record as one line per field', () => {
    const lines = formatRecord(record({ banner: true, statusPage: 'http://127.0.0.1:8080/', simulated: ['lamp-1', 'lamp-2'], gatewayId: 'gw-1', msg: 'streetbox running' }));
    expect(lines).toEqual(['2026-01-15T12:00:00.123+00:00 INFO  streetbox running', '    status page  http://127.0.0.1:8080/', '    simulated    lamp-1, lamp-2', '    gateway id   gw-1']);
  });
});

describe('parseRecord and prettyLine', () => {
  it('formats pino JSON lines and passes anything else through unchanged', () => {
    expect(prettyLine(JSON.stringify(record({ msg: 'hello' })))).toBe('2026-01-15T12:00:00.123+00:00 INFO  hello\n');
    for (const other of ['<6>{"level":30,"time":1,"msg":"x"}', 'plain text', '{"not":"a record"}', '[1,2]', '{broken', '']) {
      expect(parseRecord(other), other).toBeNull();
      expect(prettyLine(other)).toBe(`${other}\n`);
    }
  });
});

describe('syslogPriority', () => {
  it('maps pino levels to sd-daemon priorities', () => {
    expect([10, 20, 30, 40, 50, 60].map(syslogPriority)).toEqual([7, 7, 6, 4, 3, 2]);
  });
});
