import type { DnsContext, TransportDescriptor } from '../descriptor.js';
import { startDot } from './index.js';

/** DNS over TLS (server.dns.dot). */
export const dotTransport: TransportDescriptor<DnsContext> = {
  name: 'dot',
  configPath: 'server.dns.dot',
  enabled: (c) => c.dns.dot.enabled,
  binds: (c) => c.dns.dot.binds,
  tls: { settings: (c) => ({ tls: c.dns.dot.tls, hostname: c.dns.dot.hostname }), swapsLive: true },
  limits: (c) => c.dns.dot.limits,
  prepare: (c, ctx) => ({
    open: async (bind) => {
      const m = ctx.served('tls', 'tcp', bind);
      const listeners = await startDot({ binds: [bind], tls: ctx.material('dot'), handle: m.handle, transfer: ctx.transfer, log: ctx.log('dot'), limits: c.dns.dot.limits });
      return { listeners, counters: m.counters };
    },
  }),
};
