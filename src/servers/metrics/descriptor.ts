import type { TransportDescriptor } from '../descriptor.js';
import { startMetrics } from './index.js';

/** The Prometheus endpoint (server.metrics), plain HTTP. */
export const metricsTransport: TransportDescriptor = {
  name: 'metrics',
  configPath: 'server.metrics',
  enabled: (c) => c.metrics.enabled,
  binds: (c) => c.metrics.binds,
  tls: null,
  // Its limits are fixed constants (METRICS_LIMITS), not configuration.
  limits: () => null,
  prepare: (_c, ctx) => ({
    open: async (bind) => ({
      listeners: await startMetrics({ binds: [bind], log: ctx.log('metrics'), render: () => ctx.metrics.render(), contentType: ctx.metrics.contentType }),
    }),
  }),
};
