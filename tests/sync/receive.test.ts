/**
 * `streetbox receive` as a central team runs it: batches published by hand (one repeated, one
 * after a hole) come out de-duplicated and in order in the JSON-lines file; at SIGTERM the
 * summary on stdout counts the duplicates and lists the gap, and the exit code says there was one.
 */
import { existsSync, readFileSync } from 'node:fs';
import mqtt from 'mqtt';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { collect, spawnCli } from '../support/cli.js';
import { waitFor } from '../helpers/wait.js';
import { tempDir, type TempDir } from '../helpers/tmp.js';
import { startMosquitto, type Mosquitto } from './mosquitto.js';

let broker: Mosquitto;
let dir: TempDir;

beforeAll(async () => {
  broker = await startMosquitto();
  dir = tempDir('streetbox-sync-receive-');
});
afterAll(async () => {
  await broker?.close();
  dir?.remove();
});

const item = (seq: number) => ({ seq, ts: 1_700_000_000_000 + seq, device: 'lamp-1', point: 'level', value: seq, unit: '%', quality: 'good' });
const batch = (from: number, to: number, seqs: number[]) => JSON.stringify({ gateway: 'gw-cli', fromSeq: from, toSeq: to, items: seqs.map(item) });

describe('streetbox receive', () => {
  it('de-duplicates, writes in order, reports duplicates and gaps, exits 1 on a gap', async () => {
    const out = dir.file('received.jsonl');
    const child = spawnCli(['receive', '--broker', broker.url, '--out', out, '--gateway', 'gw-cli', '--client-id', 'cli-test']);
    const done = collect(child, 20_000);
    let stderr = '';
    child.stderr!.on('data', (d: string) => (stderr += d));
    try {
      await waitFor('the receiver to connect', () => stderr.includes('receiver connected'), 15_000);
      await waitFor('its SUBSCRIBE in place', () => broker.subscriptions({ clientId: 'cli-test', filter: 'streetbox/gw-cli/up/#' }) > 0, 5000);
      const pub = await mqtt.connectAsync(broker.url, { reconnectPeriod: 0 });
      await pub.publishAsync('streetbox/gw-cli/up/readings', batch(1, 3, [1, 2, 3]), { qos: 1 });
      await pub.publishAsync('streetbox/gw-cli/up/readings', batch(1, 3, [1, 2, 3]), { qos: 1 });
      await pub.publishAsync('streetbox/gw-cli/up/events', JSON.stringify({ gateway: 'gw-cli', fromSeq: 4, toSeq: 4, items: [{ seq: 4, ts: 1, device: 'lamp-1', kind: 'comms.lost', severity: 'warning', detail: { bus: 'rs485-1', unit: 1, error: 'timeout after 3 retries' } }] }), { qos: 1 });
      await pub.publishAsync('streetbox/gw-cli/up/readings', batch(8, 9, [8, 9]), { qos: 1 }); // 5..7 never arrive
      await pub.publishAsync('streetbox/other-gw/up/readings', batch(1, 1, [1]), { qos: 1 }); // not subscribed
      await pub.endAsync();
      // the receiver creates the file with its first line
      await waitFor('four lines written', () => existsSync(out) && readFileSync(out, 'utf8').split('\n').length >= 5, 5000);
    } finally {
      child.kill('SIGTERM');
    }
    const res = await done;
    const lines = readFileSync(out, 'utf8').trim().split('\n').map((l) => JSON.parse(l) as { gateway: string; type: string; kind?: string; seq: number });
    expect(lines.map((l) => [l.type, l.seq])).toEqual([
      ['reading', 1],
      ['reading', 2],
      ['reading', 3],
      ['event', 4],
      ['reading', 8],
      ['reading', 9],
    ]);
    expect(lines.every((l) => l.gateway === 'gw-cli')).toBe(true);
    expect(lines[3]!.kind).toBe('comms.lost');
    const summary = JSON.parse(res.stdout.trim().split('\n').pop()!) as { items: number; duplicates: number; gaps: unknown[] };
    expect(summary).toMatchObject({ items: 6, duplicates: 3, gaps: [{ gateway: 'gw-cli', fromSeq: 5, toSeq: 7 }] });
    expect(res.code).toBe(1);
    expect(res.stderr).toContain('1 gap(s)');
  });
});
