import type { DnsConfig } from '../../config/types.js';
import type { Snapshot } from '../../streams/snapshot.js';
import { createHandler, type HandleQuery, type Logger } from './handler.js';
import type { ResolveOptions } from './resolve.js';
import { TcpDnsServer } from './tcp.js';
import { UdpDnsServer } from './udp.js';

export interface DnsServers {
  /** UDP and TCP share each bind's port (with port 0, TCP takes the port UDP got). */
  readonly ports: readonly number[];
  /** The one handler every transport wraps (DoT, DoH and DoQ call it too). */
  readonly handle: HandleQuery;
  close(): Promise<void>;
}

/** Resolver options from configuration: one object for the process, so derived values are computed once. */
export function resolverOptions(suffix: string, dns: Pick<DnsConfig, 'ttl' | 'negativeTtl'>): ResolveOptions {
  return { suffix, ttl: dns.ttl, soa: { minimum: dns.negativeTtl } };
}

/** Starts plain DNS (UDP and TCP) on every bind address. On a bind failure, closes what it opened and throws. */
export async function startDns(
  binds: DnsConfig['binds'],
  dns: DnsConfig,
  resolver: ResolveOptions,
  snapshot: () => Snapshot,
  log: Logger,
): Promise<DnsServers> {
  const handlerOptions = { snapshot, resolver, log };
  const handle = createHandler(handlerOptions);
  const servers: (UdpDnsServer | TcpDnsServer)[] = [];
  const ports: number[] = [];
  const close = () => Promise.allSettled(servers.map((s) => s.close())).then(() => undefined);
  try {
    for (const b of binds) {
      const udp = new UdpDnsServer({ ...b, ...handlerOptions, handle });
      servers.push(udp);
      const port = await udp.listen();
      const tcp = new TcpDnsServer({
        host: b.host,
        port,
        ...handlerOptions,
        handle,
        idleTimeoutMs: dns.tcpIdleTimeoutMs,
        maxConnections: dns.maxTcpConnections,
      });
      servers.push(tcp);
      await tcp.listen();
      ports.push(port);
    }
  } catch (err) {
    await close();
    throw err;
  }
  return { ports, handle, close };
}
