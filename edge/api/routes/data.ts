/**
 * The pull API (cloud-sync issue item 3): GET /api/v1/readings and /api/v1/events page by seq
 * (`after`, `limit`) and answer `{ readings | events, next }`; pass `next` as the next `after`.
 * Paging is stateless; a consumer records how far it got with POST /api/v1/consumers/:name/ack.
 */
import { identifier } from '../../config/schema.js';
import { badInput } from '../errors.js';
import { idParam, intParam, query } from '../http.js';
import type { Router } from '../router.js';
import type { RouteEnv } from './env.js';

export const MAX_LIMIT = 10_000;
export const DEFAULT_LIMIT = 1000;

export function dataRoutes(r: Router, env: RouteEnv): void {
  r.add('GET', '/api/v1/readings', 'pull', ({ url }) => {
    const q = query(url, ['after', 'limit', 'device']);
    const after = intParam(q, 'after', 0, 0, Number.MAX_SAFE_INTEGER);
    const limit = intParam(q, 'limit', DEFAULT_LIMIT, 1, MAX_LIMIT);
    const device = idParam(q.get('device'), 'device');
    const page = env.ctx.store.readings({ after, limit, ...(device !== undefined ? { device } : {}) });
    return { status: 200, body: { readings: page.items, next: page.next } };
  });

  r.add('GET', '/api/v1/events', 'pull', ({ url }) => {
    const q = query(url, ['after', 'limit', 'device', 'kind']);
    const after = intParam(q, 'after', 0, 0, Number.MAX_SAFE_INTEGER);
    const limit = intParam(q, 'limit', DEFAULT_LIMIT, 1, MAX_LIMIT);
    const device = idParam(q.get('device'), 'device');
    const kind = q.get('kind');
    if (kind !== undefined && !identifier.safeParse(kind).success) throw badInput('kind', `expected an event kind like "alarm.raised", got ${JSON.stringify(kind.slice(0, 80))}`);
    const page = env.ctx.store.events({ after, limit, ...(device !== undefined ? { device } : {}), ...(kind !== undefined ? { kind } : {}) });
    return { status: 200, body: { events: page.items, next: page.next } };
  });
}
