import net from 'node:net';
import { listenStreams, type Listeners } from '../listen.js';
import type { StreamLimits, TransportOptions } from '../transport.js';
import { serveStream } from './stream.js';
import type { HandleTransfer } from '../../replication/transfer.js';

/**
 * DNS over TCP (RFC 7766) on every bind address: 2-byte length framing, any number of pipelined queries per
 * connection, answered in the order they arrive (each synchronously, so replies go out in query order), frames
 * split across reads or several in one read. The framing and per-connection limits live in stream.ts, shared
 * with DoT; the connection cap and tracking in listen.ts. Zone transfers (`transfer`) are served on TCP only. On a bind failure, closes what it opened and rejects.
 */
export async function startTcp(opts: TransportOptions<StreamLimits> & { readonly transfer?: HandleTransfer }): Promise<Listeners> {
  const { handle, log, limits, transfer, clock } = opts;
  const create = () => net.createServer((socket) => serveStream(socket, handle, limits, log, 'dns/tcp', transfer, clock));
  const { ports, close } = await listenStreams(opts.binds, create, limits, log, 'dns/tcp');
  return { ports, close };
}
