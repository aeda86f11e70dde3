import type { DnsContext, TransportDescriptor } from '../descriptor.js';
import { startPlainDns } from './plain.js';
import { ResponseRateLimiter } from './rate-limit.js';

/** Plain DNS, UDP and TCP on each bind (server.dns). */
export const dnsTransport: TransportDescriptor<DnsContext> = {
  name: 'dns',
  configPath: 'server.dns',
  enabled: (c) => c.dns.enabled,
  binds: (c) => c.dns.binds,
  tls: null,
  limits: (c) => c.dns.limits,
  prepare(c, ctx) {
    const { dns } = c;
    // One limiter for every UDP bind of this configuration: a prefix's rate is the same whichever address it asks.
    const rateLimiter = dns.rateLimit === null ? null : new ResponseRateLimiter(dns.rateLimit, Date.now, ctx.rateLimited);
    const limits = { ...dns.limits, maxReply: dns.maxUdpReply, receiveBuffer: dns.udpReceiveBuffer, rateLimiter };
    return {
      open: async (bind) => {
        const udp = ctx.served('dns', 'udp', bind);
        const tcp = ctx.served('dns', 'tcp', bind);
        const listeners = await startPlainDns({ binds: [bind], handle: udp.handle, tcpHandle: tcp.handle, transfer: ctx.transfer, log: ctx.log('dns'), limits });
        return { listeners, counters: [...udp.counters, ...tcp.counters] };
      },
    };
  },
};
