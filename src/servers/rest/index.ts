import { createServer } from 'node:https';
import type { Bind } from '../../config/index.js';
import type { Logger } from '../../log/index.js';
import type { TlsMaterial } from '../../tls/index.js';
import { guardFirstRequest, type ConnectionLimits } from '../fairness.js';
import { clientAuthOptions, contextOptions, listenTls, type ClientCa, type TlsListeners } from '../tls-servers.js';
import { restApp, type RestOptions } from './app.js';

export { restApp, type RestOptions } from './app.js';
export { hostDoc, hostsOf, type HostDoc } from './hosts.js';
export { defaultRule, DEFAULT_TCP_RULE, servicePassing, stableStringify, traefikDocument, type TraefikDocument } from './traefik.js';

/** Fair admission (fairness.ts) and the deadlines of an HTTPS connection. */
export interface RestLimits extends ConnectionLimits {
  /** A client that has not finished the TLS handshake in this time is dropped. */
  readonly handshakeTimeoutMs: number;
  /**
   * Request headers must arrive whole within this: the first request's from the handshake's end (however they
   * trickle: guardFirstRequest), each later one's from its first byte (Node's headersTimeout).
   */
  readonly firstRequestTimeoutMs: number;
  /** A whole request (headers and body) must arrive within this. Not the response: SSE and blocking queries last. */
  readonly requestTimeoutMs: number;
  /** Idle keep-alive connections (between requests) are closed after this (Node's keepAliveTimeout). */
  readonly idleTimeoutMs: number;
}

/** The defaults the configuration declares (config/schema.ts, server.tls.limits), for tests. */
export const REST_LIMITS: RestLimits = Object.freeze({
  handshakeTimeoutMs: 5_000,
  firstRequestTimeoutMs: 10_000,
  // Request bodies are small JSON documents or none; a client trickling one cannot hold a socket longer.
  requestTimeoutMs: 30_000,
  idleTimeoutMs: 5_000,
  maxConnections: 256,
  maxPerSource: 32,
  ipv6SourcePrefix: 64,
});

/**
 * How often Node checks open HTTP/1.1 connections against headersTimeout and requestTimeout (its default, 30 s,
 * would let a slow later request live up to 30 s past its deadline).
 */
const HTTP1_CHECK_INTERVAL_MS = 1_000;

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
    const server = createServer(
      { ...contextOptions(opts.tls), ...clientAuth, handshakeTimeout: limits.handshakeTimeoutMs, connectionsCheckingInterval: HTTP1_CHECK_INTERVAL_MS },
      app,
    );
    guardFirstRequest(server, limits.firstRequestTimeoutMs);
    server.headersTimeout = limits.firstRequestTimeoutMs;
    server.requestTimeout = Math.max(limits.requestTimeoutMs, limits.firstRequestTimeoutMs);
    server.keepAliveTimeout = limits.idleTimeoutMs;
    return server;
  };
  return listenTls(opts.binds, create, limits, log, 'rest', clientAuth);
}
