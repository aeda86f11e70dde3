import type { DnsContext, TransportDescriptor } from '../descriptor.js';

/** DNS over QUIC (server.dns.quic). */
export const doqTransport: TransportDescriptor<DnsContext> = {
  name: 'doq',
  configPath: 'server.dns.quic',
  enabled: (c) => c.dns.quic.enabled,
  binds: (c) => c.dns.quic.binds,
  // New QUIC connections take a swapped certificate (QUICServer.updateConfig); open ones keep theirs (server.ts).
  tls: { settings: (c) => ({ tls: c.dns.quic.tls, hostname: c.dns.quic.hostname }), swapsLive: true },
  limits: (c) => c.dns.quic.limits,
  prepare: (c, ctx) => ({
    open: async (bind) => {
      const m = ctx.served('quic', 'udp', bind);
      // Loaded only when DoQ is on: @matrixai/quic's native part costs ~30 MB of memory once imported.
      const { startDoq } = await import('./server.js');
      const listeners = await startDoq({ binds: [bind], tls: ctx.material('doq'), handle: m.handle, log: ctx.log('doq'), limits: { ...c.dns.quic.limits, receiveBuffer: c.dns.udpReceiveBuffer } });
      return { listeners, counters: m.counters };
    },
  }),
};
