/** The HTTP API as main.ts and other components import it. */
export { createApi, type ApiComponent, type ApiDeps } from './server.js';
export { renderMetrics, PROMETHEUS_CONTENT_TYPE, type MetricSample, type MetricType } from './metricsText.js';
export { MAX_BODY_BYTES } from './http.js';
export { rejectionStatus } from './routes/commands.js';
export type { Access, Route } from './router.js';
