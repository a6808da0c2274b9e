/**
 * The gateway as `npm start` and the systemd unit run it: bin/streetbox.js on the bundle
 * (dist/streetbox.mjs, built by `npm run build`, which the README's test command runs first),
 * with the start script's memory tuning, on the shipped demo devices.yaml (free ports, a temp
 * data dir). Everything the bundle leaves to node_modules must still load from there: the
 * SQLite and serial-port addons, Node-RED (its editor and flows), and the code bundled in.
 */
import { spawn } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parse, stringify } from 'yaml';
import { afterAll, describe, expect, it } from 'vitest';
import { startScriptEnv } from '../helpers/startScript.js';
import { tempDir } from '../helpers/tmp.js';
import { ROOT, collect } from '../support/cli.js';

const BUNDLE = join(ROOT, 'dist/streetbox.mjs');
const BIN = join(ROOT, 'bin/streetbox.js');
const TOKEN = 'demo-technician-token-0001'; // the demo's own technician token

describe('the built gateway (bin/streetbox.js on dist/streetbox.mjs)', () => {
  const dir = tempDir('streetbox-bundle-');
  afterAll(() => dir.remove());

  it('is built', () => {
    expect(existsSync(BUNDLE), `${BUNDLE} is missing: run npm run build (npm test does)`).toBe(true);
  });

  it('runs the demo with Node-RED, serves the API and the editor login, and stops cleanly on SIGTERM', async () => {
    const cfg = parse(readFileSync(join(ROOT, 'devices.yaml'), 'utf8')) as Record<string, Record<string, unknown>> & { buses: { type: string; port?: number }[] };
    cfg.storage!.path = join(dir.path, 'data', 'streetbox.db');
    for (const b of cfg.buses) if (b.type === 'tcp') b.port = 0;
    cfg.broker!.port = 0;
    cfg.api!.port = 0;
    cfg.lorawan!.port = 0;
    const config = join(dir.path, 'devices.yaml');
    writeFileSync(config, stringify(cfg));

    const child = spawn(process.execPath, [BIN, 'start', '--config', config], {
      cwd: ROOT,
      env: { ...process.env, ...startScriptEnv(), STREETBOX_LOG_LEVEL: 'info' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const done = collect(child, 60_000);
    let out = '';
    const port = await new Promise<number>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`not running within 30 s:\n${out}`)), 30_000);
      child.stdout!.on('data', (d: Buffer) => {
        out += d.toString();
        const listening = /"port":(\d+)[^\n]*"msg":"http api listening"/.exec(out);
        if (listening && out.includes('"msg":"gateway running"')) {
          clearTimeout(timer);
          resolve(Number(listening[1]));
        }
      });
      child.once('exit', (code) => reject(new Error(`exited with ${code}:\n${out}`)));
    });
    try {
      const health = await fetch(`http://127.0.0.1:${port}/api/v1/health`);
      expect(health.status).toBe(200);
      const devices = await fetch(`http://127.0.0.1:${port}/api/v1/devices`, { headers: { authorization: `Bearer ${TOKEN}` } });
      expect(devices.status).toBe(200);
      expect(JSON.stringify(await devices.json())).toContain('lamp-ctrl-01');
      // Node-RED, loaded from node_modules by the bundle, with its login in front of the admin API
      expect((await fetch(`http://127.0.0.1:${port}/flows/flows`)).status).toBe(401);
      expect(out).toContain('"msg":"node-red running"');
    } finally {
      child.kill('SIGTERM');
    }
    const r = await done;
    expect(r.code, r.stderr).toBe(0);
    expect(out + r.stdout).toContain('"msg":"gateway stopped"');
    expect(r.stderr).toBe('');
  }, 90_000);
});
