import tls from 'node:tls';
import { DEFAULT_TCP_MAX_BUFFERED_BYTES, serveStream, type HandleQuery, type Logger } from '../dns/index.js';
import type { TlsMaterial } from '../../tls/index.js';
import { contextOptions, listenTls, type ListenBind, type TlsServers } from '../tls-servers.js';

/**
 * DNS over TLS (RFC 7858): plain DNS-over-TCP framing inside TLS 1.2+. This file only sets up TLS; the framing,
 * pipelining and per-connection limits are the TCP server's (../dns/stream.ts).
 */

/**
 * A connection that completes no query for this long is closed. RFC 7858 §3.4 wants clients to reuse connections
 * and servers to reclaim idle ones; like plain TCP, 10 s lets a forwarder reuse one connection (and its handshake)
 * across bursts.
 */
export const DEFAULT_DOT_IDLE_TIMEOUT_MS = 10_000;
/** Connections beyond this are closed on accept: a bound on file descriptors and TLS state per server. */
export const DEFAULT_DOT_MAX_CONNECTIONS = 256;
/**
 * A client must finish the TLS handshake within this (from the TCP accept). A handshake is one or two round trips;
 * 5 s is generous on any real network, and keeps a client that connects and sends nothing from holding a slot.
 */
export const DEFAULT_DOT_HANDSHAKE_TIMEOUT_MS = 5_000;
/** ALPN identifier for DoT (RFC 7858 in the IANA ALPN registry); a client need not offer any ALPN. */
export const DOT_ALPN = 'dot';

export interface DotOptions {
  readonly binds: readonly ListenBind[];
  readonly tls: TlsMaterial;
  /** The shared handler; called as handle(query, 'tcp'). */
  readonly handle: HandleQuery;
  readonly log: Logger;
  readonly idleTimeoutMs?: number;
  readonly maxConnections?: number;
  readonly handshakeTimeoutMs?: number;
  /** Bytes one connection may hold (incomplete query, unread replies); default as plain TCP, 64 KiB. */
  readonly maxBufferedBytes?: number;
}

export type DotServer = TlsServers;

/** Starts DoT on every bind address. On a bind failure, closes what it opened and rejects. */
export function startDot(opts: DotOptions): Promise<DotServer> {
  const { handle, log } = opts;
  const stream = {
    idleTimeoutMs: opts.idleTimeoutMs ?? DEFAULT_DOT_IDLE_TIMEOUT_MS,
    maxBufferedBytes: opts.maxBufferedBytes ?? DEFAULT_TCP_MAX_BUFFERED_BYTES,
    log,
    name: 'dot',
  };
  const create = () =>
    tls.createServer(
      {
        ...contextOptions(opts.tls),
        handshakeTimeout: opts.handshakeTimeoutMs ?? DEFAULT_DOT_HANDSHAKE_TIMEOUT_MS,
        // Selected when the client offers it; a client offering no ALPN is served all the same, and one offering
        // only other protocols (h2: a web client on the wrong port) fails the handshake (no_application_protocol).
        ALPNProtocols: [DOT_ALPN],
      },
      (socket) => serveStream(socket, handle, stream),
    );
  return listenTls(opts.binds, create, opts.maxConnections ?? DEFAULT_DOT_MAX_CONNECTIONS, log, 'dot');
}
