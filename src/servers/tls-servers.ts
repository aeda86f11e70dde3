import { constants } from 'node:crypto';
import { isIPv6, type Socket } from 'node:net';
import tls from 'node:tls';
import type { Logger } from './dns/index.js';
import type { TlsMaterial } from '../tls/index.js';

/** Where one listener binds: an IP literal (IPv6 sockets are IPv6-only) and a port, 0 for any free one. */
export interface ListenBind {
  readonly host: string;
  readonly port: number;
}

/** A set of TLS listeners (one per bind address) serving one protocol with one certificate. */
export interface TlsServers {
  /** Bound ports, in the order of the binds (useful with port 0). */
  readonly ports: readonly number[];
  /**
   * Serves `m` to connections accepted from now on; open connections keep the certificate they shook hands with.
   * Throws (changing nothing) when the certificate or key is unusable.
   */
  setTls(m: TlsMaterial): void;
  /** Stops listening and closes every open connection; resolves once all listeners are closed. */
  close(): Promise<void>;
}

/**
 * Context options for a certificate: TLS 1.2 or newer only (RFC 7858 §3.2 and RFC 8484 §5.2 point at BCP 195;
 * HTTP/2 requires 1.2 too), and no renegotiation (TLS 1.2's only way for a client to make the server redo the
 * expensive part of a handshake on an open connection).
 */
export function contextOptions(m: TlsMaterial): tls.SecureContextOptions {
  return { cert: m.cert, key: m.key, minVersion: 'TLSv1.2', secureOptions: constants.SSL_OP_NO_RENEGOTIATION };
}

/**
 * Binds one server per address, made by `create`, and manages them together. On a bind failure, closes what it
 * opened and rejects. `create` sets the server's own options; this adds what every TLS listener needs: a
 * connection cap (`maxConnections`), dropping a client whose handshake fails or times out (Node's tls.Server
 * leaves the socket open on a handshake timeout unless told), and tracking connections so close() ends them.
 */
export async function listenTls(
  binds: readonly ListenBind[],
  create: () => tls.Server,
  maxConnections: number,
  log: Logger,
  name: string,
): Promise<TlsServers> {
  const servers: tls.Server[] = [];
  const sockets = new Set<Socket>();
  const ports: number[] = [];
  const close = async (): Promise<void> => {
    const closing = servers.splice(0).map((s) => new Promise<void>((resolve) => s.close(() => resolve())));
    for (const s of sockets) s.destroy();
    await Promise.all(closing);
  };
  try {
    for (const b of binds) {
      const server = create();
      server.maxConnections = maxConnections;
      server.on('connection', (socket: Socket) => {
        sockets.add(socket);
        socket.on('close', () => sockets.delete(socket));
      });
      server.on('drop', (data) =>
        log.debug(`${name}: connection limit reached, closed a new connection`, {
          from: data?.remoteAddress,
          limit: maxConnections,
        }),
      );
      server.on('tlsClientError', (err: Error, socket: tls.TLSSocket) => {
        log.debug(`${name}: TLS handshake failed`, { from: socket.remoteAddress, error: err.message });
        socket.destroy();
      });
      servers.push(server);
      ports.push(await listen(server, b));
      server.on('error', (err) => log.warn(`${name}: server error`, { host: b.host, error: err.message }));
      log.info(`${name}: listening`, { host: b.host, port: ports.at(-1) });
    }
  } catch (err) {
    await close();
    throw err;
  }
  return {
    ports,
    setTls(m) {
      const opts = contextOptions(m);
      tls.createSecureContext(opts); // throws on a bad pair before any server has changed
      for (const s of servers) s.setSecureContext(opts);
      log.info(`${name}: certificate replaced`, { sha256: m.fingerprint });
    },
    close,
  };
}

function listen(server: tls.Server, { host, port }: ListenBind): Promise<number> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen({ host, port, ipv6Only: isIPv6(host) }, () => {
      server.off('error', reject);
      const addr = server.address();
      resolve(typeof addr === 'object' && addr !== null ? addr.port : port);
    });
  });
}
