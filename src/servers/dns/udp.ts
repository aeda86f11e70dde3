import dgram from 'node:dgram';
import { isIPv6 } from 'node:net';
import { bindUdp, openEach, type Listeners } from '../listen.js';
import type { TransportOptions } from '../transport.js';
import { AddonWithoutSources, loadBatchAddon, openBatchUdp } from './udp-batch.js';
import { ADDRESS_BYTES, limited, writeAddress, type ResponseRateLimiter } from './rate-limit.js';
import { datagramLimit } from '../../dns/wire.js';

export interface UdpLimits {
  /** The largest reply datagram, when the client's EDNS size asks for that much (wire.ts replySize). */
  readonly maxReply: number;
  /** Response rate limiting per client prefix (rate-limit.ts); absent or null: every query is answered. */
  readonly rateLimiter?: ResponseRateLimiter | null;
  /**
   * Batched I/O (recvmmsg/sendmmsg through native/udp_batch.c) when the addon is built; false forces Node's
   * dgram. Default true. Either way the behaviour is the same; batching only costs less CPU per query.
   */
  readonly batch?: boolean;
  /**
   * SO_RCVBUF of each socket, bytes (config `server.dns.udp_receive_buffer`); absent or 0: the kernel's default.
   * Queries that arrive while lexa is off the CPU wait here instead of being dropped.
   */
  readonly receiveBuffer?: number;
  /** Where to load the addon from (tests point it at a missing file to prove the fallback). */
  readonly addonPath?: string;
}

/** How a UDP listener is announced once bound: by default the `dns/udp: listening` log line. */
export type AnnounceUdp = (host: string, port: number, io: 'recvmmsg' | 'dgram', receiveBuffer: number | undefined) => void;

/**
 * DNS over UDP on every bind address: each datagram is one query, answered synchronously from the current
 * snapshot with the datagram limit. On a bind failure, closes what it opened and rejects. `announce` is called
 * for each bound socket (plain.ts delays the log line until TCP has the same port too).
 */
export function startUdp(opts: TransportOptions<UdpLimits>, announce?: AnnounceUdp): Promise<Listeners> {
  const { handle, log } = opts;
  const announced: AnnounceUdp =
    announce ?? ((host, port, io, receiveBuffer) => log.info('dns/udp: listening', { host, port, io, receiveBuffer }));
  const limit = datagramLimit(opts.limits.maxReply);
  const rrl = opts.limits.rateLimiter ?? null;
  const addon = opts.limits.batch === false ? undefined : loadBatchAddon(opts.limits.addonPath);
  const wanted = opts.limits.receiveBuffer ?? 0;
  /** Logs the queue the kernel granted; warns when it is below `wanted` (capped by net.core.rmem_max). */
  const granted = (host: string, bytes: number | undefined) => {
    // Linux reports twice what was set (the doubling covers its bookkeeping): less than `wanted` means capped.
    if (wanted > 0 && bytes !== undefined && bytes < wanted)
      log.warn('dns/udp: receive buffer capped by the kernel; raise net.core.rmem_max (or run with CAP_NET_ADMIN)', { host, wanted, granted: bytes });
  };
  if (addon instanceof Error) log.info('dns/udp: batched I/O unavailable, using dgram', { reason: addon.message.split('\n')[0] });
  return openEach(opts.binds, async (b) => {
    if (addon !== undefined && !(addon instanceof Error)) {
      try {
        const opened = openBatchUdp(addon, b, handle, limit, log, rrl, wanted);
        announced(b.host, opened.port, 'recvmmsg', opened.receiveBuffer);
        granted(b.host, opened.receiveBuffer);
        return opened;
      } catch (err) {
        if (!(err instanceof AddonWithoutSources)) throw err;
        log.warn('dns/udp: batched I/O unavailable, using dgram', { reason: err.message });
      }
    }
    const ipv6 = isIPv6(b.host);
    const socket = dgram.createSocket({ type: ipv6 ? 'udp6' : 'udp4', ipv6Only: ipv6 });
    const source = new Uint8Array(ADDRESS_BYTES);
    socket.on('message', (msg, rinfo) => {
      const reply = rrl === null || !writeAddress(rinfo.address, source, 0) ? handle(msg, limit) : limited(rrl, source, 0, msg, handle, limit);
      if (reply === null) return;
      socket.send(reply, rinfo.port, rinfo.address, (err) => {
        if (err) log.debug('dns/udp: send failed', { to: rinfo.address, error: err.message });
      });
    });
    const port = await bindUdp(socket, b);
    socket.on('error', (err) => log.warn('dns/udp: socket error', { host: b.host, error: err.message }));
    // dgram sets SO_RCVBUF only once bound, and cannot exceed net.core.rmem_max (no SO_RCVBUFFORCE).
    if (wanted > 0) socket.setRecvBufferSize(wanted);
    const receiveBuffer = socket.getRecvBufferSize();
    announced(b.host, port, 'dgram', receiveBuffer);
    granted(b.host, receiveBuffer);
    let closed: Promise<void> | undefined;
    return { port, close: () => (closed ??= new Promise<void>((resolve) => socket.close(() => resolve()))) };
  });
}
