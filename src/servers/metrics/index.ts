import { createServer } from 'node:http';
import type { Bind } from '../../config/index.js';
import type { Logger } from '../../log/index.js';
import { listenStreams, type Listeners } from '../listen.js';

/**
 * Prometheus metrics over plain HTTP on a listener of their own (`server.metrics { bind { ... } }`), for
 * scrapers that should not need the REST API's TLS: GET /metrics, and nothing else.
 */

export const METRICS_LIMITS = Object.freeze({
  /** A scrape is one small request: headers within 10 s or the connection goes. */
  headersTimeoutMs: 10_000,
  /** A scraper or two, plus someone's curl. */
  maxConnections: 64,
  /** A quarter of them per scraper address. */
  maxPerSource: 16,
  ipv6SourcePrefix: 64,
});

export interface MetricsServerOptions {
  readonly binds: readonly Bind[];
  readonly log: Logger;
  readonly render: () => Promise<string>;
  readonly contentType: string;
}

export function startMetrics(opts: MetricsServerOptions): Promise<Listeners> {
  const create = () => {
    const server = createServer((req, res) => {
      const path = (req.url ?? '').split('?')[0];
      if (path !== '/metrics') {
        res.writeHead(404, { 'content-type': 'application/json' }).end(JSON.stringify({ error: `no such endpoint: ${path}` }));
        return;
      }
      if (req.method !== 'GET' && req.method !== 'HEAD') {
        res.writeHead(405, { allow: 'GET, HEAD', 'content-type': 'application/json' }).end(JSON.stringify({ error: 'method not allowed; use GET' }));
        return;
      }
      opts.render().then(
        (text) => res.writeHead(200, { 'content-type': opts.contentType }).end(req.method === 'HEAD' ? undefined : text),
        (err: unknown) => {
          opts.log.error('metrics: render failed', { error: String(err) });
          res.writeHead(500, { 'content-type': 'application/json' }).end(JSON.stringify({ error: 'internal error' }));
        },
      );
    });
    server.headersTimeout = METRICS_LIMITS.headersTimeoutMs;
    return server;
  };
  return listenStreams(opts.binds, create, METRICS_LIMITS, opts.log, 'metrics');
}
