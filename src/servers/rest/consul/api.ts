import { hostname } from 'node:os';
import express, { type Request, type Response } from 'express';
import type { Observable } from 'rxjs';
import type { View } from '../../../streams/index.js';
import type { Clock } from '../../../time/clock.js';
import { answerBlocking } from '../blocking.js';
import { Documents, type Doc } from '../documents.js';
import { FilterError, parseFilter } from './filter.js';
import { consulDependencies, renderConsul, schemaOf, type ConsulQuery, type Pair } from './render.js';

/**
 * A read-only Consul HTTP API over lexa's catalog (docs/catalog.md), mounted at `/v1` of the REST app:
 *
 *   GET /v1/agent/self, /v1/status/leader, /v1/status/peers, /v1/catalog/datacenters
 *   GET /v1/catalog/services, /v1/catalog/service/<name>, /v1/catalog/nodes, /v1/catalog/node/<node>
 *   GET /v1/health/service/<name>
 *
 * with `?dc=` (the configured datacenter answers for every site, a site's name for that site alone; anything else
 * is Consul's 500 "No path to datacenter"),
 * `?tag=` (repeatable: every tag must be present), `?node-meta=key:value` (repeatable), `?passing`, `?filter=`
 * (filter.ts), and blocking queries on every read: `X-Consul-Index`, `?index=&wait=` (blocking.ts: default 5 min,
 * at most 10, plus up to wait/16 of jitter). `wait` without `index` is ignored, as Consul does. Each distinct read
 * is one document with its own index (documents.ts), so a change to `web` wakes no watcher of `db`; index 0, or any
 * index other than the current one, answers at once (Consul's reset). Other parameters (`stale`, `consistent`,
 * `near`, `cached`, `token`) are accepted and change nothing: lexa has one copy of its catalog.
 *
 * Concurrent waiters are bounded by the REST listener's connections: one request at a time per HTTP/1.1
 * connection, so a source holds at most `server.tls.limits.max_per_source` (32) waiters.
 *
 * Writes (any method but GET and HEAD) answer 403: the catalog is LXD's; services are declared in LXD config.
 */

export interface ConsulOptions {
  /** The configured datacenter name, read on every request (a reload can change it). */
  readonly datacenter: () => string;
  readonly snapshot: () => View;
  /** lexa's version, reported in `/v1/agent/self`. */
  readonly version: string;
  readonly updates?: Observable<unknown>;
  readonly shutdown?: AbortSignal;
  readonly random: () => number;
  readonly clock: Clock;
  /** The node name `/v1/agent/self` reports: the host's name by default. */
  readonly nodeName?: string;
}

/**
 * Documents remembered at once besides those someone waits on (those are bounded by the REST listener's
 * connections). A Consul document can be large (a health row is ~1.2 KB: 1.2 MB for a service of 1,000
 * endpoints, rendered in ~30 ms), and every distinct filter is its own document; 64 bounds what clients can make
 * lexa keep.
 */
export const MAX_CONSUL_DOCUMENTS = 64;
/** Repeatable parameters (`tag`, `node-meta`) beyond this many are a 400: no real query names more. */
export const MAX_REPEATS = 32;
/** A tag or node-meta value longer than this cannot match (tags are DNS labels, meta values LXD names). */
const MAX_PARAM_CHARS = 256;

export const CONSUL_INDEX_HEADER = 'X-Consul-Index';
const KEY_PREFIX = 'consul:';
const READ_ONLY = "Permission denied: lexa's catalog is read-only; it is LXD's (declare services in user.lexa.service.* keys)";

export function consulRouter(opts: ConsulOptions): express.Router {
  const router = express.Router();
  const node = opts.nodeName ?? hostname();
  const docs = new Documents({
    snapshot: opts.snapshot,
    // Consul's answers name no DNS names, so the suffix never re-renders them.
    suffix: () => '',
    maxDocuments: MAX_CONSUL_DOCUMENTS,
    render: (key, snap) => renderConsul(JSON.parse(key.slice(KEY_PREFIX.length)) as ConsulQuery, snap),
    depends: (key, snap) => consulDependencies(JSON.parse(key.slice(KEY_PREFIX.length)) as ConsulQuery, snap),
  });
  const subscription = opts.updates?.subscribe(() => docs.changed());
  opts.shutdown?.addEventListener('abort', () => {
    subscription?.unsubscribe();
    docs.close();
  }, { once: true });

  const send = (res: Response, doc: Doc) => {
    res.set(CONSUL_INDEX_HEADER, String(doc.index));
    res.set('X-Consul-KnownLeader', 'true');
    res.set('X-Consul-LastContact', '0');
    res.type('application/json').send(doc.body);
  };
  const error = (res: Response, status: number, message: string) => {
    res.status(status).type('text/plain').send(message);
  };

  router.use((req, res, next) => {
    if (req.method !== 'GET' && req.method !== 'HEAD') return error(res, 403, READ_ONLY);
    const dc = req.query['dc'];
    if (dc !== undefined && dc !== '' && scopeOf(dc) === undefined) return error(res, 500, 'No path to datacenter');
    if (!opts.snapshot().synced) return error(res, 503, 'not ready: LXD has not been listed yet');
    next();
  });

  /**
   * What `?dc=` names: the configured datacenter (every site: null), or one named site (docs/sites.md), which
   * Consul clients see as a datacenter of its own; undefined for anything else.
   */
  const scopeOf = (dc: unknown): { readonly dc: string; readonly site: string | null } | undefined => {
    if (dc === undefined || dc === '' || dc === opts.datacenter()) return { dc: opts.datacenter(), site: null };
    return typeof dc === 'string' && siteNames().includes(dc) ? { dc, site: dc } : undefined;
  };
  const siteNames = () => opts.snapshot().sites.flatMap((s) => (s.name === null ? [] : [s.name]));
  /** Answers read `q` (after checking its filter), blocking when asked to. */
  const answer = (req: Request, res: Response, q: ConsulQuery) => {
    const filter = 'filter' in q ? q.filter : null;
    if (filter !== null) {
      try {
        parseFilter(filter, schemaOf(q.kind)!);
      } catch (err) {
        if (err instanceof FilterError) return error(res, 400, err.message);
        throw err;
      }
    }
    answerBlocking(req, res, docs, KEY_PREFIX + JSON.stringify(q), send, opts.random, opts.clock, 'ignore');
  };
  /** The query's parameters, or a 400 answered (undefined). */
  const params = (req: Request, res: Response) => {
    try {
      const { dc, site } = scopeOf(req.query['dc'])!;
      return {
        dc,
        site,
        tags: repeated(req, 'tag').map((t) => t.toLowerCase()),
        nodeMeta: repeated(req, 'node-meta').map(pairOf),
        filter: single(req, 'filter'),
        passing: flag(req, 'passing'),
      };
    } catch (err) {
      if (err instanceof ParamError) error(res, 400, err.message);
      else throw err;
      return undefined;
    }
  };
  const name = (req: Request) => String(req.params['name']).toLowerCase();

  router.get('/agent/self', (req, res) => answer(req, res, { kind: 'self', dc: opts.datacenter(), node, version: opts.version }));
  router.get(['/status/leader', '/status/peers'], (req, res) => {
    const host = (req.socket.localAddress ?? '127.0.0.1').replace(/^::ffff:/, '');
    const address = `${host.includes(':') ? `[${host}]` : host}:${req.socket.localPort ?? 0}`;
    answer(req, res, { kind: req.path.endsWith('leader') ? 'leader' : 'peers', address });
  });
  router.get('/catalog/datacenters', (req, res) => answer(req, res, { kind: 'datacenters', dc: opts.datacenter(), sites: siteNames() }));
  router.get(['/catalog/services', '/catalog/nodes'], (req, res) => {
    const p = params(req, res);
    if (p) answer(req, res, { kind: req.path.endsWith('services') ? 'services' : 'nodes', dc: p.dc, site: p.site, nodeMeta: p.nodeMeta, filter: p.filter });
  });
  router.get('/catalog/service/:name', (req, res) => {
    const p = params(req, res);
    if (p) answer(req, res, { kind: 'service', name: name(req), ...p, passing: false });
  });
  router.get('/health/service/:name', (req, res) => {
    const p = params(req, res);
    if (p) answer(req, res, { kind: 'health', name: name(req), ...p });
  });
  router.get('/catalog/node/:name', (req, res) => {
    const p = params(req, res);
    if (p) answer(req, res, { kind: 'node', dc: p.dc, site: p.site, name: name(req), filter: p.filter });
  });
  router.use((req, res) => error(res, 404, `no such endpoint in lexa's read-only Consul API: ${req.method} /v1${req.path}`));
  return router;
}

class ParamError extends Error {}

/** A repeatable parameter's values (none when absent). */
function repeated(req: Request, key: string): string[] {
  const v = req.query[key];
  if (v === undefined) return [];
  const list = Array.isArray(v) ? v : [v];
  if (list.length > MAX_REPEATS) throw new ParamError(`at most ${MAX_REPEATS} ${key} parameters`);
  return list.map((x) => {
    if (typeof x !== 'string') throw new ParamError(`${key} must be a plain value`);
    if (x.length > MAX_PARAM_CHARS) throw new ParamError(`${key} is longer than ${MAX_PARAM_CHARS} characters`);
    return x;
  });
}

/** A parameter given at most once, or null. */
function single(req: Request, key: string): string | null {
  const v = req.query[key];
  if (v === undefined) return null;
  if (typeof v !== 'string') throw new ParamError(`${key} must be given once, as a plain value`);
  return v;
}

/** A boolean flag Consul's way: present (empty or "true") is true; "false" is false. */
function flag(req: Request, key: string): boolean {
  const v = single(req, key);
  if (v === null || v === 'false' || v === '0') return false;
  if (v === '' || v === 'true' || v === '1') return true;
  throw new ParamError(`${key} must be empty, true or false`);
}

function pairOf(text: string): Pair {
  const at = text.indexOf(':');
  if (at <= 0) throw new ParamError('node-meta must be key:value');
  return [text.slice(0, at), text.slice(at + 1)];
}
