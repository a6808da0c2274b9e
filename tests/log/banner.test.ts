/**
 * The start-up banner says what runs and where: the status page and editor URLs, the broker and
 * LoRaWAN addresses with the ports actually bound, the simulated devices, the files and the zone.
 */
import { Writable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { logBanner, startupBanner } from '../../edge/banner.js';
import { parseConfig, type Config } from '../../edge/config/index.js';
import { createLogger } from '../../edge/log.js';

function config(yaml: string): Config {
  return parseConfig(yaml, { file: 'devices.yaml', dir: '/srv/cabinet', env: {} }).config;
}

const FULL = `
gateway: { id: demo-cabinet-01, timezone: Europe/Amsterdam }
broker: { host: 0.0.0.0, port: 1883, allowAnonymous: true }
api: { host: 0.0.0.0, port: 8080 }
nodeRed: { enabled: true, path: /flows }
lorawan: { bind: 127.0.0.1, port: 1700 }
`;

describe('startupBanner', () => {
  it('names every service with the bound ports, the simulated devices, files and zone', () => {
    const { fields, lines } = startupBanner(config(FULL), { apiPort: 18080, brokerPort: 11883, lorawanPort: 11700, simulated: ['lamp-ctrl-01', 'tc-01'], configFile: '/srv/cabinet/devices.yaml' });
    expect(fields).toEqual({
      statusPage: 'http://127.0.0.1:18080/',
      editor: 'http://127.0.0.1:18080/flows/',
      broker: '0.0.0.0:11883',
      lorawan: '127.0.0.1:11700',
      simulated: ['lamp-ctrl-01', 'tc-01'],
      config: '/srv/cabinet/devices.yaml',
      data: '/srv/cabinet/data/streetbox.db',
      gatewayId: 'demo-cabinet-01',
      timezone: 'Europe/Amsterdam',
    });
    expect(lines).toEqual([
      'status page  http://127.0.0.1:18080/',
      'editor       http://127.0.0.1:18080/flows/',
      'broker       0.0.0.0:11883',
      'lorawan      127.0.0.1:11700',
      'simulated    lamp-ctrl-01, tc-01',
      'config       /srv/cabinet/devices.yaml',
      'data         /srv/cabinet/data/streetbox.db',
      'gateway id   demo-cabinet-01',
      'timezone     Europe/Amsterdam',
    ]);
  });

  it('uses the configured ports and host when no bound port is given; leaves out what does not run', () => {
    const cfg = config(`
gateway: { id: gw-2 }
broker: { enabled: false }
api: { host: 10.0.0.5, port: 9000 }
nodeRed: { enabled: true, editor: false }
`);
    const { fields, lines } = startupBanner(cfg, { simulated: [] });
    expect(fields).toEqual({ statusPage: 'http://10.0.0.5:9000/', simulated: [], data: '/srv/cabinet/data/streetbox.db', gatewayId: 'gw-2', timezone: 'UTC' });
    expect(lines).toContain('simulated    none');
    expect(startupBanner(config('gateway: { id: gw-3 }\napi: { enabled: false }\nnodeRed: { enabled: true }\n'), { simulated: [] }).fields).not.toHaveProperty('editor');
    expect(startupBanner(config('gateway: { id: gw-4 }\napi: { host: "::1", port: 8080 }\n'), { simulated: [] }).fields.statusPage).toBe('http://[::1]:8080/');
  });
});

describe('logBanner', () => {
  function capture(isTTY: boolean): { stream: Writable & { isTTY: boolean }; text: () => string } {
    let text = '';
    const stream = Object.assign(
      new Writable({
        write(chunk: Buffer, _enc, done) {
          text += chunk.toString();
          done();
        },
      }),
      { isTTY },
    );
    return { stream, text: () => text };
  }

  it('logs one record "streetbox running" with the fields in JSON, a few lines on a terminal', () => {
    const cfg = config(FULL);
    const info = { apiPort: 8080, simulated: ['lamp-ctrl-01'] };
    const json = capture(false);
    logBanner(createLogger({ destination: json.stream }).child({ gateway: 'demo-cabinet-01' }), cfg, info);
    const lines = json.text().trim().split('\n');
    expect(lines).toHaveLength(1);
    expect(JSON.parse(lines[0]!)).toMatchObject({ level: 30, msg: 'streetbox running', banner: true, gateway: 'demo-cabinet-01', statusPage: 'http://127.0.0.1:8080/', simulated: ['lamp-ctrl-01'] });

    const tty = capture(true);
    logBanner(createLogger({ destination: tty.stream, timezone: 'Europe/Amsterdam', env: { NO_COLOR: '1' } }).child({ gateway: 'demo-cabinet-01' }), cfg, info);
    const shown = tty.text().split('\n');
    expect(shown[0]).toMatch(/^\S+\+0[12]:00 INFO {2}streetbox running$/);
    expect(shown.slice(1, 4)).toEqual(['    status page  http://127.0.0.1:8080/', '    editor       http://127.0.0.1:8080/flows/', '    broker       0.0.0.0:1883']);
    expect(tty.text()).toContain('    simulated    lamp-ctrl-01\n');
  });
});
