/**
 * The pull API (cloud-sync issue item 3): GET /api/v1/readings and /api/v1/events page by seq
 * (`after`, `limit`) and answer `{ readings | events, next }`; pass `next` as the next `after`.
 * Paging is stateless; a consumer records how far it got with POST /api/v1/consumers/:name/ack.
 */
import { z } from 'zod';
import { identifier } from '../../config/schema.js';
import type { Router } from '../router.js';
import { field, ID_WORDS, integer, integerWords } from '../schemas.js';
import type { RouteEnv } from './env.js';

export const MAX_LIMIT = 10_000;
export const DEFAULT_LIMIT = 1000;

const page = {
  after: field(integer(0), integerWords(0), { description: 'the seq to start after (the `next` of the previous page)', default: 0 }),
  limit: field(integer(1, MAX_LIMIT), integerWords(1, MAX_LIMIT), { description: 'at most this many', default: DEFAULT_LIMIT }),
  device: field(identifier, ID_WORDS, { description: 'only this device' }),
};

const readingsQuery = z.strictObject(page);
const eventsQuery = z.strictObject({
  ...page,
  kind: field(identifier, 'expected an event kind like "alarm.raised"', { description: 'only events of this kind (`alarm.raised`, `comms.lost`, …)' }),
});

const PULL = 'Needs `pull` (central and technician): the buffer is the central systems\'. Stateless paging by seq; acknowledge with POST /api/v1/consumers/{name}/ack.';

export function dataRoutes(r: Router, env: RouteEnv): void {
  r.add({
    method: 'GET',
    path: '/api/v1/readings',
    access: 'pull',
    query: readingsQuery,
    doc: (a) => ({
      operationId: 'listReadings',
      summary: 'Buffered readings, by seq',
      description: PULL,
      tags: ['data'],
      responses: { 200: { description: 'a page of readings in seq order', schema: a.readingsPage } },
    }),
    handler: ({ query: { after, limit, device } }) => {
      const items = env.ctx.store.readings({ after, limit, ...(device !== undefined ? { device } : {}) });
      return { status: 200, body: { readings: items.items, next: items.next } };
    },
  });

  r.add({
    method: 'GET',
    path: '/api/v1/events',
    access: 'pull',
    query: eventsQuery,
    doc: (a) => ({
      operationId: 'listEvents',
      summary: 'Buffered events, by seq',
      description: PULL,
      tags: ['data'],
      responses: { 200: { description: 'a page of events in seq order', schema: a.eventsPage } },
    }),
    handler: ({ query: { after, limit, device, kind } }) => {
      const items = env.ctx.store.events({ after, limit, ...(device !== undefined ? { device } : {}), ...(kind !== undefined ? { kind } : {}) });
      return { status: 200, body: { events: items.items, next: items.next } };
    },
  });
}
