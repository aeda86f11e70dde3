import net from 'node:net';
import { createHandler, type HandleQuery, type HandlerOptions, type Logger } from './handler.js';
import { serveStream } from './stream.js';
import type { DnsServerBind } from './udp.js';

/**
 * Connections are closed after this long without a complete query (see serveStream). RFC 7766 §6.2.3 wants
 * servers to reclaim idle connections "in the order of seconds"; 10 s lets a forwarder (CoreDNS, unbound) reuse a
 * connection across bursts without letting idle clients pin sockets.
 */
export const DEFAULT_TCP_IDLE_TIMEOUT_MS = 10_000;
/** Connections beyond this are closed on accept: a bound on file descriptors and memory per server. */
export const DEFAULT_TCP_MAX_CONNECTIONS = 256;
/**
 * Bytes one connection may hold: an incomplete query waiting for its end, or replies the client is not reading.
 * Real queries are a few hundred bytes; a larger partial frame closes the connection, and unread replies above it
 * stop reading from that client until they drain.
 */
export const DEFAULT_TCP_MAX_BUFFERED_BYTES = 64 * 1024;

export interface TcpServerOptions extends DnsServerBind, HandlerOptions {
  /** A handler built already (shared with other transports); otherwise one is built from the options. */
  readonly handle?: HandleQuery;
  readonly idleTimeoutMs?: number;
  readonly maxConnections?: number;
  readonly maxBufferedBytes?: number;
}

/**
 * DNS over TCP (RFC 7766) on one address: 2-byte length framing, any number of pipelined queries per connection,
 * answered in the order they arrive (each synchronously, so replies go out in query order), frames split across
 * reads or several in one read. The framing and per-connection limits live in stream.ts, shared with DoT.
 */
export class TcpDnsServer {
  readonly #opts: TcpServerOptions;
  readonly #handle: HandleQuery;
  readonly #log: Logger;
  readonly #idleMs: number;
  readonly #maxBuffered: number;
  readonly #sockets = new Set<net.Socket>();
  #server: net.Server | undefined;

  constructor(opts: TcpServerOptions) {
    this.#opts = opts;
    this.#handle = opts.handle ?? createHandler(opts);
    this.#log = opts.log;
    this.#idleMs = opts.idleTimeoutMs ?? DEFAULT_TCP_IDLE_TIMEOUT_MS;
    this.#maxBuffered = opts.maxBufferedBytes ?? DEFAULT_TCP_MAX_BUFFERED_BYTES;
  }

  /** Binds and resolves with the bound port; rejects when the address cannot be bound. */
  listen(): Promise<number> {
    if (this.#server !== undefined) return Promise.reject(new Error('dns/tcp: already listening'));
    const { host, port } = this.#opts;
    const server = net.createServer((socket) => this.#serve(socket));
    server.maxConnections = this.#opts.maxConnections ?? DEFAULT_TCP_MAX_CONNECTIONS;
    server.on('drop', (data) => {
      this.#log.debug('dns/tcp: connection limit reached, closed a new connection', {
        from: data?.remoteAddress,
        limit: server.maxConnections,
      });
    });
    this.#server = server;
    return new Promise((resolve, reject) => {
      const onError = (err: Error) => {
        this.#server = undefined;
        reject(err);
      };
      server.once('error', onError);
      server.listen({ host, port, ipv6Only: net.isIPv6(host) }, () => {
        server.off('error', onError);
        server.on('error', (err) => this.#log.warn('dns/tcp: server error', { host, error: err.message }));
        const addr = server.address() as net.AddressInfo;
        this.#log.info('dns/tcp: listening', { host, port: addr.port });
        resolve(addr.port);
      });
    });
  }

  /** Stops accepting, closes every open connection, and resolves once the server is closed. */
  close(): Promise<void> {
    const server = this.#server;
    this.#server = undefined;
    if (server === undefined) return Promise.resolve();
    return new Promise((resolve) => {
      server.close(() => resolve());
      for (const socket of this.#sockets) socket.destroy();
    });
  }

  #serve(socket: net.Socket): void {
    this.#sockets.add(socket);
    socket.on('close', () => this.#sockets.delete(socket));
    serveStream(socket, this.#handle, {
      idleTimeoutMs: this.#idleMs,
      maxBufferedBytes: this.#maxBuffered,
      log: this.#log,
      name: 'dns/tcp',
    });
  }
}
