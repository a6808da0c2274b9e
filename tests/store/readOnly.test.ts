/** The CLI's read-only view: reads beside a running store, writes nothing. */
import { readdirSync, writeFileSync } from 'node:fs';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { openStoreReadOnly } from '../../edge/store/readOnly.js';
import { Sandbox } from './helpers.js';

let sb: Sandbox;
beforeEach(() => {
  sb = new Sandbox();
});
afterEach(() => sb.cleanup());

describe('openStoreReadOnly', () => {
  it('reads readings, events, latest values and stats while the gateway writes', () => {
    const store = sb.open({ maxBytes: 5_000_000 });
    store.appendReadings([
      { ts: 1, device: 'lamp-1', point: 'level', value: 40, unit: '%' },
      { ts: 2, device: 'lamp-2', point: 'on', value: true },
    ]);
    store.appendEvent({ kind: 'comms.lost', severity: 'warning', device: 'lamp-2', detail: { bus: 'rs485-1', unit: 2, error: 'timeout' } });
    store.registerConsumer('upstream');
    store.ackConsumer('upstream', 2);

    const view = openStoreReadOnly(store.path);
    try {
      expect(view.latest('lamp-1').get('level')?.value).toBe(40);
      // the gateway keeps writing, with a point the view has not loaded
      store.appendReadings([{ ts: 3, device: 'lamp-3', point: 'mode', value: 'manual' }]);
      expect(view.readings({ after: 0, limit: 10 }).items.map((r) => [r.device, r.value])).toEqual([
        ['lamp-1', 40],
        ['lamp-2', true],
        ['lamp-3', 'manual'],
      ]);
      expect(view.readings({ after: 0, limit: 10, device: 'lamp-3' }).items.map((r) => r.seq)).toEqual([4]);
      expect(view.events({ after: 0, limit: 10 }).items.map((e) => e.kind)).toEqual(['comms.lost']);
      expect(view.consumers()).toMatchObject([{ name: 'upstream', ackedSeq: 2 }]);
      expect(view.stats()).toMatchObject({ lastSeq: 4, readings: 3, events: 1, maxBytes: 5_000_000, droppedTotal: 0 });
      expect(view.latestAll().get('lamp-3')?.get('mode')?.value).toBe('manual');
    } finally {
      view.close();
      view.close();
    }
    // the store is unaffected
    expect(store.appendReadings([{ ts: 4, device: 'lamp-1', point: 'level', value: 0 }]).firstSeq).toBe(5);
  });

  it('opens a cleanly closed file and refuses what is not a streetbox database, moving nothing', () => {
    const store = sb.open();
    store.appendReadings([{ ts: 1, device: 'd', point: 'p', value: 1 }]);
    store.close();
    const view = openStoreReadOnly(store.path);
    expect(view.stats().readings).toBe(1);
    view.close();

    const junk = sb.file('junk.db');
    writeFileSync(junk, 'not a database at all, not even close'.repeat(10));
    expect(() => openStoreReadOnly(junk)).toThrow(expect.objectContaining({ code: 'E_STORE_CORRUPT' }));
    expect(() => openStoreReadOnly(sb.file('missing.db'))).toThrow(expect.objectContaining({ code: 'E_STORE' }));
    expect(readdirSync(sb.dir).filter((f) => f.includes('corrupt'))).toEqual([]);
  });
});
