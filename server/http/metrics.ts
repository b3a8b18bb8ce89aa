import type { Metrics } from '../metrics.js';
import type { Route } from './route.js';

/** /metrics in the Prometheus text format. */
export function metricsRoutes(metrics: Metrics): Route[] {
  return [
    {
      method: 'get',
      path: '/metrics',
      access: 'public',
      handler: async () => ({
        status: 200,
        body: await metrics.registry.metrics(),
        headers: { 'content-type': metrics.registry.contentType },
      }),
    },
  ];
}
