import { afterEach, describe, expect, it } from 'vitest';
import { join } from 'node:path';
import { silentLogger } from '../../edge/log.js';
import { openStore } from '../../edge/store/index.js';
import { runCli, tempGateway, ROOT } from '../support/cli.js';

const MINIMAL = `gateway:\n  id: cli-test\nstorage:\n  path: data/buffer.db\n`;

const cleanups: (() => void)[] = [];
afterEach(() => {
  for (const c of cleanups.splice(0)) c();
});

// Each run is a process of its own (~1.3 s of CPU to start): the runs of a test go at once, as
// none depends on another.

function gateway(yaml = MINIMAL) {
  const g = tempGateway(yaml);
  cleanups.push(g.cleanup);
  return g;
}

describe('streetbox CLI', () => {
  it('has help text for every command', async () => {
    const cmds = ['start', 'validate', 'status', 'export'];
    const [top, ...each] = await Promise.all([runCli(['--help']), ...cmds.map((cmd) => runCli([cmd, '--help']))]);
    expect(top.code).toBe(0);
    cmds.forEach((cmd, i) => {
      expect(top.stdout).toContain(cmd);
      const r = each[i]!;
      expect(r.code, cmd).toBe(0);
      expect(r.stdout).toMatch(/^Usage: streetbox /);
    });
  });

  it('exits 2 on an unknown command or a bad option value', async () => {
    const g = gateway();
    const [unknown, r, f] = await Promise.all([
      runCli(['frobnicate']),
      runCli(['export', '--config', g.config, '--after', 'x']),
      runCli(['export', '--config', g.config, '--after', '0', '--format', 'xml']),
    ]);
    expect(unknown.code).toBe(2);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('"--after" must be an integer >= 0, got "x"');
    expect(f.code).toBe(2);
    expect(f.stderr).toContain("Allowed choices are jsonl, csv");
  });

  it('validate: 0 on the shipped devices.yaml, 2 with every error at its place on a bad one', async () => {
    const bad = gateway('gateway:\n  id: x\nstorage:\n  durability: fast\n  flushRows: -1\n');
    const [ok, r] = await Promise.all([runCli(['validate', join(ROOT, 'devices.yaml')]), runCli(['validate', bad.config])]);
    expect(ok.stderr).toBe('');
    expect(ok.code).toBe(0);
    expect(ok.stdout).toContain('ok — gateway "demo-cabinet-01"');

    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/devices\.yaml:4:15 storage\.durability: /);
    expect(r.stderr).toMatch(/devices\.yaml:5:14 storage\.flushRows: /);
    expect(r.stderr).toContain('2 error(s); nothing started.');
  });

  it('start with a bad config exits 2 and starts nothing', async () => {
    const bad = gateway('gateway:\n  id: x\nbusses: []\n');
    const r = await runCli(['start', '--config', bad.config]);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('unknown key "busses"');
    expect(r.stdout).toBe('');
  });

  it('export writes readings after a seq as jsonl and csv, and status summarises the buffer', async () => {
    const g = gateway();
    const store = openStore({ path: join(g.dir, 'data/buffer.db'), maxBytes: 50e6, durability: 'normal', log: silentLogger() });
    const t0 = Date.UTC(2026, 10, 24, 12);
    store.appendReadings([
      { ts: t0, device: 'lamp-1', point: 'dim_level', value: 40, unit: '%', quality: 'good' },
      { ts: t0, device: 'lamp-1', point: 'lamp_ok', value: true, quality: 'good' },
      { ts: t0 + 1, device: 'lamp-2', point: 'note', value: 'a "quoted", text', quality: 'good' },
      { ts: t0 + 2, device: 'lamp-2', point: 'power', value: null, quality: 'bad' },
    ]);
    store.appendEvent({ kind: 'comms.lost', severity: 'warning', device: 'lamp-2', detail: { bus: 'rs485-1', unit: 2, error: 'timeout' } });
    store.close();

    const [all, paged, ev, st] = await Promise.all([
      runCli(['export', '--config', g.config, '--after', '0']),
      runCli(['export', '--config', g.config, '--after', '1', '--limit', '2', '--format', 'csv']),
      runCli(['export', '--config', g.config, '--after', '0', '--events']),
      runCli(['status', '--config', g.config, '--json']),
    ]);
    expect(all.code).toBe(0);
    const rows = all.stdout.trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(rows.map((r) => r.value)).toEqual([40, true, 'a "quoted", text', null]);
    expect(rows.map((r) => r.seq)).toEqual([1, 2, 3, 4]);

    expect(paged.code).toBe(0);
    expect(paged.stdout).toBe(
      'seq,ts,device,point,value,unit,quality,time\n' +
        `2,${t0},lamp-1,lamp_ok,true,,good,2026-11-24T12:00:00.000+00:00\n` +
        `3,${t0 + 1},lamp-2,note,"a ""quoted"", text",,good,2026-11-24T12:00:00.001+00:00\n`,
    );

    expect(ev.stdout).toContain('"kind":"comms.lost"');

    expect(st.code).toBe(0);
    const status = JSON.parse(st.stdout) as { running: boolean; store: { readings: number; lastSeq: number }; recentEvents: { kind: string }[] };
    expect(status.running).toBe(false);
    expect(status.store.readings).toBe(4);
    expect(status.store.lastSeq).toBe(5);
    expect(status.recentEvents[0]!.kind).toBe('comms.lost');
  });

  it('export and status on a gateway that never ran say so and exit 2', async () => {
    const g = gateway();
    const [r, s] = await Promise.all([runCli(['export', '--config', g.config, '--after', '0']), runCli(['status', '--config', g.config])]);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('no buffer at');
    expect(s.code).toBe(0);
    expect(s.stdout).toContain('not running');
  });
});
