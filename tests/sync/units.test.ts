/**
 * The pieces of the sync without a broker: the ack window (out-of-order PUBACKs), the batcher
 * (merged stream, one kind per batch, count and byte bounds, tiling), the payload codec, the
 * receiver's de-duplication as a scenario table, the backoff, the error classification.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { Backoff } from '../../cloud-sync/backoff.js';
import { Batcher } from '../../cloud-sync/batcher.js';
import { GatewayTrack } from '../../cloud-sync/dedup.js';
import { classifyError } from '../../cloud-sync/errors.js';
import { decodePayload, encodePayload, type Batch, type BatchKind } from '../../cloud-sync/payload.js';
import { AckWindow } from '../../cloud-sync/window.js';
import { makeContext, type TestContext } from '../helpers/context.js';
import { reading } from './helpers.js';

const contexts: TestContext[] = [];
afterEach(async () => {
  for (const t of contexts.splice(0)) await t.close();
});

describe('AckWindow', () => {
  it('moves the cursor only over the contiguous acknowledged prefix', () => {
    const w = new AckWindow(10);
    const a = w.add(11, 20, 0);
    const b = w.add(21, 30, 0);
    const c = w.add(31, 40, 0);
    expect(w.frontier).toBe(40);
    expect(w.ack(c.id)).toBeNull(); // out of order: nothing moves
    expect(w.ack(b.id)).toBeNull();
    expect(w.ackedSeq).toBe(10);
    expect(w.ack(a.id)).toBe(40); // the hole closes: all three at once
    expect(w.size).toBe(0);
    expect(w.ack(a.id)).toBeNull(); // a repeated ack is ignored
    const d = w.add(41, 50, 0);
    w.clear(); // connection lost: the batch is forgotten, resent from the cursor
    expect(w.ack(d.id)).toBeNull();
    expect(w.frontier).toBe(40);
  });
});

describe('Batcher', () => {
  it('cuts the merged stream into one-kind batches that tile the seq line', () => {
    const t = makeContext({ gateway: { id: 'gw-b' } });
    contexts.push(t);
    const s = t.store;
    s.appendReadings([0, 1, 2].map((i) => reading(i, 1000 + i))); // 1..3
    s.appendEvent({ kind: 'alarm.raised', severity: 'warning', device: 'lamp-1', detail: { alarm: 'ch1_lamp_failure', point: 'ch1_status', value: 1, bit: 0 } }); // 4
    s.appendEvent({ kind: 'alarm.cleared', severity: 'info', device: 'lamp-1', detail: { alarm: 'ch1_lamp_failure', point: 'ch1_status', value: 0, bit: 0 } }); // 5
    s.appendReadings([3, 4, 5, 6, 7].map((i) => reading(i, 1000 + i))); // 6..10
    const b = new Batcher({ store: s, gateway: 'gw-b', batchSize: 3, batchBytes: 1 << 20 });
    const cuts: [BatchKind, number, number, number, boolean][] = [];
    let after = 0;
    for (let guard = 0; guard < 20; guard++) {
      const x = b.next(after);
      if (!x) break;
      cuts.push([x.kind, x.fromSeq, x.toSeq, x.itemsJson.length, x.open]);
      after = x.toSeq;
    }
    // open: the batch could still grow (neither full nor followed by the other kind); only such a readings batch may linger
    expect(cuts).toEqual([
      ['readings', 1, 3, 3, false], // an event follows
      ['events', 4, 5, 2, false], // a reading follows
      ['readings', 6, 8, 3, false], // batchSize
      ['readings', 9, 10, 2, true],
    ]);
  });

  it('serializes readings exactly as JSON.stringify of the store\'s Reading would (every field, escaping, odd values)', () => {
    const t = makeContext({ gateway: { id: 'gw-b' } });
    contexts.push(t);
    const odd = [
      { ts: 1, device: 'lamp-1', point: 'na\u00efve "p"\n', value: 'x"y\\z\u2028', unit: '\u00b0C' },
      { ts: 2, device: 'lamp-1', point: 'on', value: false },
      { ts: 3, device: 'lamp-1', point: 'v', value: null, quality: 'bad' as const },
      { ts: 4, device: 'lamp-1', point: 'v', value: 1e21, unit: 'V', quality: 'stale' as const },
      { ts: 5, device: 'lamp-1', point: 'v', value: -0.000001, unit: 'V' },
    ];
    t.store.appendReadings(odd);
    const b = new Batcher({ store: t.store, gateway: 'gw-b', batchSize: 100, batchBytes: 1 << 20 }).next(0)!;
    const stored = t.store.readings({ after: 0, limit: 100 }).items;
    expect(b.itemsJson).toEqual(stored.map((r) => JSON.stringify(r)));
  });

  it('bounds a batch by bytes, but always sends at least one item', () => {
    const t = makeContext({ gateway: { id: 'gw-b' } });
    contexts.push(t);
    t.store.appendReadings(Array.from({ length: 50 }, (_, i) => reading(i, 1000 + i)));
    const small = new Batcher({ store: t.store, gateway: 'gw-b', batchSize: 1000, batchBytes: 1000 }).next(0)!;
    expect(small.bytes).toBeLessThanOrEqual(1000);
    expect(small.open).toBe(false); // full by its bytes
    expect(small.itemsJson.length).toBeGreaterThan(1);
    expect(small.itemsJson.length).toBeLessThan(50);
    const tiny = new Batcher({ store: t.store, gateway: 'gw-b', batchSize: 1000, batchBytes: 10 }).next(0)!;
    expect(tiny.itemsJson).toHaveLength(1);
  });
});

describe('payload', () => {
  it('round-trips plain and deflate batches', async () => {
    const items = [JSON.stringify({ seq: 3, ts: 1, device: 'd', point: 'p', value: 1, unit: null, quality: 'good' }), JSON.stringify({ seq: 5, ts: 2, device: 'd', point: 'p', value: true, unit: null, quality: 'good' })];
    for (const compress of [false, true]) {
      const b = decodePayload(encodePayload('gw', 2, 6, items, compress));
      expect(b).toMatchObject({ gateway: 'gw', fromSeq: 2, toSeq: 6 });
      expect(b.items.map((i) => i.seq)).toEqual([3, 5]);
    }
  });

  it.each([
    ['not JSON', 'nope', /not JSON/],
    ['no gateway', '{"fromSeq":1,"toSeq":1,"items":[]}', /gateway/],
    ['range backwards', '{"gateway":"g","fromSeq":5,"toSeq":4,"items":[]}', /fromSeq/],
    ['item outside the range', '{"gateway":"g","fromSeq":1,"toSeq":2,"items":[{"seq":3}]}', /rise strictly/],
    ['items not rising', '{"gateway":"g","fromSeq":1,"toSeq":5,"items":[{"seq":3},{"seq":3}]}', /rise strictly/],
    ['unknown encoding', '{"gateway":"g","fromSeq":1,"toSeq":1,"encoding":"gzip","data":""}', /unknown encoding/],
    ['bad deflate data', '{"gateway":"g","fromSeq":1,"toSeq":1,"encoding":"deflate","data":"AAAA"}', /inflate/],
  ])('rejects a payload with %s', (_name, text, why) => {
    expect(() => decodePayload(text)).toThrow(why);
  });
});

describe('receiver de-duplication', () => {
  const batch = (from: number, to: number, seqs: number[]): Batch => ({ gateway: 'g', fromSeq: from, toSeq: to, items: seqs.map((seq) => ({ seq, ts: 0, device: 'd', point: 'p', value: seq, unit: null, quality: 'good' })) });
  type Step = [kind: BatchKind, from: number, to: number, seqs: number[]];
  const rows: { name: string; steps: Step[]; expire?: boolean; out: number[]; duplicates: number; gaps: [number, number][]; absent?: number; late?: number }[] = [
    { name: 'in order', steps: [['readings', 1, 3, [1, 2, 3]], ['events', 4, 4, [4]], ['readings', 5, 6, [5, 6]]], out: [1, 2, 3, 4, 5, 6], duplicates: 0, gaps: [] },
    { name: 'a batch again', steps: [['readings', 1, 3, [1, 2, 3]], ['readings', 1, 3, [1, 2, 3]], ['readings', 4, 5, [4, 5]]], out: [1, 2, 3, 4, 5], duplicates: 3, gaps: [] },
    { name: 'resent with a longer range', steps: [['readings', 1, 3, [1, 2, 3]], ['readings', 2, 6, [2, 3, 4, 5, 6]]], out: [1, 2, 3, 4, 5, 6], duplicates: 2, gaps: [] },
    { name: 'out of order across topics', steps: [['readings', 1, 2, [1, 2]], ['readings', 4, 5, [4, 5]], ['events', 3, 3, [3]]], out: [1, 2, 3, 4, 5], duplicates: 0, gaps: [] },
    { name: 'evicted seqs inside a range', steps: [['readings', 1, 5, [1, 4, 5]]], out: [1, 4, 5], duplicates: 0, gaps: [], absent: 2 },
    { name: 'a hole never filled', steps: [['readings', 1, 2, [1, 2]], ['readings', 6, 7, [6, 7]]], expire: true, out: [1, 2, 6, 7], duplicates: 0, gaps: [[3, 5]] },
    { name: 'late after its gap', steps: [['readings', 1, 2, [1, 2]], ['readings', 6, 7, [6, 7]], ['expire' as BatchKind, 0, 0, []], ['readings', 3, 5, [3, 4, 5]], ['readings', 3, 5, [3, 4, 5]]], out: [1, 2, 6, 7, 3, 4, 5], duplicates: 3, gaps: [[3, 5]], late: 3 },
  ];
  it.each(rows)('$name', (row) => {
    const t = new GatewayTrack('g');
    const out: number[] = [];
    for (const [kind, from, to, seqs] of row.steps) {
      if ((kind as string) === 'expire') out.push(...t.expire(1000, 0, true).map((d) => d.item.seq));
      else out.push(...t.accept(kind, batch(from, to, seqs), 0).map((d) => d.item.seq));
    }
    if (row.expire) out.push(...t.expire(1000, 0, true).map((d) => d.item.seq));
    expect(out).toEqual(row.out);
    expect(t.counters.duplicates).toBe(row.duplicates);
    expect(t.counters.gaps.map((g) => [g.fromSeq, g.toSeq])).toEqual(row.gaps);
    expect(t.counters.absent).toBe(row.absent ?? 0);
    expect(t.counters.late).toBe(row.late ?? 0);
  });

  it('starts where the output file left off', () => {
    const t = new GatewayTrack('g', 3);
    const out = t.accept('readings', batch(1, 5, [1, 2, 3, 4, 5]), 0).map((d) => d.item.seq);
    expect(out).toEqual([4, 5]);
    expect(t.counters.duplicates).toBe(3);
  });
});

describe('Backoff', () => {
  it('doubles up to the ceiling with equal jitter, and resets', () => {
    const lo = new Backoff({ minMs: 100, maxMs: 1000, random: () => 0 });
    const hi = new Backoff({ minMs: 100, maxMs: 1000, random: () => 0.999999 });
    expect(Array.from({ length: 6 }, () => lo.next())).toEqual([50, 100, 200, 400, 500, 500]);
    expect(Array.from({ length: 6 }, () => hi.next())).toEqual([100, 200, 400, 800, 1000, 1000]);
    hi.reset();
    expect(hi.next()).toBe(100);
  });
});

describe('classifyError', () => {
  it.each([
    [Object.assign(new Error('Connection refused: Bad username or password'), { code: 4 }), 'auth', /refused the login: Bad username or password/],
    [Object.assign(new Error('Connection refused: Not authorized'), { code: 0x87 }), 'auth', /refused the login/],
    [Object.assign(new Error('self-signed certificate'), { code: 'DEPTH_ZERO_SELF_SIGNED_CERT' }), 'tls', /certificate does not verify/],
    [Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:1'), { code: 'ECONNREFUSED' }), 'unreachable', /cannot reach/],
    [new Error('connack timeout'), 'unreachable', /did not answer CONNECT/],
  ])('%s → %s', (err, failure, msg) => {
    const e = classifyError(err, 'mqtt://x:1');
    expect(e.failure).toBe(failure);
    expect(e.message).toMatch(msg);
    expect(e.code).toBe('E_SYNC');
  });
});
