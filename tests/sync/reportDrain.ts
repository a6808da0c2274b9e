/**
 * The contract of a door's report drain (cloud-sync/reportOutbox.ts), run against each door that
 * reports back (configDoor.test.ts, deploymentDoor.test.ts) on the test file's mosquitto: the
 * outbox goes upstream retained on `<up>/<id>`, oldest first, more than a page of it, each report
 * marked delivered at its PUBACK, and a report added while connected goes when the bus says so; a
 * report with an id that is no topic level is dropped without holding back the ones after it; what
 * could not go while the link was down, or while the sync was stopped, goes at the next connect.
 */
import { expect, it } from 'vitest';
import { REPORT_PAGE } from '../../cloud-sync/reportOutbox.js';
import type { TestContext } from '../helpers/context.js';
import { waitFor } from '../helpers/wait.js';
import { retainedReports, type DoorSync, type MemoryOutbox } from './doorRig.js';
import { observe, type Observer } from './helpers.js';
import type { Mosquitto } from './mosquitto.js';

/** The door's service, faked: its outbox in memory, `queue` adds a report of `id` in `state`. */
export interface ReportQueue<R, S extends string> extends MemoryOutbox<R> {
  queue(id: string, state: S): number;
}

export interface DrainSubject<R, S extends string> {
  /** the test file's broker (started in its beforeAll) */
  broker(): Mosquitto;
  /** the reports' topic, without the id level */
  up: string;
  /** a sync with the door's fake service, not started */
  rig(): DoorSync & { fake: ReportQueue<R, S> };
  /** three states a request goes through, in order: a late subscriber keeps the last */
  states: readonly [S, S, S];
  /** the state of a report added on its own while connected */
  rejected: S;
  /** says on the bus that the report of `id` in `state`, queued as `seq`, was added (the owner's bus key) */
  announce(t: TestContext, id: string, seq: number, state: S): void;
  /** the outbox seq a report carries on the wire (its order can be read back) */
  seqOf(report: R): number;
  /** what the retained report of `id` in `state` matches */
  expected(id: string, state: S): Record<string, unknown>;
}

export function reportDrainContract<R, S extends string>(s: DrainSubject<R, S>): void {
  const retained = (ids: string[]): Promise<Map<string, { report: R; retain: boolean }>> => retainedReports<R>(s.broker(), s.up, ids);
  const [first, middle, last] = s.states;

  it('publishes the outbox retained, oldest first, more than a page of it, each marked delivered at its PUBACK', async () => {
    const r = s.rig();
    const live: Observer = await observe(s.broker().url, `${s.up}/#`);
    try {
      // queued before the connect: they go at it
      const ids = ['rep-a', 'rep-b', 'rep-c'];
      const n = REPORT_PAGE + 10;
      for (let i = 0; i < n; i++) r.fake.queue(ids[i % 3]!, s.states[Math.min(2, Math.floor((i * 3) / n))]!);
      await r.sync.start();
      await waitFor('every report delivered', () => r.fake.undelivered() === 0, 10_000);
      expect(r.fake.deliveredSeqs).toEqual(Array.from({ length: n }, (_, i) => i + 1));
      await waitFor('every report at the live subscriber', () => live.messages.length >= n, 5000);
      expect(live.messages.map((m) => s.seqOf(JSON.parse(m.payload.toString()) as R))).toEqual(Array.from({ length: n }, (_, i) => i + 1));
      // a subscriber arriving later gets the latest report of each request, retained
      const kept = await retained(ids);
      for (const id of ids) {
        expect(kept.get(id)?.retain).toBe(true);
        expect(kept.get(id)?.report).toMatchObject(s.expected(id, last));
      }
      // a report added while connected goes when the bus says so
      const seq = r.fake.queue('rep-d', s.rejected);
      s.announce(r.t, 'rep-d', seq, s.rejected);
      await waitFor('the new report delivered', () => r.fake.deliveredSeqs.includes(seq), 5000);
      const added = (await retained(['rep-d'])).get('rep-d')!.report;
      expect(added).toMatchObject(s.expected('rep-d', s.rejected));
      expect(s.seqOf(added)).toBe(seq);
    } finally {
      await live.close();
      await r.close();
    }
  });

  it('a report with an id that is no topic level is dropped, not holding back the ones after it', async () => {
    const r = s.rig();
    try {
      const bad = r.fake.queue('a/b', first);
      const good = r.fake.queue('rep-after', first);
      await r.sync.start();
      await waitFor('both marked delivered', () => r.fake.deliveredSeqs.includes(good), 10_000);
      expect(r.fake.deliveredSeqs).toEqual([bad, good]);
      expect((await retained(['rep-after'])).get('rep-after')?.retain).toBe(true);
    } finally {
      await r.close();
    }
  });

  it('a report added while the link is down goes after the reconnect; one added while the sync is stopped goes after its start', async () => {
    const r = s.rig();
    const broker = s.broker();
    try {
      await r.sync.start();
      await waitFor('connected', () => r.sync.status().connected, 10_000);
      await broker.stop();
      await waitFor('the link down', () => !r.sync.status().connected, 10_000);
      const seq = r.fake.queue('rep-down', middle);
      s.announce(r.t, 'rep-down', seq, middle);
      // nothing can take it now
      await new Promise((resolve) => setImmediate(resolve));
      expect(r.fake.deliveredSeqs).not.toContain(seq);
      await broker.start();
      await waitFor('the report delivered after the reconnect', () => r.fake.deliveredSeqs.includes(seq), 10_000);
      expect((await retained(['rep-down'])).get('rep-down')).toMatchObject({ retain: true, report: s.expected('rep-down', middle) });

      // a restart of the sync (a configuration change): the report added meanwhile goes at the next connect
      await r.sync.stop();
      const seq2 = r.fake.queue('rep-down', last);
      s.announce(r.t, 'rep-down', seq2, last);
      expect(r.fake.deliveredSeqs).not.toContain(seq2);
      await r.sync.start();
      await waitFor('the report delivered after the restart', () => r.fake.deliveredSeqs.includes(seq2), 10_000);
      expect((await retained(['rep-down'])).get('rep-down')?.report).toMatchObject(s.expected('rep-down', last));
    } finally {
      await r.close();
    }
  });
}
