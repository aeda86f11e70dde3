import type dgram from 'node:dgram';
import { isIPv6, type Server, type Socket } from 'node:net';
import type { Bind } from '../config/index.js';
import type { Logger } from '../log/index.js';
import { RefusalLog, SourceGate, type ConnectionLimits } from './fairness.js';

/**
 * Binding sockets, once for every transport. An IPv6 address binds IPv6-only, so `::` and `0.0.0.0` can be
 * listed side by side on one port. Port 0 picks a free port; the promise tells which.
 */

/** Starts a stream server (net, tls, https, http2) on `bind`; resolves with the bound port, rejects on bind errors. */
export function listenOn(server: Server, bind: Bind): Promise<number> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen({ host: bind.host, port: bind.port, ipv6Only: isIPv6(bind.host) }, () => {
      server.off('error', reject);
      const addr = server.address();
      resolve(typeof addr === 'object' && addr !== null ? addr.port : bind.port);
    });
  });
}

/** Binds a UDP socket made for `bind`'s family; resolves with the bound port. On failure the socket is closed. */
export function bindUdp(socket: dgram.Socket, bind: Bind): Promise<number> {
  return new Promise((resolve, reject) => {
    const onError = (err: Error) => {
      try {
        socket.close();
      } catch {
        // never bound: nothing to close
      }
      reject(err);
    };
    socket.once('error', onError);
    socket.bind({ address: bind.host, port: bind.port }, () => {
      socket.off('error', onError);
      resolve(socket.address().port);
    });
  });
}

/** Listeners of one transport, one per bind address. */
export interface Listeners {
  /** Bound ports, in the order of the binds (useful with port 0). */
  readonly ports: readonly number[];
  /** Stops listening and ends every open connection; resolves once all are closed. Safe to call twice. */
  close(): Promise<void>;
}

/** One bound listener: its port, and how to close it. */
export interface BoundListener {
  readonly port: number;
  close(): Promise<void>;
}

/**
 * Opens one listener per bind address, in order, with `open`; if one fails, closes those already opened and
 * rejects with its error. The shape every transport's start shares.
 */
export async function openEach(binds: readonly Bind[], open: (bind: Bind) => Promise<BoundListener>): Promise<Listeners> {
  const opened: BoundListener[] = [];
  const close = () => Promise.allSettled(opened.splice(0).map((l) => l.close())).then(() => undefined);
  try {
    for (const bind of binds) opened.push(await open(bind));
  } catch (err) {
    await close();
    throw err;
  }
  return { ports: opened.map((l) => l.port), close };
}

/**
 * Binds one stream server per address, made by `create`, and manages them together; on a bind failure closes
 * what it opened and rejects. It adds what every stream listener needs: fair admission (fairness.ts: at most
 * `limits.maxPerSource` connections per source, `limits.maxConnections` in all, the last slots kept for sources
 * holding none; a refused connection is destroyed on accept, before TLS or HTTP spend anything on it, and counted
 * and logged at debug, boundedly), tracking of open connections so close() ends them, and a log line per address.
 * The admission is shared by all of this call's addresses. `name` prefixes the log messages (e.g. 'dns/tcp');
 * `announce` adds fields to the listening line (how the listener serves, e.g. DoH's HTTP/2 stack).
 */
export async function listenStreams<S extends Server>(
  binds: readonly Bind[],
  create: () => S,
  limits: ConnectionLimits,
  log: Logger,
  name: string,
  announce: Readonly<Record<string, unknown>> = {},
): Promise<Listeners & { readonly servers: readonly S[] }> {
  const servers: S[] = [];
  const sockets = new Set<Socket>();
  const ports: number[] = [];
  const gate = new SourceGate(limits);
  const refusals = new RefusalLog(log, name);
  const close = async (): Promise<void> => {
    const closing = servers.splice(0).map((s) => new Promise<void>((resolve) => s.close(() => resolve())));
    for (const s of sockets) s.destroy();
    await Promise.all(closing);
  };
  /** Runs before the server's own 'connection' listener (TLS, HTTP): a refused socket costs them nothing. */
  const admit = (socket: Socket) => {
    const release = gate.admit(socket.remoteAddress ?? '');
    if (typeof release === 'string') {
      refusals.note(release, socket.remoteAddress);
      socket.destroy();
      return;
    }
    sockets.add(socket);
    socket.once('close', () => {
      sockets.delete(socket);
      release();
    });
  };
  try {
    for (const b of binds) {
      const server = create();
      server.prependListener('connection', admit);
      servers.push(server);
      ports.push(await listenOn(server, b));
      server.on('error', (err) => log.warn(`${name}: server error`, { host: b.host, error: err.message }));
      log.info(`${name}: listening`, { host: b.host, port: ports.at(-1), ...announce });
    }
  } catch (err) {
    await close();
    throw err;
  }
  return { ports, servers, close };
}
