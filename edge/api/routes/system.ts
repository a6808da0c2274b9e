/**
 * GET /api/v1/health (no token), /api/v1/status, /metrics (edge/api/metrics.ts: what a scrape reads
 * in) and /api/v1/openapi.json (openapi.ts: the document of every route, this one included).
 */
import { z } from 'zod';
import { renderMetrics, PROMETHEUS_CONTENT_TYPE, type MetricSample } from '../metricsText.js';
import { openApiRoute } from '../openapi.js';
import type { Router } from '../router.js';
import { ANY_QUERY } from '../schemas.js';
import { safeDevices, type RouteEnv } from './env.js';

export function systemRoutes(r: Router, env: RouteEnv): void {
  // no token: only that the process answers (for load balancers and watchdogs), nothing else
  r.add({
    method: 'GET',
    path: '/api/v1/health',
    access: 'public',
    query: ANY_QUERY,
    doc: (a) => ({
      operationId: 'getHealth',
      summary: 'Whether the process answers',
      description: 'For load balancers and watchdogs: `{ "status": "ok" }` and nothing else, without a token. Query parameters are ignored.',
      tags: ['system'],
      responses: { 200: { description: 'the process answers', schema: a.health } },
    }),
    handler: () => ({ status: 200, body: { status: 'ok' } }),
  });

  r.add({
    method: 'GET',
    path: '/api/v1/status',
    access: 'read',
    doc: (a) => ({
      operationId: 'getStatus',
      summary: "The gateway's status",
      description: 'Components and their state, the buffer (store), the pull consumers, the upstream sync, the LoRaWAN side and the drivers\' rows per device.',
      tags: ['system'],
      responses: { 200: { description: 'the status', schema: a.status } },
    }),
    handler: () => {
      const s = env.deps.status();
      const base = s !== null && typeof s === 'object' && !Array.isArray(s) ? (s as Record<string, unknown>) : { status: s };
      return {
        status: 200,
        body: {
          ...base,
          gateway: env.ctx.config.gateway.id,
          now: env.ctx.clock.now(),
          store: env.ctx.store.stats(),
          consumers: env.ctx.store.consumers(),
          devices: safeDevices(env),
        },
      };
    },
  });

  r.add({
    method: 'GET',
    path: '/metrics',
    access: env.ctx.config.api.metricsAuth ? 'read' : 'public',
    query: ANY_QUERY,
    doc: () => ({
      operationId: 'getMetrics',
      summary: 'Prometheus metrics',
      description:
        'The Prometheus text format 0.0.4: the API, the buffer, devices, buses, the broker, the upstream sync, LoRaWAN, configuration and firmware. `read`, or public with `api.metricsAuth: false`. Query parameters are ignored (a scraper\'s `params`).',
      tags: ['system'],
      responses: { 200: { description: 'the samples', contentType: PROMETHEUS_CONTENT_TYPE, schema: z.string() } },
    }),
    handler: () => {
      let extra: MetricSample[] = [];
      try {
        extra = env.deps.metrics?.() ?? [];
      } catch (err) {
        env.ctx.log.warn({ err }, 'metrics() of a component failed');
      }
      let gatewayStatus: unknown = null;
      try {
        gatewayStatus = env.deps.status();
      } catch (err) {
        env.ctx.log.warn({ err }, 'status() failed');
      }
      const { ctx } = env;
      const scrape = { store: ctx.store, config: ctx.config, devices: safeDevices(env), availability: env.availability, status: gatewayStatus };
      const text = renderMetrics(env.metrics.samples(scrape, extra));
      return { status: 200, text, contentType: PROMETHEUS_CONTENT_TYPE };
    },
  });

  openApiRoute(r);
}
