import { createServer } from 'node:https';
import type { Bind } from '../../config/index.js';
import type { Logger } from '../../log/index.js';
import type { TlsMaterial } from '../../tls/index.js';
import { clientAuthOptions, contextOptions, listenTls, type ClientCa, type TlsListeners } from '../tls-servers.js';
import { restApp, type RestOptions } from './app.js';

export { restApp, type RestOptions } from './app.js';
export { hostDoc, hostsOf, type HostDoc } from './hosts.js';
export { defaultRule, DEFAULT_TCP_RULE, servicePassing, stableStringify, traefikDocument, type TraefikDocument } from './traefik.js';

export interface RestLimits {
  /** Request headers must arrive within this; a client trickling bytes cannot hold a socket open. */
  readonly headersTimeoutMs: number;
  /** A whole request must arrive within this. */
  readonly requestTimeoutMs: number;
  /** Idle keep-alive connections are closed after this. */
  readonly keepAliveTimeoutMs: number;
  /** Connections beyond this are closed on accept. */
  readonly maxConnections: number;
}

export const REST_LIMITS: RestLimits = Object.freeze({
  headersTimeoutMs: 10_000,
  requestTimeoutMs: 30_000,
  keepAliveTimeoutMs: 5_000,
  // A bound on descriptors and TLS state, as for the DNS transports; pollers need a handful each.
  maxConnections: 256,
});

export interface RestServerOptions {
  readonly binds: readonly Bind[];
  readonly tls: TlsMaterial;
  readonly log: Logger;
  readonly limits: RestLimits;
  readonly app: RestOptions;
  /** CA certificate(s) clients must present a certificate signed by (mutual TLS). Absent: anyone may connect. */
  readonly clientCa?: ClientCa | null;
}

/** Serves the REST API over HTTPS on every bind address, on the same TLS listeners as DoT and DoH. */
export async function startRest(opts: RestServerOptions): Promise<TlsListeners> {
  const { limits, log } = opts;
  const app = restApp(opts.app);
  const clientAuth = opts.clientCa ? clientAuthOptions(opts.clientCa) : {};
  const create = () => {
    const server = createServer({ ...contextOptions(opts.tls), ...clientAuth }, app);
    server.headersTimeout = limits.headersTimeoutMs;
    server.requestTimeout = limits.requestTimeoutMs;
    server.keepAliveTimeout = limits.keepAliveTimeoutMs;
    return server;
  };
  return listenTls(opts.binds, create, limits.maxConnections, log, 'rest', clientAuth);
}
