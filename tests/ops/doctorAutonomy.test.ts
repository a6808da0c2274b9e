/**
 * `streetbox doctor` on the buffer's offline autonomy: a buffer file filled with readings at a
 * known rate (20,000 readings 2.16 s apart: 40,000 a day), read through the read-only view as
 * the doctor reads it, without a gateway. Under storage.minAutonomyDays a warning with the fix
 * (exit 0: a warning stops nothing), at or over it ok with the figure, 0 turns the minimum off,
 * and no buffer or too short a load is a skip, never a made-up figure.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../../edge/config/index.js';
import { autonomyText } from '../../edge/economyText.js';
import { silentLogger } from '../../edge/log.js';
import { openStore, openStoreReadOnly, type Autonomy, type NewReading } from '../../edge/store/index.js';
import { runCli, tempGateway } from '../support/cli.js';

const PIPED = { FORCE_COLOR: '', NO_COLOR: '' };
const N = 20_000;
const STEP_MS = 2160; // 40,000 readings a day

let g: ReturnType<typeof tempGateway>;
let autonomy: Autonomy;

function config(storage: string): void {
  writeFileSync(g.config, `gateway: { id: economy }\nstorage: { ${storage} }\nbroker: { enabled: false }\napi: { enabled: false }\n`);
}

/** The checklist line of the autonomy check and the fix under it. */
async function doctor(): Promise<{ code: number | null; line: string; fix: string }> {
  const r = await runCli(['doctor', '--config', g.config], { env: PIPED });
  const lines = r.stdout.split('\n');
  const i = lines.findIndex((l) => /^\S+ autonomy: /.test(l));
  if (i < 0) throw new Error(`no autonomy line in:\n${r.stdout}${r.stderr}`);
  return { code: r.code, line: lines[i]!, fix: lines[i + 1]?.startsWith('    fix: ') ? lines[i + 1]! : '' };
}

beforeAll(() => {
  g = tempGateway('');
  config('path: data/gw.db, maxBytes: 4MB');
  mkdirSync(join(g.dir, 'data'));
  const { config: cfg } = loadConfig(g.config);
  const store = openStore({ path: cfg.storage.path, maxBytes: cfg.storage.maxBytes, durability: 'normal', log: silentLogger() });
  const end = Date.now() - 60_000;
  for (let i = 0; i < N; i += 1000) {
    const rows: NewReading[] = [];
    for (let k = i; k < i + 1000; k++) {
      rows.push({ ts: end - (N - 1 - k) * STEP_MS, device: `lamp-${k % 10}`, point: k % 2 === 0 ? 'power' : 'energy', value: k % 2 === 0 ? 50 + (k % 7) : k * 0.01, unit: k % 2 === 0 ? 'W' : 'kWh' });
    }
    store.appendReadings(rows);
  }
  store.close();
  const view = openStoreReadOnly(cfg.storage.path);
  autonomy = view.stats().autonomy;
  view.close();
});

afterAll(() => g?.cleanup());

describe('streetbox doctor: offline autonomy', () => {
  it('the read-only view measures the load from the readings\' timestamps', () => {
    expect(autonomy.readingsPerDay).toBeCloseTo(40_002, 0);
    expect(autonomy.days).not.toBeNull();
    // 4 MB cannot hold a week of 40,000 readings a day
    expect(autonomy.days!).toBeGreaterThan(1);
    expect(autonomy.days!).toBeLessThan(7);
  });

  it('warns under storage.minAutonomyDays (default 7) with the fix, and exits 0', async () => {
    const r = await doctor();
    expect(r.code).toBe(0);
    expect(r.line).toBe(`warn autonomy: ${autonomyText(autonomy)}: under storage.minAutonomyDays (7)`);
    expect(r.line).toContain('(40,002 readings/day,');
    expect(r.fix).toContain('raise storage.maxBytes');
    expect(r.fix).toContain('deadbands');
    expect(r.fix).toContain('README, "Report strategies"');
  });

  it('ok with the figure at or over the minimum; 0 turns the minimum off', async () => {
    config(`path: data/gw.db, maxBytes: 4MB, minAutonomyDays: ${Math.floor(autonomy.days!)}`);
    expect((await doctor()).line).toBe(`ok autonomy: ${autonomyText(autonomy)}; the minimum is ${Math.floor(autonomy.days!)} days`);
    config('path: data/gw.db, maxBytes: 4MB, minAutonomyDays: 0');
    expect((await doctor()).line).toBe(`ok autonomy: ${autonomyText(autonomy)} (no minimum: storage.minAutonomyDays is 0)`);
  });

  it('a quota raised in devices.yaml but not yet run: the figure says which quota it is for', async () => {
    config('path: data/gw.db, maxBytes: 64MB');
    const r = await doctor();
    expect(r.line).toMatch(/^warn autonomy: buffer holds ≈ [\d.]+ days offline .*; at the quota the gateway last ran with, 4\.0 MB \(storage.maxBytes is now 64\.0 MB: restart the gateway to apply it\): under storage.minAutonomyDays \(7\)$/);
  });

  it('skips without a buffer, and while the buffer holds too short a load', async () => {
    config('path: data/none.db');
    expect((await doctor()).line).toMatch(/^skip autonomy: no buffer at .*data\/none\.db yet/);

    // five minutes of readings: less than the ten a load is measured over
    const { config: cfg } = loadConfig(g.config);
    const store = openStore({ path: cfg.storage.path, maxBytes: cfg.storage.maxBytes, durability: 'normal', log: silentLogger() });
    const end = Date.now();
    store.appendReadings(Array.from({ length: 300 }, (_, i) => ({ ts: end - (299 - i) * 1000, device: 'lamp-1', point: 'power', value: i, unit: 'W' })));
    store.close();
    expect((await doctor()).line).toBe('skip autonomy: no load measured yet: the buffer has too few readings (let the gateway run, then ask again)');
  });
});
