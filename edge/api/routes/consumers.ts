/**
 * Pull consumers (cloud-sync issue item 3): POST /api/v1/consumers/:name/ack `{ "seq": n }`
 * registers the consumer on first use and moves its cursor forward only (an older seq leaves
 * it where it is); eviction respects every registered consumer's ack until the quota forces
 * otherwise (then storage.dropped counts, per consumer, what it lost). GET /api/v1/consumers
 * lists the cursors and how far behind each is.
 */
import { UPSTREAM_CONSUMER } from '../../../cloud-sync/index.js';
import { StreetboxError } from '../../errors.js';
import { ApiError, badInput } from '../errors.js';
import { idParam, jsonObject, parseJson, query, readBody } from '../http.js';
import type { Router } from '../router.js';
import type { RouteEnv } from './env.js';

/** A bound on named consumers: each one holds back eviction of what it has not acknowledged. */
export const MAX_CONSUMERS = 32;

export function consumerRoutes(r: Router, env: RouteEnv): void {
  r.add('GET', '/api/v1/consumers', 'pull', ({ url }) => {
    query(url, []);
    const last = env.ctx.store.stats().lastSeq;
    return { status: 200, body: { lastSeq: last, consumers: env.ctx.store.consumers().map((c) => ({ ...c, behind: Math.max(0, last - c.ackedSeq) })) } };
  });

  r.add('POST', '/api/v1/consumers/:name/ack', 'ack', async ({ req, url, params, principal }) => {
    query(url, []);
    const name = idParam(params['name'], 'name')!;
    if (name === UPSTREAM_CONSUMER) throw new ApiError(403, 'E_FORBIDDEN', `consumer "${name}" is the upstream sync's own cursor`, { field: 'name' });
    const body = jsonObject(parseJson(await readBody(req), env.metrics));
    for (const k of Object.keys(body)) if (k !== 'seq') throw badInput(k, 'unknown field (expected only "seq")');
    const seq = body['seq'];
    if (typeof seq !== 'number' || !Number.isSafeInteger(seq) || seq < 0) throw badInput('seq', `expected an integer >= 0, got ${JSON.stringify(seq) ?? 'nothing'}`);
    const store = env.ctx.store;
    const lastSeq = store.stats().lastSeq;
    if (seq > lastSeq) throw badInput('seq', `${seq} is past the last seq ${lastSeq}`);
    const existing = store.consumer(name);
    if (!existing && store.consumers().length >= MAX_CONSUMERS) throw badInput('name', `at most ${MAX_CONSUMERS} consumers; remove one with \`streetbox consumers\` first`);
    const before = existing ?? store.registerConsumer(name, 0);
    let after;
    try {
      after = store.ackConsumer(name, seq);
    } catch (err) {
      if (err instanceof StreetboxError && err.code === 'E_USAGE') throw badInput('seq', err.message);
      throw err;
    }
    if (!existing) env.ctx.log.info({ consumer: name, by: principal?.principal }, 'pull consumer registered');
    return { status: 200, body: { ...after, moved: after.ackedSeq > before.ackedSeq } };
  });
}
