import { createServer, type Server } from 'node:https';
import type { Bind } from '../../config/types.js';
import type { Logger } from '../../log/index.js';
import type { TlsMaterial } from '../../tls/index.js';
import { closeServer, listenOn } from '../listen.js';
import { restApp, type RestOptions } from './app.js';

export { restApp } from './app.js';
export { hostDoc, hostsOf } from './hosts.js';

/** Headers must arrive within this; a client trickling bytes cannot hold a socket open. */
const HEADERS_TIMEOUT_MS = 10_000;
/** Idle keep-alive connections are closed after this. */
const KEEP_ALIVE_TIMEOUT_MS = 5_000;

export interface RestServer {
  /** Bound ports, in the order of `binds`. */
  readonly ports: readonly number[];
  /** Presents `m` to new connections; open ones keep theirs. */
  setTls(m: TlsMaterial): void;
  close(): Promise<void>;
}

/** Serves the REST API over HTTPS on every bind address. */
export async function startRest(
  binds: readonly Bind[],
  tls: TlsMaterial,
  opts: RestOptions,
  logger: Logger,
): Promise<RestServer> {
  const app = restApp(opts);
  const servers: Server[] = [];
  const ports: number[] = [];
  try {
    for (const b of binds) {
      const server = createServer({ cert: tls.cert, key: tls.key, minVersion: 'TLSv1.2' }, app);
      server.headersTimeout = HEADERS_TIMEOUT_MS;
      server.requestTimeout = 30_000;
      server.keepAliveTimeout = KEEP_ALIVE_TIMEOUT_MS;
      server.on('tlsClientError', (err) => logger.debug('rest tls handshake failed', { error: err.message }));
      servers.push(server);
      ports.push(await listenOn(server, b.host, b.port));
      logger.info('rest listening', { address: `https://${b.host.includes(':') ? `[${b.host}]` : b.host}:${ports.at(-1)}` });
    }
  } catch (err) {
    await Promise.all(servers.map((s) => closeServer(s)));
    throw err;
  }
  return {
    ports,
    setTls: (m) => servers.forEach((s) => s.setSecureContext({ cert: m.cert, key: m.key })),
    close: () => Promise.all(servers.map((s) => closeServer(s))).then(() => undefined),
  };
}
