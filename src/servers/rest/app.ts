import express, { type NextFunction, type Request, type Response } from 'express';
import type { Observable } from 'rxjs';
import { servesEndpoint, siteZone, type Instance, type SiteStatus, type View } from '../../streams/index.js';
import { realClock, type Clock } from '../../time/clock.js';
import type { Logger } from '../../log/index.js';
import { answerBlocking, INDEX_HEADER } from './blocking.js';
import { Documents, type Doc } from './documents.js';
import { EventStreams } from './events.js';
import { checksDoc, hostDoc, hostsOf, serviceHealth } from './hosts.js';
import { traefikDocument } from './traefik.js';
import { consulRouter } from './consul/api.js';
import { prometheusDocument } from './prometheus-sd.js';
import { version } from '../../version.js';

export interface RestOptions {
  /** Read on every request, so a getter can change it while running (SIGHUP). */
  readonly suffix: string;
  /** The latest snapshot; read synchronously on every request. */
  readonly snapshot: () => View;
  /** The LXD endpoint lexa watches now and the cluster member it is (null when unknown); shown by /readyz. */
  readonly watching?: () => { readonly target: string; readonly member: string | null };
  /** Where conflicts in `user.traefik.*` declarations are reported (once per change). */
  readonly log?: Logger;
  /** Emits on every new snapshot, waking blocking queries and event streams; without it they wake at their timeout. */
  readonly updates?: Observable<unknown>;
  /** Aborted when lexa stops: blocking queries are answered at once with what they have, event streams end. */
  readonly shutdown?: AbortSignal;
  /** GET /metrics serves this (Prometheus text); without it /metrics is 404. */
  readonly metrics?: { readonly contentType: string; render(): Promise<string> };
  /** Numbers in [0, 1) for the blocking-query jitter; Math.random by default. */
  readonly random?: () => number;
  /** Drives the blocking-query waits and the event streams' heartbeats; the process's own by default. */
  readonly clock?: Clock;
  /** The Consul API's datacenter name (`server.consul.datacenter`), read on every request; "lexa" by default. */
  readonly datacenter?: string;
  /** The node name the Consul API's `/v1/agent/self` reports; the host's name by default. */
  readonly nodeName?: string;
}

/** The Consul datacenter name when none is configured (config/schema.ts declares the same default). */
export const DEFAULT_DATACENTER = 'lexa';

/** The document keys of Documents: the list, and one host by name. */
const CONTAINERS = 'containers';
const hostKey = (host: string) => `host:${host}`;
const serviceKey = (service: string) => `service:${service}`;

/**
 * The REST API:
 *   GET /containers/        every running instance (original lexa's shape)
 *   GET /containers/<name>  one running instance by host name (with or without the suffix)
 *   GET /services/<name>    every endpoint of one service (as DNS serves it: running, passing, on its interface)
 *                           all three carry X-Lexa-Index and take `?index=N&wait=60s` (blocking.ts)
 *   GET /events             server-sent events: the /containers/ document on connect and on each change (events.ts)
 *   GET /metrics            Prometheus text format, when metrics are given
 *   GET /traefik            Traefik's dynamic configuration for its HTTP provider (see traefik.ts); `?site=<name>`
 *   GET /prometheus         Prometheus HTTP service discovery (prometheus-sd.ts): `?service=<name>`, `?health=any`
 *   /v1/...                 a read-only Consul HTTP API (consul/api.ts)
 *   GET /healthz            200 while the process is alive
 *   GET /readyz             200 once LXD has been listed, else 503; says whether LXD is connected and how old the
 *                           snapshot is
 * Every error is JSON: `{"error": "..."}` with a 4xx/5xx status. Until the first list, data endpoints answer 503
 * rather than an empty (false) list.
 */
export function restApp(opts: RestOptions): express.Express {
  const app = express();
  app.disable('x-powered-by');
  app.set('etag', false);

  // Each document is derived once per snapshot (and suffix), not per request, and carries its change index.
  const docs = new Documents({
    snapshot: opts.snapshot,
    suffix: () => opts.suffix,
    render: (key, snap, suffix) => {
      if (key === CONTAINERS) return JSON.stringify({ hosts: hostsOf(snap).map((i) => hostDoc(i, suffix, snap.checks.get(i.key))) });
      if (key.startsWith('service:')) return serviceDoc(snap, key.slice('service:'.length), suffix);
      const found = hostsNamed(snap, key.slice('host:'.length));
      return found.length === 0 ? null : JSON.stringify({ hosts: found.map((i) => hostDoc(i, suffix, snap.checks.get(i.key))) });
    },
  });
  const clock = opts.clock ?? realClock;
  const streams = new EventStreams(docs, CONTAINERS, clock);
  const random = opts.random ?? Math.random;
  const subscription = opts.updates?.subscribe(() => docs.changed());
  opts.shutdown?.addEventListener('abort', () => {
    subscription?.unsubscribe();
    docs.close();
    streams.close();
  }, { once: true });
  const sendDoc = (res: Response, doc: Doc, missing: string) => {
    res.set(INDEX_HEADER, String(doc.index));
    if (doc.body === null) res.status(404).json({ error: missing });
    else res.type('application/json').send(doc.body);
  };

  // Also once per snapshot, suffix and site (a reload can change the suffix, which the default rules name, without a
  // new snapshot; `?site=` is checked against the configured sites first, so the cache holds at most one document per
  // site and one for all). Conflicts are logged when they appear, not on every poll: a problem is logged unless a
  // document served for this snapshot or the one before already named it.
  let traefik: { version: number; suffix: string; bodies: Map<string, string>; named: Set<string>; namedBefore: Set<string> } | undefined;
  const traefikBody = (snap: View, site: string | undefined): string => {
    const suffix = opts.suffix;
    if (traefik?.version !== snap.version || traefik.suffix !== suffix)
      traefik = { version: snap.version, suffix, bodies: new Map(), named: new Set(), namedBefore: traefik?.named ?? new Set() };
    const key = site ?? '';
    let body = traefik.bodies.get(key);
    if (body === undefined) {
      const doc = traefikDocument(snap, suffix, site);
      body = doc.body;
      traefik.bodies.set(key, body);
      for (const problem of doc.problems) {
        if (!traefik.named.has(problem) && !traefik.namedBefore.has(problem)) opts.log?.warn('traefik declaration conflict', { problem });
        traefik.named.add(problem);
      }
    }
    return body;
  };

  const ready = (res: Response): View | undefined => {
    const snap = opts.snapshot();
    if (snap.synced) return snap;
    res.status(503).set('retry-after', '1').json({ error: 'not ready: LXD has not been listed yet' });
    return undefined;
  };

  app.get(['/containers', '/containers/'], (req, res) => {
    if (ready(res)) answerBlocking(req, res, docs, CONTAINERS, (r, doc) => sendDoc(r, doc, 'no document'), random, clock);
  });

  app.get('/containers/:name', (req, res) => {
    if (!ready(res)) return;
    const raw = String(req.params['name']).toLowerCase();
    const suffix = `.${opts.suffix}`;
    const host = raw.endsWith(suffix) ? raw.slice(0, -suffix.length) : raw;
    const missing = `no running instance named ${JSON.stringify(host)}`;
    answerBlocking(req, res, docs, hostKey(host), (r, doc) => sendDoc(r, doc, missing), random, clock);
  });

  app.get('/services/:name', (req, res) => {
    if (!ready(res)) return;
    const name = String(req.params['name']).toLowerCase();
    const missing = `no running instance offers a service named ${JSON.stringify(name)}`;
    answerBlocking(req, res, docs, serviceKey(name), (r, doc) => sendDoc(r, doc, missing), random, clock);
  });

  app.get('/traefik', (req, res) => {
    const snap = ready(res);
    if (!snap) return;
    const site = req.query['site'];
    if (site !== undefined && typeof site !== 'string') {
      res.status(400).json({ error: 'site must be given once' });
      return;
    }
    if (site !== undefined && !snap.sites.some((s) => s.name === site)) {
      const named = snap.sites.flatMap((s) => (s.name === null ? [] : [s.name]));
      const error = named.length === 0 ? `no site named ${JSON.stringify(site)}: this lexa watches one unnamed site` : `no site named ${JSON.stringify(site)}; sites: ${named.join(', ')}`;
      res.status(404).json({ error });
      return;
    }
    res.type('application/json').send(traefikBody(snap, site));
  });

  // Rendered once per snapshot for the whole catalog (what a Prometheus polling every few seconds asks for);
  // one service's document is an indexed lookup, rendered per request.
  let prometheus: { version: number; anyHealth: boolean; body: string } | undefined;
  app.get('/prometheus', (req, res) => {
    const snap = ready(res);
    if (!snap) return;
    const { service, health } = req.query;
    if ((service !== undefined && typeof service !== 'string') || (health !== undefined && health !== 'any' && health !== 'passing')) {
      res.status(400).json({ error: 'service must be given once; health must be "passing" (the default) or "any"' });
      return;
    }
    const anyHealth = health === 'any';
    if (service !== undefined) {
      res.type('application/json').send(prometheusDocument(snap, { service: service.toLowerCase(), anyHealth }));
      return;
    }
    if (prometheus?.version !== snap.version || prometheus.anyHealth !== anyHealth)
      prometheus = { version: snap.version, anyHealth, body: prometheusDocument(snap, { service: null, anyHealth }) };
    res.type('application/json').send(prometheus.body);
  });

  app.use(
    '/v1',
    consulRouter({
      datacenter: () => opts.datacenter ?? DEFAULT_DATACENTER,
      snapshot: opts.snapshot,
      version: version(),
      random,
      clock,
      ...(opts.updates ? { updates: opts.updates } : {}),
      ...(opts.shutdown ? { shutdown: opts.shutdown } : {}),
      ...(opts.nodeName ? { nodeName: opts.nodeName } : {}),
    }),
  );

  app.get('/events', (req, res) => {
    if (ready(res)) streams.serve(req, res);
  });

  const metrics = opts.metrics;
  if (metrics) {
    app.get('/metrics', (_req, res, next) => {
      metrics.render().then((text) => res.type(metrics.contentType).send(text), next);
    });
  }

  app.get('/healthz', (_req, res) => {
    res.json({ status: 'alive' });
  });

  app.get('/readyz', (_req, res) => {
    const snap = opts.snapshot();
    const now = Date.now();
    // Ready once every site has listed (one site: once it has); the data routes answer as soon as any has.
    res.status(snap.complete ? 200 : 503).json({
      ready: snap.complete,
      lxdConnected: snap.connected,
      instances: snap.instances.size,
      running: hostsCount(snap),
      lastListAt: snap.listedAt ? new Date(snap.listedAt).toISOString() : null,
      lastChangeAt: snap.listedAt ? new Date(snap.updatedAt).toISOString() : null,
      snapshotAgeSeconds: snap.listedAt ? Math.round((now - snap.updatedAt) / 100) / 10 : null,
      // While connected, events keep the snapshot current however old its last change is; while disconnected,
      // this is how long lexa has been answering from what it knew.
      staleSeconds: snap.connected || !snap.listedAt ? 0 : Math.round((now - snap.updatedAt) / 100) / 10,
      ...(opts.watching ? { lxdTarget: opts.watching().target, lxdMember: opts.watching().member } : {}),
      ...(snap.sites[0]?.name === null ? {} : { sites: snap.sites.map((s) => siteHealth(s, now)) }),
    });
  });

  const paths = ['/containers', '/containers/', '/containers/:name', '/services/:name', '/traefik', '/prometheus', '/events', '/healthz', '/readyz', ...(metrics ? ['/metrics'] : [])];
  app.all(paths, (_req, res) => {
    res.status(405).set('allow', 'GET, HEAD').json({ error: 'method not allowed; use GET' });
  });
  app.use((req, res) => {
    res.status(404).json({ error: `no such endpoint: ${req.method} ${req.path}` });
  });
  app.use((err: Error & { status?: number }, _req: Request, res: Response, _next: NextFunction) => {
    const status = typeof err.status === 'number' && err.status >= 400 && err.status < 600 ? err.status : 500;
    res.status(status).json({ error: status === 500 ? 'internal error' : err.message });
  });
  return app;
}

function hostsCount(snap: View): number {
  let n = 0;
  for (const _ of snap.running()) n++;
  return n;
}

/** A checked endpoint's `check` field: its check's state, as `/containers/` shows it. */
function checkOf(snap: View, instance: Instance, name: string): { check?: ReturnType<typeof checksDoc>[number] } {
  if (instance.declared === undefined) return {};
  const check = checksDoc(instance, snap.checks.get(instance.key)).find((c) => c.service === name.toLowerCase());
  return check === undefined ? {} : { check };
}

/**
 * One service's document: every endpoint DNS would answer for it (running instances, passing services, on the
 * service's interface), sorted so the bytes (and the index) move only when an endpoint does. Null: no endpoint.
 */
function serviceDoc(snap: View, name: string, suffix: string): string | null {
  // As DNS: endpoints with an address LXD vouches for, and only those addresses (NetInterface).
  const eps = snap.serviceEndpoints(name).filter(servesEndpoint);
  if (eps.length === 0) return null;
  const rows = eps.map(({ instance, service, iface }) => ({
    host: `${instance.name}.${siteZone(instance, suffix)}`,
    ...(instance.site === undefined ? {} : { site: instance.site }),
    project: instance.project,
    interface: iface.name,
    ipv4: iface.trustedIpv4,
    ipv6: iface.trustedIpv6,
    port: service.port,
    proto: service.proto,
    tags: service.tags,
    priority: service.priority,
    weight: service.weight,
    source: service.source,
    health: serviceHealth(service, snap.checks.get(instance.key)),
    ...checkOf(snap, instance, service.name),
  }));
  const order = (r: (typeof rows)[number]) => `${r.host}\u0000${r.project}\u0000${r.proto}\u0000${r.port}\u0000${r.interface}`;
  rows.sort((a, b) => (order(a) < order(b) ? -1 : order(a) > order(b) ? 1 : 0));
  return JSON.stringify({ service: name, endpoints: rows });
}

/** One named site in /readyz: whether it has listed, whether its events connection is up, how stale it is. */
function siteHealth(s: SiteStatus, now: number) {
  return {
    site: s.name,
    ready: s.synced,
    lxdConnected: s.connected,
    lastListAt: s.listedAt ? new Date(s.listedAt).toISOString() : null,
    staleSeconds: s.connected || !s.listedAt ? 0 : Math.round((now - s.updatedAt) / 100) / 10,
  };
}

/**
 * Running instances a `/containers/<name>` path names: `<host>` in every site (a listing, not a failover choice),
 * or `<host>.<site>` in that site only.
 */
function hostsNamed(snap: View, name: string): readonly Instance[] {
  const dot = name.lastIndexOf('.');
  if (dot < 0) return snap.hosts(name);
  const site = name.slice(dot + 1);
  return snap.hosts(name.slice(0, dot)).filter((i) => i.site === site);
}
