import dgram from 'node:dgram';
import net from 'node:net';
import { createHandler, type HandleQuery, type HandlerOptions, type Logger } from './handler.js';

export interface DnsServerBind {
  /** An IP literal; IPv6 when it contains `:`. One socket per address: bind `0.0.0.0` and `::` separately. */
  readonly host: string;
  /** 0 picks a free port (tests); `listen()` tells which. */
  readonly port: number;
}

export type UdpServerOptions = DnsServerBind &
  HandlerOptions & {
    /** A handler built already (shared with other transports); otherwise one is built from the options. */
    readonly handle?: HandleQuery;
  };

/**
 * DNS over UDP on one address. Each datagram is one query, answered synchronously from the current snapshot.
 * IPv6 sockets are IPv6-only, so `::` and `0.0.0.0` can share a port.
 */
export class UdpDnsServer {
  readonly #opts: UdpServerOptions;
  readonly #handle: HandleQuery;
  readonly #log: Logger;
  #socket: dgram.Socket | undefined;

  constructor(opts: UdpServerOptions) {
    this.#opts = opts;
    this.#handle = opts.handle ?? createHandler(opts);
    this.#log = opts.log;
  }

  /** Binds and resolves with the bound port; rejects when the address cannot be bound. */
  listen(): Promise<number> {
    if (this.#socket !== undefined) return Promise.reject(new Error('dns/udp: already listening'));
    const { host, port } = this.#opts;
    const ipv6 = net.isIPv6(host);
    const socket = dgram.createSocket({ type: ipv6 ? 'udp6' : 'udp4', ipv6Only: ipv6 });
    this.#socket = socket;
    socket.on('message', (msg, rinfo) => {
      const reply = this.#handle(msg, 'udp');
      if (reply === null) return;
      socket.send(reply, rinfo.port, rinfo.address, (err) => {
        if (err) this.#log.debug('dns/udp: send failed', { to: rinfo.address, error: err.message });
      });
    });
    return new Promise((resolve, reject) => {
      const onError = (err: Error) => {
        this.#socket = undefined;
        try {
          socket.close();
        } catch {
          // never bound: nothing to close
        }
        reject(err);
      };
      socket.once('error', onError);
      socket.bind({ address: host, port }, () => {
        socket.off('error', onError);
        socket.on('error', (err) => this.#log.warn('dns/udp: socket error', { host, error: err.message }));
        const bound = socket.address().port;
        this.#log.info('dns/udp: listening', { host, port: bound });
        resolve(bound);
      });
    });
  }

  /** Stops receiving; resolves once the socket is closed. Safe to call twice or before `listen()`. */
  close(): Promise<void> {
    const socket = this.#socket;
    this.#socket = undefined;
    if (socket === undefined) return Promise.resolve();
    return new Promise((resolve) => socket.close(() => resolve()));
  }
}
