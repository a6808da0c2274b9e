/**
 * Pull consumers (cloud-sync issue item 3): POST /api/v1/consumers/:name/ack `{ "seq": n }`
 * registers the consumer on first use and moves its cursor forward only (an older seq leaves
 * it where it is); eviction respects every registered consumer's ack until the quota forces
 * otherwise (then storage.dropped counts, per consumer, what it lost). GET /api/v1/consumers
 * lists the cursors and how far behind each is.
 */
import { UPSTREAM_CONSUMER } from '../../../cloud-sync/index.js';
import { z } from 'zod';
import { identifier } from '../../config/schema.js';
import { StreetboxError } from '../../errors.js';
import { ApiError, badInput } from '../errors.js';
import { parseBody, parseJson, readBody } from '../http.js';
import type { Router } from '../router.js';
import { field, ID_WORDS } from '../schemas.js';
import type { RouteEnv } from './env.js';

/** A bound on named consumers: each one holds back eviction of what it has not acknowledged. */
export const MAX_CONSUMERS = 32;

const consumerName = z.strictObject({ name: field(identifier, ID_WORDS, { description: "the consumer's name (registered on its first ack)", required: true }) });
const ackBody = z.strictObject({ seq: field(z.int().min(0), 'expected an integer >= 0', { description: 'everything up to this seq is acknowledged', required: true }) });

export function consumerRoutes(r: Router, env: RouteEnv): void {
  r.add({
    method: 'GET',
    path: '/api/v1/consumers',
    access: 'pull',
    doc: (a) => ({
      operationId: 'listConsumers',
      summary: 'The pull consumers and how far behind each is',
      tags: ['data'],
      responses: { 200: { description: 'the cursors', schema: a.consumerList } },
    }),
    handler: () => {
      const last = env.ctx.store.stats().lastSeq;
      return { status: 200, body: { lastSeq: last, consumers: env.ctx.store.consumers().map((c) => ({ ...c, behind: Math.max(0, last - c.ackedSeq) })) } };
    },
  });

  r.add({
    method: 'POST',
    path: '/api/v1/consumers/:name/ack',
    access: 'ack',
    params: consumerName,
    doc: (a) => ({
      operationId: 'ackConsumer',
      summary: 'A pulling central system acknowledges up to a seq',
      description: `Registers the consumer on its first ack (at most ${MAX_CONSUMERS}); its cursor only moves forward (an older seq leaves it where it is). Eviction respects every consumer's ack until the quota forces otherwise. \`upstream\` (the sync's own cursor) is refused.`,
      tags: ['data'],
      body: { description: 'the seq acknowledged', content: { 'application/json': ackBody } },
      responses: {
        200: { description: 'the cursor after the ack', schema: a.consumerAck },
        403: { description: 'the upstream sync\'s own cursor, or a role that may not ack', schema: a.errorBody },
      },
    }),
    handler: async ({ req, params: { name }, principal }) => {
      if (name === UPSTREAM_CONSUMER) throw new ApiError(403, 'E_FORBIDDEN', `consumer "${name}" is the upstream sync's own cursor`, { field: 'name' });
      const { seq } = parseBody(ackBody, parseJson(await readBody(req), env.metrics));
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
    },
  });
}
