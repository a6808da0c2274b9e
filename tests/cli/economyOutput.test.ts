/**
 * `streetbox status` on the data economy, from the buffer file alone (no gateway running): the
 * offline autonomy at the load the readings' timestamps show (40,000 readings a day), yellow on a
 * terminal when under storage.minAutonomyDays, "measuring…" before a load is known; and the
 * upstream bytes per day as the sync saved them in the file (a partial first day, a full day,
 * today). The same figures in --json.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DailyBytes, SYNC_MIGRATIONS, SYNC_MODULE } from '../../cloud-sync/dailyBytes.js';
import { stripAnsi } from '../../edge/cliStyle.js';
import { loadConfig } from '../../edge/config/index.js';
import { autonomyText } from '../../edge/economyText.js';
import { silentLogger } from '../../edge/log.js';
import { openStore, openStoreReadOnly, type Autonomy, type NewReading } from '../../edge/store/index.js';
import { FakeClock } from '../support/fakeClock.js';
import { runCli, tempGateway } from '../support/cli.js';

const PIPED = { FORCE_COLOR: '', NO_COLOR: '' };
const DAY_MS = 86_400_000;
const N = 20_000;
const STEP_MS = 2160; // 40,000 readings a day

let g: ReturnType<typeof tempGateway>;
let autonomy: Autonomy;

function yaml(storage: string, sync = ''): string {
  return `gateway: { id: economy-out, timezone: UTC }\nstorage: { ${storage} }\n${sync}broker: { enabled: false }\napi: { enabled: false }\n`;
}

beforeAll(async () => {
  g = tempGateway(yaml('path: data/gw.db, maxBytes: 4MB', 'sync: { url: "mqtt://127.0.0.1:1" }\n'));
  mkdirSync(join(g.dir, 'data'));
  const { config } = loadConfig(g.config);
  const store = openStore({ path: config.storage.path, maxBytes: config.storage.maxBytes, durability: 'normal', log: silentLogger() });
  const end = Date.now() - 60_000;
  for (let i = 0; i < N; i += 1000) {
    const rows: NewReading[] = [];
    for (let k = i; k < i + 1000; k++) rows.push({ ts: end - (N - 1 - k) * STEP_MS, device: `lamp-${k % 10}`, point: 'power', value: 50 + (k % 7), unit: 'W' });
    store.appendReadings(rows);
  }
  // the sync's days: it began two days ago at noon (partial), sent 50 kB yesterday (full), 1,234 B today
  store.migrate(SYNC_MODULE, SYNC_MIGRATIONS);
  const now = new Date();
  const clock = new FakeClock(Date.UTC(now.getUTCFullYear(), now.getUTCMonth(), now.getUTCDate() - 2, 12));
  const daily = new DailyBytes({ db: store.sqlite, zone: 'UTC', clock, log: silentLogger() });
  daily.load();
  daily.add(999);
  await clock.advance(DAY_MS);
  daily.add(50_000);
  await clock.advance(DAY_MS);
  daily.add(1234);
  daily.save();
  daily.stop();
  store.close();
  const view = openStoreReadOnly(config.storage.path);
  autonomy = view.stats().autonomy;
  view.close();
});

afterAll(() => g?.cleanup());

describe('streetbox status: the data economy', () => {
  it('piped: the autonomy under the buffer, marked under the minimum, and the upstream bytes', async () => {
    const r = await runCli(['status', '--config', g.config], { env: PIPED });
    expect(r.code, r.stderr).toBe(0);
    expect(autonomy.readingsPerDay).toBeCloseTo(40_002, 0);
    expect(r.stdout).toContain(`\n             ${autonomyText(autonomy)}: under storage.minAutonomyDays (7)\n`);
    expect(r.stdout).toMatch(/^upstream +1\.2 kB sent today, ≈ 1\.5 MB a month$/m);
  });

  it('on a terminal the autonomy under the minimum is yellow; over it, plain', async () => {
    const tty = await runCli(['status', '--config', g.config], { env: { FORCE_COLOR: '1', NO_COLOR: '' } });
    expect(tty.stdout).toContain(`\x1b[33m${autonomyText(autonomy)}: under storage.minAutonomyDays (7)\x1b[39m`);
    writeFileSync(g.config, yaml('path: data/gw.db, maxBytes: 4MB, minAutonomyDays: 2'));
    try {
      const ok = await runCli(['status', '--config', g.config], { env: { FORCE_COLOR: '1', NO_COLOR: '' } });
      expect(ok.stdout).toContain(`             ${autonomyText(autonomy)}\n`);
      // no sync configured any more: the bytes it sent are still shown
      expect(stripAnsi(ok.stdout)).toMatch(/^upstream +1\.2 kB sent today/m);
    } finally {
      writeFileSync(g.config, yaml('path: data/gw.db, maxBytes: 4MB', 'sync: { url: "mqtt://127.0.0.1:1" }\n'));
    }
  });

  it('--json: the figures for machines', async () => {
    const r = await runCli(['status', '--config', g.config, '--json'], { env: PIPED });
    const json = JSON.parse(r.stdout) as { store: { autonomy: Autonomy }; upstream: { bytesToday: number; bytesPerDay: { day: string; bytes: number }[]; bytesPerMonthEstimate: number | null } };
    expect(json.store.autonomy).toEqual(autonomy);
    expect(json.upstream.bytesToday).toBe(1234);
    expect(json.upstream.bytesPerDay.map((d) => d.bytes)).toEqual([999, 50_000, 1234]);
    expect(json.upstream.bytesPerMonthEstimate).toBe(1_500_000);
  });

  it('a new buffer: "measuring…", and "nothing sent yet" for a sync that has not sent', async () => {
    const fresh = tempGateway(yaml('path: data/gw.db', 'sync: { url: "mqtt://127.0.0.1:1" }\n'));
    try {
      mkdirSync(join(fresh.dir, 'data'));
      const { config } = loadConfig(fresh.config);
      const store = openStore({ path: config.storage.path, maxBytes: config.storage.maxBytes, durability: 'normal', log: silentLogger() });
      store.appendReadings([{ ts: Date.now(), device: 'lamp-1', point: 'power', value: 1, unit: 'W' }]);
      store.close();
      const r = await runCli(['status', '--config', fresh.config], { env: PIPED });
      expect(r.code, r.stderr).toBe(0);
      expect(r.stdout).toContain('\n             buffer autonomy: measuring…\n');
      expect(r.stdout).toMatch(/^upstream +\(nothing sent yet\)$/m);
      const json = JSON.parse((await runCli(['status', '--config', fresh.config, '--json'], { env: PIPED })).stdout) as { store: { autonomy: Autonomy }; upstream: unknown };
      expect(json.store.autonomy).toMatchObject({ readingsPerDay: null, days: null });
      expect(json.upstream).toBeNull();
    } finally {
      fresh.cleanup();
    }
  });
});
