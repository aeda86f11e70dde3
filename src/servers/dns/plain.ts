import type { Listeners } from '../listen.js';
import type { StreamLimits, TransportOptions } from '../transport.js';
import { startTcp } from './tcp.js';
import { startUdp, type UdpLimits } from './udp.js';

export type PlainDnsLimits = UdpLimits & StreamLimits;

/**
 * Plain DNS: UDP and TCP on every bind address, sharing each address's port (with port 0, TCP takes the port
 * UDP got, so a client that retries a truncated reply over TCP reaches the same server). On a bind failure,
 * closes what it opened and rejects.
 */
export async function startPlainDns(opts: TransportOptions<PlainDnsLimits>): Promise<Listeners> {
  const opened: Listeners[] = [];
  const ports: number[] = [];
  const close = () => Promise.allSettled(opened.splice(0).map((l) => l.close())).then(() => undefined);
  try {
    for (const bind of opts.binds) {
      const udp = await startUdp({ ...opts, binds: [bind] });
      opened.push(udp);
      const port = udp.ports[0]!;
      opened.push(await startTcp({ ...opts, binds: [{ host: bind.host, port }] }));
      ports.push(port);
    }
  } catch (err) {
    await close();
    throw err;
  }
  return { ports, close };
}
