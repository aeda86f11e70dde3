import { openEach, type Listeners } from '../listen.js';
import type { StreamLimits, TransportOptions } from '../transport.js';
import type { HandleQuery } from '../../dns/handler.js';
import { startTcp } from './tcp.js';
import { startUdp, type AnnounceUdp, type UdpLimits } from './udp.js';
import type { HandleTransfer } from '../../replication/transfer.js';

export type PlainDnsLimits = UdpLimits & StreamLimits;

export interface PlainDnsOptions extends TransportOptions<PlainDnsLimits> {
  /** The handler TCP calls; default `handle`. Lets the daemon count UDP and TCP apart. */
  readonly tcpHandle?: HandleQuery;
  /** Zone transfers (AXFR/IXFR) over TCP; without it they are REFUSED. */
  readonly transfer?: HandleTransfer;
}

/**
 * With port 0, UDP picks a port free for UDP, which TCP may still hold (any process's outgoing connection can
 * use it). Then both are bound again on a new port, this many times at most before the error is reported.
 */
const ANY_PORT_ATTEMPTS = 8;

/**
 * Plain DNS: UDP and TCP on every bind address, sharing each address's port (with port 0, TCP takes the port
 * UDP got, so a client that retries a truncated reply over TCP reaches the same server). On a bind failure,
 * closes what it opened and rejects. `dns/udp: listening` is logged only once TCP holds the same port: a port
 * given up for another attempt is never announced (whoever reads the log for the port would find it closed).
 */
export function startPlainDns(opts: PlainDnsOptions): Promise<Listeners> {
  return openEach(opts.binds, async (bind) => {
    for (let attempt = 1; ; attempt++) {
      let bound: Parameters<AnnounceUdp> | undefined;
      const udp = await startUdp({ ...opts, binds: [bind] }, (...args) => (bound = args));
      const port = udp.ports[0]!;
      let tcp: Listeners;
      try {
        tcp = await startTcp({ ...opts, handle: opts.tcpHandle ?? opts.handle, binds: [{ host: bind.host, port }] });
      } catch (err) {
        await udp.close();
        const retry = bind.port === 0 && (err as NodeJS.ErrnoException).code === 'EADDRINUSE' && attempt < ANY_PORT_ATTEMPTS;
        if (retry) continue;
        throw err;
      }
      if (bound !== undefined) opts.log.info('dns/udp: listening', { host: bound[0], port: bound[1], io: bound[2], receiveBuffer: bound[3] });
      return { port, close: () => Promise.all([udp.close(), tcp.close()]).then(() => undefined) };
    }
  });
}
