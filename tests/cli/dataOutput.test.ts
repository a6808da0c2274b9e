// `streetbox status` and `export` as people and scripts see them, on a real buffer: times in the
// gateway's zone with its offset (on both sides of a clock change), marks and colours only for
// a terminal, exports that keep `ts` and add `time`, progress on stderr only, and an export that
// waits for its reader instead of filling memory.
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { exportData, exportTime, readinessOf } from '../../edge/cliData.js';
import type { CliIo } from '../../edge/cliIo.js';
import { createProgress } from '../../edge/progress.js';
import { loadConfig } from '../../edge/config/index.js';
import { silentLogger } from '../../edge/log.js';
import { openStore } from '../../edge/store/index.js';
import { isoLocal } from '../../edge/timeFormat.js';
import { waitFor } from '../helpers/wait.js';
import { runCli, tempGateway } from '../support/cli.js';

const ANSI = /\x1b\[/;
/** piped, and no colour forced from the test runner's own environment */
const PIPED = { FORCE_COLOR: '', NO_COLOR: '' };

const WINTER = Date.UTC(2026, 0, 15, 12, 0, 0); // 13:00 in Amsterdam, +01:00
const SUMMER = Date.UTC(2026, 6, 15, 12, 0, 0); // 14:00 in Amsterdam, +02:00

let g: ReturnType<typeof tempGateway>;
let db: string;

beforeAll(() => {
  g = tempGateway('gateway:\n  id: data-out\n  timezone: Europe/Amsterdam\nstorage:\n  path: data/buffer.db\n');
  mkdirSync(join(g.dir, 'data'));
  db = join(g.dir, 'data/buffer.db');
  const store = openStore({ path: db, maxBytes: 50e6, durability: 'normal', log: silentLogger() });
  store.appendReadings([
    { ts: WINTER, device: 'lamp-1', point: 'dim_level', value: 40, unit: '%', quality: 'good' },
    { ts: SUMMER + 123, device: 'lamp-1', point: 'lamp_ok', value: true, quality: 'good' },
  ]);
  store.appendEvent({ ts: WINTER, kind: 'comms.lost', severity: 'warning', device: 'lamp-1', detail: { bus: 'rs485-1', unit: 1, error: 'timeout' } });
  store.appendEvent({ ts: SUMMER, kind: 'comms.restored', severity: 'info', device: 'lamp-1', detail: { bus: 'rs485-1', unit: 1 } });
  // many rows for the paging tests: 2,500 more readings
  for (let b = 0; b < 5; b++) {
    store.appendReadings(Array.from({ length: 500 }, (_, i) => ({ ts: SUMMER + 1000 * (b * 500 + i), device: 'lamp-2', point: 'power', value: i, unit: 'W', quality: 'good' as const })));
  }
  store.close();
});

afterAll(() => g.cleanup());

describe('streetbox status', () => {
  it('piped: times in the gateway zone with the offset of each instant, no escapes, no marks', async () => {
    const r = await runCli(['status', '--config', g.config], { env: PIPED });
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).not.toMatch(ANSI);
    expect(r.stdout).not.toMatch(/[✔✘]/);
    expect(r.stdout).toMatch(/^gateway +data-out: not running$/m);
    expect(r.stdout).toContain('  2026-01-15T13:00:00+01:00 warning  comms.lost lamp-1');
    expect(r.stdout).toContain('  2026-07-15T14:00:00+02:00 info     comms.restored lamp-1');
    // the last reading of lamp-2: SUMMER + 2,499 s
    expect(r.stdout).toMatch(/lamp-2 +1 points, last stored reading 2026-07-15T14:41:39\+02:00$/m);
    expect(r.stdout).not.toMatch(/\d\d:\d\d:\d\d(\.\d+)?Z/);
    const json = JSON.parse((await runCli(['status', '--config', g.config, '--json'], { env: PIPED })).stdout) as { timezone: string; recentEvents: { ts: number }[] };
    expect(json.timezone).toBe('Europe/Amsterdam');
    expect(json.recentEvents[0]!.ts).toBe(SUMMER); // machines keep epoch ms
  });

  it('on a terminal (FORCE_COLOR=1): ✔ running in green, severities coloured', async () => {
    const pidFile = `${db}.pid`;
    writeFileSync(pidFile, `${process.pid}\n`); // a live pid holds the lock: "running"
    try {
      const r = await runCli(['status', '--config', g.config], { env: { FORCE_COLOR: '1', NO_COLOR: '' } });
      expect(r.code, r.stderr).toBe(0);
      expect(r.stdout).toContain(`\x1b[32m✔\x1b[39m \x1b[32mrunning (pid ${process.pid})\x1b[39m`);
      expect(r.stdout).toContain('\x1b[33mwarning \x1b[39m comms.lost');
      // NO_COLOR wins over a terminal
      const plain = await runCli(['status', '--config', g.config], { env: { FORCE_COLOR: '', NO_COLOR: '1' } });
      expect(plain.stdout).not.toMatch(ANSI);
      expect(plain.stdout).toMatch(/data-out: running \(pid \d+\)$/m);
    } finally {
      writeFileSync(pidFile, '');
    }
  });
});

describe('streetbox export', () => {
  it('jsonl and csv keep ts (epoch ms) and add time in the gateway zone; stdout is the data alone, stderr empty when piped', async () => {
    const j = await runCli(['export', '--config', g.config, '--after', '0', '--limit', '2'], { env: PIPED });
    expect(j.code, j.stderr).toBe(0);
    expect(j.stderr).toBe('');
    expect(j.stdout.trim().split('\n').map((l) => JSON.parse(l) as unknown)).toEqual([
      { seq: 1, ts: WINTER, time: '2026-01-15T13:00:00.000+01:00', device: 'lamp-1', point: 'dim_level', value: 40, unit: '%', quality: 'good' },
      { seq: 2, ts: SUMMER + 123, time: '2026-07-15T14:00:00.123+02:00', device: 'lamp-1', point: 'lamp_ok', value: true, unit: null, quality: 'good' },
    ]);
    const c = await runCli(['export', '--config', g.config, '--after', '0', '--limit', '2', '--format', 'csv'], { env: PIPED });
    expect(c.stderr).toBe('');
    expect(c.stdout).toBe(
      'seq,ts,device,point,value,unit,quality,time\n' +
        `1,${WINTER},lamp-1,dim_level,40,%,good,2026-01-15T13:00:00.000+01:00\n` +
        `2,${SUMMER + 123},lamp-1,lamp_ok,true,,good,2026-07-15T14:00:00.123+02:00\n`,
    );
    const ev = await runCli(['export', '--config', g.config, '--after', '0', '--events', '--format', 'csv'], { env: { FORCE_COLOR: '1' } });
    expect(ev.stdout).toBe(
      'seq,ts,device,kind,severity,detail,time\n' +
        `3,${WINTER},lamp-1,comms.lost,warning,"{""bus"":""rs485-1"",""unit"":1,""error"":""timeout""}",2026-01-15T13:00:00.000+01:00\n` +
        `4,${SUMMER},lamp-1,comms.restored,info,"{""bus"":""rs485-1"",""unit"":1}",2026-07-15T14:00:00.000+02:00\n`,
    );
    expect(ev.stderr).toBe(''); // colour forced, but stderr is no terminal: no progress line
  });

  it('on a terminal stderr: a live line with rows and rate, then a summary; stdout stays exactly the data', async () => {
    const { config } = loadConfig(g.config);
    let out = '';
    let err = '';
    let now = 0;
    const io: CliIo = { out: (t) => void (out += t), err: (t) => void (err += t), errIsTTY: true };
    // every read of the clock is 400 ms later: long work
    await exportData(config, io, { after: 4, limit: Number.POSITIVE_INFINITY, format: 'csv', events: false, clock: () => (now += 400) });
    const lines = out.trim().split('\n');
    expect(lines[0]).toBe('seq,ts,device,point,value,unit,quality,time');
    expect(lines).toHaveLength(2501);
    expect(out).not.toMatch(/rows/);
    expect(err).toMatch(/^\r\x1b\[Kexport readings: 1,000 rows · [\d,]+ rows\/s/);
    expect(err).toContain('\r\x1b[Kexport readings: 2,000 rows · ');
    expect(err).toMatch(/\r\x1b\[Kexport readings: 2,500 rows in [\d.]+ s \([\d,]+ rows\/s\)\n$/);
  });

  it('the export time is isoLocal with ms: across clock changes, half-hour zones and local mean time', () => {
    for (const zone of ['UTC', 'Europe/Amsterdam', 'Asia/Kathmandu', 'America/St_Johns', 'Australia/Lord_Howe']) {
      const time = exportTime(zone);
      const at = (ts: number) => expect(time(ts), `${zone} ${ts}`).toBe(isoLocal(ts, zone, { ms: true }));
      for (const change of [Date.UTC(2026, 2, 29, 1), Date.UTC(2026, 9, 25, 1), Date.UTC(2026, 3, 5, 15), Date.UTC(2026, 2, 8, 5, 30)]) {
        for (let ts = change - 90_000; ts < change + 90_000; ts += 997) at(ts);
      }
      for (let ts = Date.UTC(1890, 0, 1); ts < Date.UTC(2040, 0, 1); ts += 86_400_000 * 97 + 3_601_013) at(ts);
    }
  });

  it('short work on a terminal stays quiet', () => {
    let err = '';
    const p = createProgress({ write: (t) => void (err += t), isTTY: true }, { unit: 'rows', delayMs: 300, now: () => 1000 });
    p.step('export readings');
    p.update(10);
    p.end();
    expect(err).toBe('');
  });

  it('waits for its reader: no page is read while out has no room, and a reader that went away ends it', async () => {
    const { config } = loadConfig(g.config);
    const pages: number[] = [];
    let release: (ok: boolean) => void = () => undefined;
    let asked = 0;
    const io: CliIo = {
      out: (t) => void pages.push(t.split('\n').length - 1),
      err: () => undefined,
      outReady: () => new Promise<boolean>((done) => ((release = done), asked++)),
    };
    const done = exportData(config, io, { after: 4, limit: Number.POSITIVE_INFINITY, format: 'jsonl', events: false });
    await waitFor('the export to ask for room', () => asked === 1);
    expect(pages).toEqual([1000]); // one page, then it waits
    release(true);
    await waitFor('the export to ask for room again', () => asked === 2);
    expect(pages).toEqual([1000, 1000]);
    release(false); // EPIPE: the reader closed
    await expect(done).rejects.toThrow(/output closed after 2000 rows/);
    expect(pages).toEqual([1000, 1000]);
  });

  it('readinessOf a stream: at once with room, after drain when full, false once it failed (EPIPE)', async () => {
    let consume: () => void = () => undefined;
    const stream = new Writable({ highWaterMark: 16, write: (_c, _e, cb) => void (consume = cb) });
    const ready = readinessOf(stream);
    expect(await ready()).toBe(true);
    stream.write('x'.repeat(32)); // past the high-water mark: full until it is consumed
    let answer: boolean | null = null;
    void ready().then((ok) => (answer = ok));
    await new Promise((r) => setImmediate(r));
    expect(answer).toBeNull();
    consume();
    await new Promise((r) => setImmediate(r));
    expect(answer).toBe(true);
    stream.destroy(Object.assign(new Error('write EPIPE'), { code: 'EPIPE' })); // no crash: it has a listener
    await new Promise((r) => setImmediate(r));
    expect(await ready()).toBe(false);
  });
});
