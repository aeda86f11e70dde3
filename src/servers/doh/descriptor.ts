import type { DnsContext, TransportDescriptor } from '../descriptor.js';
import { DOH_LIMITS, startDoh } from './server.js';

/** DNS over HTTPS (server.dns.doh). */
export const dohTransport: TransportDescriptor<DnsContext> = {
  name: 'doh',
  configPath: 'server.dns.doh',
  enabled: (c) => c.dns.doh.enabled,
  binds: (c) => c.dns.doh.binds,
  tls: { settings: (c) => ({ tls: c.dns.doh.tls, hostname: c.dns.doh.hostname }), swapsLive: true },
  limits: (c) => c.dns.doh.limits,
  prepare: (c, ctx) => ({
    open: async (bind) => {
      const m = ctx.served('https', 'tcp', bind);
      const listeners = await startDoh({ binds: [bind], tls: ctx.material('doh'), handle: m.handle, log: ctx.log('doh'), limits: { ...DOH_LIMITS, ...c.dns.doh.limits } });
      return { listeners, counters: m.counters };
    },
  }),
};
