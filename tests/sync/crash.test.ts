/**
 * The gateway process is SIGKILLed in the middle of a drain (while it also ingests) and
 * started again: the cursor it persisted only covers acknowledged batches, so after the restart
 * the receiver holds every committed seq once, in order. The broker publishes the last will
 * `offline` when the process dies.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openStore } from '../../edge/store/index.js';
import { waitFor } from '../helpers/wait.js';
import { tempDir, type TempDir } from '../helpers/tmp.js';
import { GW, observe, outputSeqs, receiverSubscribed, startReceiver, storeSeqs, testLogger, writeBacklog } from './helpers.js';
import { startMosquitto, type Mosquitto } from './mosquitto.js';

const FIXTURE = fileURLToPath(new URL('./fixtures/gateway.ts', import.meta.url));

interface StatusLine {
  ackedSeq: number;
  lagSeq: number;
  connected: boolean;
}

interface GatewayProcess {
  child: ChildProcess;
  /** the last status line; null again when the ingest stops (SIGUSR2), until the next one */
  last: StatusLine | null;
  ingestStopped: boolean;
  exited: Promise<void>;
}

async function spawnGateway(spec: object): Promise<GatewayProcess> {
  const child = spawn(process.execPath, ['--import', 'tsx', FIXTURE, JSON.stringify(spec)], { stdio: ['ignore', 'pipe', 'pipe'] });
  const g: GatewayProcess = { child, last: null, ingestStopped: false, exited: new Promise((r) => child.once('exit', () => r())) };
  let buf = '';
  let err = '';
  child.stderr!.setEncoding('utf8').on('data', (d: string) => (err += d));
  const ready = new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`gateway fixture not ready: ${err}`)), 15_000);
    child.stdout!.setEncoding('utf8').on('data', (d: string) => {
      buf += d;
      let nl: number;
      while ((nl = buf.indexOf('\n')) >= 0) {
        const line = buf.slice(0, nl);
        buf = buf.slice(nl + 1);
        if (line === 'ready') {
          clearTimeout(timer);
          resolve();
        } else if (line === 'ingest stopped') {
          g.ingestStopped = true;
          g.last = null;
        } else if (line.startsWith('status ')) g.last = JSON.parse(line.slice(7)) as StatusLine;
      }
    });
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`gateway fixture exited with ${code}: ${err}`));
    });
  });
  await ready;
  return g;
}

let broker: Mosquitto;
let dir: TempDir;
const children: ChildProcess[] = [];

beforeAll(async () => {
  broker = await startMosquitto();
  dir = tempDir('streetbox-sync-crash-');
});
afterAll(async () => {
  for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
  await broker?.close();
  dir?.remove();
});

describe('gateway killed mid-drain', () => {
  it('SIGKILL during a drain, restart: nothing missing, nothing out of order; the will says offline', async () => {
    const db = dir.file('gw.db');
    const seed = openStore({ path: db, maxBytes: 512 * 1024 * 1024, durability: 'normal', log: testLogger() });
    writeBacklog(seed, 20_000, { eventEvery: 333 });
    seed.close();

    const out = dir.file('crash.jsonl');
    const receiver = startReceiver({ broker: broker.url, out, reorderWindowMs: 60_000 });
    const status = await observe(broker.url, `streetbox/${GW}/status`);
    try {
      await receiverSubscribed(broker, receiver);
      // linger 0: the end of the drain is read as lag 0 right after the ingest stops
      const spec = { db, gateway: GW, sync: { url: broker.url, batchSize: 100, inFlight: 2, reconnectMin: 50, reconnectMax: 500, linger: 0 }, ingestPerTick: 20 };
      const first = await spawnGateway(spec);
      children.push(first.child);
      await waitFor('the drain under way', () => (receiver.report?.items ?? 0) >= 3000, 20_000);
      first.child.kill('SIGKILL');
      await first.exited;
      const atKill = receiver.report?.items ?? 0;
      expect(atKill).toBeLessThan(20_000); // killed in the middle of the backlog
      // MQTT 3.1.1 §3.1.2.5: the broker publishes the will when the network connection drops
      await waitFor('the last will', () => status.messages.some((m) => m.payload.toString() === 'offline'), 5000);

      const second = await spawnGateway(spec);
      children.push(second.child);
      await waitFor('the backlog through after the restart', () => (receiver.report?.items ?? 0) > 20_000, 30_000);
      second.child.kill('SIGUSR2');
      // only a status printed after the ingest stopped can say the drain is through
      await waitFor('the gateway to stop ingesting', () => second.ingestStopped, 5000);
      await waitFor('the drain to finish after the restart', () => second.last !== null && second.last.connected && second.last.lagSeq === 0 && (receiver.report?.items ?? 0) > 20_000, 10_000);
      second.child.kill('SIGTERM');
      await second.exited;
      expect(second.child.exitCode).toBe(0);

      const store = openStore({ path: db, maxBytes: 512 * 1024 * 1024, durability: 'normal', log: testLogger() });
      const expected = storeSeqs(store);
      const acked = store.consumer('upstream')?.ackedSeq;
      const lastSeq = store.stats().lastSeq;
      store.close();
      await receiver.waitItems(expected.length, 10_000);
      const report = await receiver.stop();
      expect(acked).toBe(lastSeq);
      expect(outputSeqs(out)).toEqual(expected);
      expect(report.gaps).toEqual([]);
      expect(status.messages.map((m) => m.payload.toString())).toContain('online');
    } finally {
      await receiver.stop();
      await status.close();
    }
  });
});
