/**
 * Issue 13, defect 1: "A viewer can erase the buffer and the audit trail." 5,000 refused POSTs
 * from a viewer token on a full 2 MB buffer, through the real HTTP API, the real command pipeline,
 * the Modbus driver and simulator: every answer is what it was (403 / 400 with the reason), the
 * first refusals per code are recorded in full, the rest are counted exactly in
 * `command.rejected.suppressed` events, and no reading, no earlier event and no genuine command
 * row is evicted. Then the refusal ledger alone, on a fake clock: windows, refills and the bound
 * on the principals it tracks.
 */
import { Agent, request } from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createApi, type ApiComponent } from '../../edge/api/index.js';
import { EventBus } from '../../edge/bus.js';
import { systemClock } from '../../edge/clock.js';
import type { GatewayContext } from '../../edge/component.js';
import { configSchema } from '../../edge/config/schema.js';
import { createControl, type ControlComponent } from '../../edge/control/index.js';
import { CommandRecorder } from '../../edge/control/record.js';
import { DEFAULT_REFUSAL_LIMITS, RefusalLedger, SUPPRESSED_KIND, type RefusalSample } from '../../edge/control/refusals.js';
import { createModbusDriver, type ModbusDriver } from '../../edge/drivers/modbus/index.js';
import { createLogger } from '../../edge/log.js';
import { startModbusSimulators, type ModbusSimulators } from '../../edge/sim/modbus/index.js';
import type { ErrorCode } from '../../edge/errors.js';
import { isEvent, type EventOf } from '../../edge/store/eventKinds.js';
import { BatchWriter, openStore, type SqliteStore } from '../../edge/store/index.js';
import type { CommandRecord, NewReading, StoredEvent } from '../../edge/store/types.js';
import { waitFor } from '../helpers/wait.js';
import { tempDir, type TempDir } from '../helpers/tmp.js';
import { FakeClock } from '../support/fakeClock.js';

const MAX = 2 * 1024 * 1024;
const FLOOD = 5000;
/** every INVALID_EVERY-th refused POST has a bad level (400 E_INVALID_COMMAND), the others are forbidden (403) */
const INVALID_EVERY = 10;
const TOKEN = { tech: 'flood-tech-token-0123456789', view: 'flood-view-token-0123456789' };

let dir: TempDir;
let sims: ModbusSimulators;
let store: SqliteStore;
let writer: BatchWriter;
let modbus: ModbusDriver;
let control: ControlComponent;
let api: ApiComponent;

beforeAll(async () => {
  sims = await startModbusSimulators({ tcp: [{ id: 'tcp', devices: [1, 2, 3].map((unit) => ({ unit, profile: 'streetlight-controller' })) }] });
  dir = tempDir('streetbox-refusals-');
  const config = configSchema.parse({
    gateway: { id: 'gw-flood' },
    storage: { path: dir.file('streetbox.db'), maxBytes: MAX },
    buses: [{ id: 'tcp', type: 'tcp', host: '127.0.0.1', port: sims.bus('tcp').port!, timeout: 300, retries: 0 }],
    devices: [1, 2, 3].map((unit) => ({ id: `lamp-${unit}`, bus: 'tcp', unit, profile: 'streetlight-controller', poll: 600_000, groups: ['main'] })),
    groups: [{ id: 'main', defaultLevel: 80 }],
    api: { host: '127.0.0.1', port: 0, tokens: [{ name: 'tech', token: TOKEN.tech, role: 'technician' }, { name: 'view', token: TOKEN.view, role: 'viewer' }] },
  });
  const log = createLogger({ level: process.env.STREETBOX_TEST_LOG ?? 'silent' });
  const bus = new EventBus(log);
  store = openStore({ path: config.storage.path, maxBytes: MAX, durability: 'normal', log, bus, clock: systemClock });
  writer = new BatchWriter({ store, bus, log, clock: systemClock, flushIntervalMs: 20, flushRows: 1000 });
  writer.start();
  const ctx: GatewayContext = { config, configDir: dir.path, store, ingest: writer, bus, log, clock: systemClock };
  store.appendEvent({ kind: 'gateway.started', severity: 'info', detail: { pid: process.pid, config: dir.file('streetbox.yaml') } });
  modbus = createModbusDriver(ctx);
  await modbus.start();
  control = createControl(ctx, { modbus });
  await control.start();
  api = createApi(ctx, { commands: control, status: () => ({ components: [] }) });
  await api.start();
});

afterAll(async () => {
  agent.destroy();
  await api?.stop();
  await control?.stop();
  await modbus?.stop();
  await writer?.stop();
  store?.close();
  await sims?.stop();
  dir?.remove();
});

/**
 * A POST over kept-alive connections with node:http. Not fetch: the flood is 5,000 round trips and
 * undici's fetch spends about twice the CPU of the gateway's whole answer on each (measured: 8 s of
 * CPU for the flood with fetch, 3 s with this).
 */
const agent = new Agent({ keepAlive: true, maxSockets: 8 });
function post(token: string, path: string, body: unknown): Promise<{ status: number; json: Record<string, unknown> }> {
  const data = JSON.stringify(body);
  return new Promise((resolve, reject) => {
    const headers = { Authorization: `Bearer ${token}`, 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(data) };
    const req = request({ host: '127.0.0.1', port: api.port(), path, method: 'POST', agent, headers }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('error', reject);
      res.on('end', () => {
        try {
          resolve({ status: res.statusCode ?? 0, json: JSON.parse(Buffer.concat(chunks).toString('utf8')) as Record<string, unknown> });
        } catch (err) {
          reject(err instanceof Error ? err : new Error(String(err)));
        }
      });
    });
    req.on('error', reject);
    req.end(data);
  });
}

function allEvents(): StoredEvent[] {
  const out: StoredEvent[] = [];
  for (let after = 0; ; ) {
    const page = store.events({ after, limit: 1000 });
    if (page.items.length === 0) return out;
    out.push(...page.items);
    after = page.next;
  }
}

const allCommands = (): CommandRecord[] => store.listCommands({ limit: 10_000 });
const readingSeqs = (): number[] => store.sqlite.prepare('SELECT seq FROM reading ORDER BY seq').pluck().all() as number[];
const viewerOnes = <T extends { source?: unknown }>(xs: T[]): T[] => xs.filter((x) => (x.source as { principal?: string } | undefined)?.principal === 'view');
const isFinal = (c: CommandRecord): boolean => c.status !== 'queued' && c.status !== 'sent';

let tick = 0;
function fillUntilDropped(): void {
  for (let i = 0; i < 400; i++) {
    const rows: NewReading[] = [];
    for (let k = 0; k < 1000; k++, tick++) rows.push({ ts: 1_700_000_000_000 + tick, device: `meter-${tick % 40}`, point: `p${tick % 20}`, value: (tick % 1000) / 10, unit: 'W' });
    store.appendReadings(rows);
    store.enforceQuota();
    if (store.events({ after: 0, limit: 1, kind: 'storage.dropped' }).items.length > 0) return;
  }
  throw new Error('the quota never dropped a reading');
}

describe('a viewer flooding refused commands on a full 2 MB buffer', () => {
  it('is answered as before, audited in full for the first refusals and counted exactly beyond; nothing else is evicted', async () => {
    // the gateway's own asserts at start, then a genuine command from a technician
    await waitFor('the start-up asserts', () => allCommands().length >= 3 && allCommands().every(isFinal), 5000);
    const dim = await post(TOKEN.tech, '/api/v1/devices/lamp-2/commands', { action: 'dim', level: 35, durationS: 600 });
    expect(dim.status).toBe(202);
    await waitFor('the dim verified', () => store.getCommand(String(dim.json.id))?.status === 'verified', 5000);
    // the buffer is full: the quota has had to drop readings
    fillUntilDropped();
    writer.flush();

    const seqsBefore = readingSeqs();
    const eventsBefore = allEvents();
    const commandsBefore = allCommands();
    expect(eventsBefore.map((e) => e.kind)).toEqual(expect.arrayContaining(['gateway.started', 'storage.dropped', 'command.verified']));
    expect(commandsBefore.find((c) => c.id === dim.json.id)?.status).toBe('verified');
    expect(store.stats().usedBytes).toBeGreaterThan(MAX * 0.85);

    // the flood, 8 requests at a time
    const answers: { status: number; json: Record<string, unknown> }[] = new Array(FLOOD);
    let next = 0;
    const floodStart = performance.now();
    const worker = async (): Promise<void> => {
      for (let i = next++; i < FLOOD; i = next++) {
        const body = i % INVALID_EVERY === 0 ? { action: 'dim', level: 150, transaction: `t-${i}` } : { action: 'dim', level: 10, transaction: `t-${i}` };
        answers[i] = await post(TOKEN.view, '/api/v1/devices/lamp-1/commands', body);
      }
    };
    await Promise.all(Array.from({ length: 8 }, worker));
    const floodMs = performance.now() - floodStart;

    // every answer is what it always was
    const invalid = Math.ceil(FLOOD / INVALID_EVERY);
    const forbidden = FLOOD - invalid;
    answers.forEach((a, i) => {
      const bad = i % INVALID_EVERY === 0;
      expect(a.status).toBe(bad ? 400 : 403);
      expect(a.json).toEqual({
        status: 'error',
        code: bad ? 'E_INVALID_COMMAND' : 'E_FORBIDDEN',
        error: bad ? 'level: expected an integer 0..100, got 150' : 'role viewer may not command lights (needs command.lighting)',
        field: bad ? 'level' : null,
        id: expect.stringMatching(/^[0-9a-f-]{36}$/),
        transaction: `t-${i}`,
      });
    });
    expect(new Set(answers.map((a) => a.json.id)).size).toBe(FLOOD);

    // memory: one principal tracked, whatever the number of its refusals
    expect(control.refusalCounts()).toMatchObject({ principals: 1 });
    expect(control.refusalCounts().recorded + control.refusalCounts().suppressed).toBe(FLOOD);

    // the counts are written at the end of their window, or when the control plane stops
    await control.stop();

    // nothing but refusals was added, nothing was evicted
    expect(readingSeqs()).toEqual(seqsBefore);
    const eventsAfter = allEvents();
    expect(eventsAfter.filter((e) => !e.kind.startsWith('command.rejected'))).toEqual(eventsBefore);
    const commandsAfter = allCommands();
    expect(commandsAfter.filter((c) => c.status !== 'rejected')).toEqual(commandsBefore);

    // in full: the first `burst` refusals per code, each a row and a command.rejected event
    const rows = viewerOnes(commandsAfter);
    const recordedEvents = viewerOnes(eventsAfter.filter((e) => e.kind === 'command.rejected').map((e) => ({ ...e, source: e.detail.source })));
    const { burst, windowMs } = DEFAULT_REFUSAL_LIMITS;
    // (a bucket refills `burst` per window: the flood's own duration earned it a few more)
    const refilled = Math.ceil((floodMs * burst) / windowMs);
    for (const code of ['E_FORBIDDEN', 'E_INVALID_COMMAND']) {
      const n = rows.filter((r) => (r.result as { code: string }).code === code).length;
      expect(n).toBeGreaterThanOrEqual(burst);
      expect(n).toBeLessThanOrEqual(burst + refilled);
    }
    expect(recordedEvents.map((e) => e.detail.commandId).sort()).toEqual(rows.map((r) => r.id).sort());
    // a recorded refusal is the very row its requester was answered with
    const firstAnswer = answers.find((a) => a.json.id === rows[0]!.id);
    expect(firstAnswer).toBeDefined();

    // beyond: counted, exactly, per code, with a sample
    const summaries = eventsAfter.filter((e) => e.kind === SUPPRESSED_KIND);
    expect(summaries.length).toBeGreaterThanOrEqual(1);
    const counted = summaries.reduce((a, e) => a + e.detail.count, 0);
    expect(rows.length + counted).toBe(FLOOD);
    const perCode = (code: ErrorCode): number => summaries.reduce((a, e) => a + (e.detail.codes[code] ?? 0), 0);
    expect(perCode('E_FORBIDDEN') + rows.filter((r) => (r.result as { code: string }).code === 'E_FORBIDDEN').length).toBe(forbidden);
    expect(perCode('E_INVALID_COMMAND') + rows.filter((r) => (r.result as { code: string }).code === 'E_INVALID_COMMAND').length).toBe(invalid);
    expect(summaries[0]!.detail).toMatchObject({
      source: { role: 'viewer', principal: 'view' },
      sample: { action: 'dim', target: { kind: 'device', id: 'lamp-1' }, code: expect.stringMatching(/^E_/), error: expect.any(String) },
      windowMs: DEFAULT_REFUSAL_LIMITS.windowMs,
    });
    expect(summaries.at(-1)!.detail.total).toBe(counted);

    // all of them in the refusal share, within its bound
    const stats = store.stats();
    expect(stats.refusals!.commands).toBe(rows.length);
    expect(stats.refusals!.usedBytes).toBeLessThan(stats.refusals!.maxBytes);
    expect(stats.usedBytes).toBeLessThan(MAX * 0.95);
    // bounded by its work, not by a guess at the machine's speed: 5,000 answers (about 3 s of CPU
    // here; on a loaded machine the wall time is that divided by the share of a core it gets)
  }, 180_000);
});

describe('the refusal ledger', () => {
  // a store of its own, big enough to keep every summary written here
  let ledgerStore: SqliteStore;
  beforeAll(() => {
    ledgerStore = openStore({ path: dir.file('ledger.db'), maxBytes: 64 * 1024 * 1024, durability: 'normal', log: createLogger({ level: 'silent' }) });
  });
  afterAll(() => ledgerStore?.close());
  const sample = (code: RefusalSample['code'] = 'E_FORBIDDEN'): RefusalSample => ({ action: 'dim', target: { kind: 'device', id: 'lamp-1' }, code, error: 'no' });
  const viewer = (principal: string) => ({ role: 'viewer', principal }) as const;
  const summariesSince = (after: number): EventOf<typeof SUPPRESSED_KIND>[] => ledgerStore.events({ after, limit: 10_000, kind: SUPPRESSED_KIND }).items.filter((e) => isEvent(e, SUPPRESSED_KIND));

  it('records `burst` per principal and code, counts the rest into one summary per window, and refills', async () => {
    const clock = new FakeClock();
    const ledger = new RefusalLedger({ recorder: new CommandRecorder(ledgerStore, createLogger({ level: 'silent' })), clock, log: createLogger({ level: 'silent' }), limits: { burst: 3, windowMs: 1000 } });
    const after = ledgerStore.stats().lastSeq;
    const admitted = (n: number, who = viewer('v1'), code: RefusalSample['code'] = 'E_FORBIDDEN'): number => {
      let k = 0;
      for (let i = 0; i < n; i++) if (ledger.admit(who, sample(code))) k++;
      return k;
    };
    expect(admitted(10)).toBe(3);
    expect(admitted(5, viewer('v1'), 'E_NOT_FOUND')).toBe(3); // a bucket per code
    expect(admitted(4, viewer('v2'))).toBe(3); // and per principal
    expect(summariesSince(after)).toEqual([]); // not before the window ends
    await clock.advance(999);
    expect(summariesSince(after)).toEqual([]);
    await clock.advance(1);
    const first = summariesSince(after);
    expect(first.map((e) => [e.detail.source, e.detail.count, e.detail.codes])).toEqual([
      [viewer('v1'), 9, { E_FORBIDDEN: 7, E_NOT_FOUND: 2 }],
      [viewer('v2'), 1, { E_FORBIDDEN: 1 }],
    ]);
    // a window later the bucket is full again: an honest mistake is recorded in full again
    expect(admitted(4)).toBe(3);
    await clock.advance(334);
    expect(admitted(1)).toBe(1); // a third of a window refilled one token
    ledger.flush();
    expect(summariesSince(first.at(-1)!.seq).map((e) => [e.detail.count, e.detail.total])).toEqual([[1, 10]]);
    expect(clock.pendingTimers).toBe(0);
    expect([ledger.recorded, ledger.suppressed]).toEqual([13, 11]);
  });

  it('tracks at most maxPrincipals, and a principal it forgets has its count written first', () => {
    const clock = new FakeClock();
    const ledger = new RefusalLedger({ recorder: new CommandRecorder(ledgerStore, createLogger({ level: 'silent' })), clock, log: createLogger({ level: 'silent' }), limits: { burst: 2, windowMs: 60_000, maxPrincipals: 50 } });
    const after = ledgerStore.stats().lastSeq;
    let admitted = 0;
    let peak = 0;
    // 500 principals one after the other, 10 refusals each: 2 recorded, 8 counted, and the
    // principal goes out of the ledger 50 principals later, its open count written then
    for (let p = 0; p < 500; p++) {
      for (let i = 0; i < 10; i++) if (ledger.admit(viewer(`v${p}`), sample())) admitted++;
      peak = Math.max(peak, ledger.principals);
    }
    const early = summariesSince(after);
    expect(early.length).toBe(450);
    ledger.flush();
    expect(peak).toBe(50);
    const summaries = summariesSince(after);
    expect(summaries.length).toBe(500);
    expect(new Set(summaries.map((e) => e.detail.source.principal)).size).toBe(500);
    const counted = summaries.reduce((a, e) => a + e.detail.count, 0);
    expect([admitted, counted]).toEqual([1000, 4000]);
    expect([ledger.recorded, ledger.suppressed]).toEqual([1000, 4000]);
  });
});
