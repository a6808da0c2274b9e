/**
 * Every malformed devices.yaml under fixtures/ is rejected with exactly these issues: the
 * line and column a technician should look at, the field path, and a message that says what
 * was expected and what was found. One row per fixture; a fixture without a row fails.
 */
import { readdirSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { ConfigError, loadConfig } from '../../edge/config/index.js';
import { StreetboxError } from '../../edge/errors.js';

const FIXTURES = join(dirname(fileURLToPath(import.meta.url)), 'fixtures');

/** [line, col, path, message] */
type Expected = [number, number, string, string];

const ID_RULE = 'expected an id of letters, digits, "_", "-", "." (at most 64, no spaces or "/")';

const TABLE: Record<string, Expected[]> = {
  'bad-yaml-syntax.yaml': [[3, 9, '', 'YAML syntax error: a quoted string is never closed (missing closing ")']],
  'bad-duplicate-key.yaml': [[8, 5, 'buses[0].baud', 'duplicate key "baud" (first written at line 7)']],
  'bad-tab-indent.yaml': [[4, 1, '', 'YAML syntax error: a tab used for indentation; indent with spaces']],
  'bad-wrong-type.yaml': [[4, 14, 'storage.flushRows', 'expected an integer 1..100000, got "many"']],
  'bad-unit-range.yaml': [[10, 11, 'devices[0].unit', 'expected an integer 1..247, got 300']],
  // the example of DESIGN.md
  'bad-unit-type.yaml': [[22, 11, 'devices[3].unit', 'expected an integer 1..247, got "x"']],
  'bad-enum.yaml': [[5, 15, 'storage.durability', 'expected one of full, normal, got "fast"']],
  'bad-unknown-top-key.yaml': [[3, 1, 'devics', 'unknown key "devics"; did you mean "devices"?']],
  'bad-unknown-nested-key.yaml': [
    [12, 5, 'devices[0].pol', 'unknown key "pol"; did you mean "poll"?'],
    [13, 5, 'devices[0].colour', 'unknown key "colour"; expected one of: id, name, bus, unit, devEui, profile, poll, groups, allowCommands, lat, lon, report, points'],
  ],
  'bad-missing-key.yaml': [[2, 3, 'gateway', 'missing required key "id"']],
  'bad-missing-gateway.yaml': [[2, 1, '', 'missing required key "gateway"']],
  'bad-duration.yaml': [[12, 11, 'devices[0].poll', 'expected a duration like "500ms", "5s", "2m", "1h" (100ms..1d), got "5 sec"']],
  'bad-byte-size.yaml': [[4, 13, 'storage.maxBytes', 'expected a size like "64MB" or "1GiB", got "12 parsecs"']],
  'bad-unknown-bus.yaml': [[9, 10, 'devices[0].bus', 'unknown bus "rs458"; did you mean "rs485"?']],
  'bad-unknown-profile.yaml': [[15, 14, 'devices[0].profile', 'unknown profile "streetlight-controler"; did you mean "streetlight-controller"?']],
  'bad-duplicate-device.yaml': [[12, 9, 'devices[1].id', 'duplicate device id "lamp-1" (first used at index 0)']],
  'bad-duplicate-unit.yaml': [[13, 37, 'devices[2].unit', 'unit 7 on bus "rs485" is already used by devices[0]']],
  'bad-unset-env.yaml': [[6, 17, 'broker.users[0].password', 'environment variable STREETBOX_TEST_UNSET_PASSWORD is not set']],
  'bad-deveui.yaml': [[5, 15, 'lorawan.devices[0].devEui', 'expected a DevEUI: 16 hex digits, got "00-11-22-33-44-55-66-77"']],
  // an unquoted all-digit EUI loses its leading zeros: the message shows the text as written
  'bad-hex-number.yaml': [
    [6, 15, 'lorawan.devices[0].devEui', 'expected a DevEUI: 16 hex digits, got 11223344556677 (a number to YAML; put it in quotes: "0011223344556677")'],
  ],
  'bad-abp-keys.yaml': [
    [5, 7, 'lorawan.devices[0]', 'missing required key "nwkSKey" (ABP activation needs devAddr, nwkSKey, appSKey)'],
    [5, 7, 'lorawan.devices[0]', 'missing required key "appSKey" (ABP activation needs devAddr, nwkSKey, appSKey)'],
  ],
  'bad-user-password.yaml': [[5, 7, 'broker.users[0]', 'expected exactly one of "password" or "passwordHash", got neither']],
  'bad-several.yaml': [
    [2, 7, 'gateway.id', `${ID_RULE}, got "gw 1"`],
    [3, 8, 'gateway.lat', 'expected a number -90..90, got 95'],
    [5, 15, 'storage.durability', 'expected one of full, normal, got "fast"'],
    [10, 13, 'buses[0].parity', 'expected one of none, even, odd, got "mark"'],
    [14, 11, 'devices[0].unit', 'expected an integer 1..247, got 0'],
    [16, 14, 'devices[0].groups[0]', `${ID_RULE}, got "main street"`],
    [18, 9, 'api.port', 'expected a port 1..65535, got 80800'],
    [19, 3, 'api.tokns', 'unknown key "tokns"; did you mean "tokens"?'],
  ],
  // references between sections are checked on the valid parts of a file with other issues
  'bad-mixed.yaml': [
    [8, 11, 'buses[0].baud', 'expected an integer 300..921600, got "9600 baud"'],
    [17, 11, 'devices[0].poll', 'expected a duration like "500ms", "5s", "2m", "1h" (100ms..1d), got "5 sec"'],
    [19, 10, 'devices[1].bus', 'unknown bus "nett"; did you mean "net"?'],
    [22, 9, 'devices[2].id', 'duplicate device id "lamp-1" (first used at index 0)'],
    [25, 14, 'devices[2].profile', 'unknown profile "no-such-profile"; known: streetlight-controller, traffic-controller, lora-streetlight'],
    [28, 11, 'devices[3].unit', 'unit 1 on bus "rs485" is already used by devices[0]'],
  ],
  'bad-schedule.yaml': [
    [9, 14, 'schedules[0].groups[0]', 'unknown group "main-stret"; did you mean "main-street"?'],
    [11, 15, 'schedules[0].steps[0].at', '"sunset-15m" needs the gateway\'s position: set gateway.lat and gateway.lon'],
  ],
  'bad-sync-url-credentials.yaml': [[4, 8, 'sync.url', 'put credentials in sync.username and sync.password, not in the URL (the URL is logged)']],
  'bad-empty.yaml': [[1, 1, '', 'the file is empty; expected a mapping with at least a "gateway" section']],
  'bad-top-list.yaml': [[1, 1, '', 'expected a mapping of sections (gateway, storage, buses, devices, …), got a list']],
  'bad-bus-type.yaml': [
    [5, 11, 'buses[0].type', 'expected one of serial, tcp, got "rtu"'],
    [7, 5, 'buses[1]', 'missing required key "type" (one of serial, tcp)'],
  ],
  'bad-alias.yaml': [[4, 5, 'buses[0]', 'unknown anchor "*serial" (an alias needs a "&serial" earlier in the file)']],
  'bad-timezone.yaml': [[3, 13, 'gateway.timezone', 'expected an IANA time zone like "Europe/Amsterdam" or "UTC", got "Europe/Amsterdm"']],
  'bad-short-token.yaml': [[6, 14, 'api.tokens[0].token', 'expected a token of at least 16 characters, got a value of 6 characters (not shown)']],
};

function load(file: string): ConfigError {
  try {
    loadConfig(file, { env: {} });
  } catch (err) {
    if (err instanceof ConfigError) return err;
    throw err;
  }
  throw new Error(`${file} loaded without issues`);
}

describe('malformed devices.yaml fixtures', () => {
  // the file name in issues is the one given: relative to the working directory
  const rel = (name: string): string => relative(process.cwd(), join(FIXTURES, name));

  it('has a row for every bad-*.yaml fixture (and at least 20 of them)', () => {
    const files = readdirSync(FIXTURES).filter((f) => f.startsWith('bad-') && f.endsWith('.yaml')).sort();
    expect(files).toEqual(Object.keys(TABLE).sort());
    expect(files.length).toBeGreaterThanOrEqual(20);
  });

  it.each(Object.entries(TABLE))('%s', (name, expected) => {
    const file = rel(name);
    const err = load(file);
    expect(err).toBeInstanceOf(StreetboxError);
    expect(err.code).toBe('E_CONFIG');
    expect(err.issues.map((i) => [i.line, i.col, i.path, i.message])).toEqual(expected);
    expect(err.issues.every((i) => i.file === file)).toBe(true);
    // the message lists every issue as `file:line:col path: message`, one per line
    const lines = expected.map(([line, col, path, message]) => `${file}:${line}:${col}${path === '' ? '' : ` ${path}`}: ${message}`);
    expect(err.message).toBe(lines.join('\n'));
  });
});
