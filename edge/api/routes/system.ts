/** GET /api/v1/health (no token), /api/v1/status, /metrics (edge/api/metrics.ts: what a scrape reads in). */
import { renderMetrics, PROMETHEUS_CONTENT_TYPE, type MetricSample } from '../metricsText.js';
import type { Router } from '../router.js';
import { query } from '../http.js';
import { safeDevices, type RouteEnv } from './env.js';

export function systemRoutes(r: Router, env: RouteEnv): void {
  // no token: only that the process answers (for load balancers and watchdogs), nothing else
  r.add('GET', '/api/v1/health', 'public', () => ({ status: 200, body: { status: 'ok' } }));

  r.add('GET', '/api/v1/status', 'read', ({ url }) => {
    query(url, []);
    const status = env.deps.status();
    const base = status !== null && typeof status === 'object' && !Array.isArray(status) ? (status as Record<string, unknown>) : { status };
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
  });

  r.add('GET', '/metrics', env.ctx.config.api.metricsAuth ? 'read' : 'public', () => {
    let extra: MetricSample[] = [];
    try {
      extra = env.deps.metrics?.() ?? [];
    } catch (err) {
      env.ctx.log.warn({ err }, 'metrics() of a component failed');
    }
    let status: unknown = null;
    try {
      status = env.deps.status();
    } catch (err) {
      env.ctx.log.warn({ err }, 'status() failed');
    }
    const { ctx } = env;
    const scrape = { store: ctx.store, config: ctx.config, devices: safeDevices(env), availability: env.availability, status };
    const text = renderMetrics(env.metrics.samples(scrape, extra));
    return { status: 200, text, contentType: PROMETHEUS_CONTENT_TYPE };
  });
}
