import tls from 'node:tls';
import { serveStream } from '../dns/index.js';
import { type HandleTransfer } from '../../replication/index.js';
import { contextOptions, listenTls, type TlsListeners } from '../tls-servers.js';
import type { StreamLimits, TlsTransportOptions } from '../transport.js';

/**
 * DNS over TLS (RFC 7858): plain DNS-over-TCP framing inside TLS 1.2+. This file only sets up TLS; the framing,
 * pipelining and per-connection limits are the TCP transport's (../dns/stream.ts), and so are its limits (the
 * daemon passes the `server.dns` TCP settings: RFC 7858 §3.4 wants clients to reuse connections and servers to
 * reclaim idle ones, as for plain TCP).
 */

/**
 * A client must finish the TLS handshake within this (from the TCP accept). A handshake is one or two round trips;
 * 5 s is generous on any real network, and keeps a client that connects and sends nothing from holding a slot.
 */
export const DOT_HANDSHAKE_TIMEOUT_MS = 5_000;
/** ALPN identifier for DoT (RFC 7858 in the IANA ALPN registry); a client need not offer any ALPN. */
export const DOT_ALPN = 'dot';

export interface DotLimits extends StreamLimits {
  /** Default DOT_HANDSHAKE_TIMEOUT_MS. */
  readonly handshakeTimeoutMs?: number;
}

/**
 * Starts DoT on every bind address. With `transfer`, zone transfers are served over it too (XoT, RFC 9103: the
 * same AXFR/IXFR as on TCP, same allow list and TSIG). On a bind failure, closes what it opened and rejects.
 */
export function startDot(opts: TlsTransportOptions<DotLimits> & { readonly transfer?: HandleTransfer }): Promise<TlsListeners> {
  const { handle, log, limits, transfer, clock } = opts;
  const create = () =>
    tls.createServer(
      {
        ...contextOptions(opts.tls),
        handshakeTimeout: limits.handshakeTimeoutMs ?? DOT_HANDSHAKE_TIMEOUT_MS,
        // Selected when the client offers it; a client offering no ALPN is served all the same, and one offering
        // only other protocols (h2: a web client on the wrong port) fails the handshake (no_application_protocol).
        ALPNProtocols: [DOT_ALPN],
      },
      (socket) => serveStream(socket, handle, limits, log, 'dot', transfer, clock),
    );
  return listenTls(opts.binds, create, limits, log, 'dot');
}
