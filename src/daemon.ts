import { createHash } from 'node:crypto';
import { merge, Subject, throttleTime } from 'rxjs';
import type { Config } from './config/index.js';
import type { Logger } from './log/index.js';
import { createMetrics, instrument, ListenerCounters, type DnsProto, type DnsScheme, type Metrics } from './metrics/index.js';
import { ListenerSet, type ListenerSpec } from './runtime/listener-set.js';
import { planReload, type ReloadPlan } from './runtime/reload-plan.js';
import { AGENT_LIMITS, startAgentServer, type AgentPolicy } from './servers/agent/index.js';
import {
  createHandler,
  createTransfer,
  ResponseRateLimiter,
  type RateLimitCounts,
  Notifier,
  watchZones,
  resolverOptions,
  reverseZones,
  startPlainDns,
  withTsig,
  ZoneSerials,
  zoneOptions,
  type HandleQuery,
  type HandleTransfer,
  type ResolveOptions,
} from './servers/dns/index.js';
import { DOH_LIMITS, startDoh } from './servers/doh/index.js';
import { startDot } from './servers/dot/index.js';
import { startMetrics } from './servers/metrics/index.js';
import { readClientCa } from './servers/tls-servers.js';
import { REST_LIMITS, startRest, type RestOptions } from './servers/rest/index.js';
import type { StreamLimits } from './servers/transport.js';
import { AgentTokenIssuer, createLxdClient, Reflector, SnapshotStore, type Snapshot } from './streams/index.js';
import { CertificateRegistry } from './tls/registry.js';
import { version } from './version.js';

/** The transports lexa serves, by the name their ports and certificates go by. */
export type TransportName = 'dns' | 'dot' | 'doh' | 'doq' | 'rest' | 'metrics' | 'agent';
const TRANSPORTS: readonly TransportName[] = ['dns', 'dot', 'doh', 'doq', 'rest', 'metrics', 'agent'];
type TlsTransport = 'dot' | 'doh' | 'doq' | 'rest' | 'agent';
/**
 * How often, at most, the agent-token issuer looks through the running instances for one that needs a token: a
 * new instance gets its token within about this after LXD reports it, and the scan stays off the hot path.
 */
const ISSUE_SCAN_MS = 1_000;

/** A running lexa: the LXD watcher, its store, the one DNS handler, and every enabled server. */
export interface Daemon {
  readonly store: SnapshotStore;
  readonly reflector: Reflector;
  /** The handler every DNS transport wraps (it follows reloads). */
  readonly handle: HandleQuery;
  /** Bound ports of each transport, in the order of its binds; empty when it is disabled. Follows reloads. */
  readonly ports: Readonly<Record<TransportName, readonly number[]>>;
  /** The certificates the TLS servers present, and their reload. */
  readonly certificates: CertificateRegistry;
  readonly metrics: Metrics;
  /** The configuration in force (the last one applied). */
  readonly config: Config;
  /** Re-reads configured certificate files and swaps them into the running listeners. */
  reloadCertificates(): Promise<void>;
  /**
   * Applies a new configuration (SIGHUP): log level, suffix, TTLs, certificates and listeners change at once;
   * what needs a restart is logged and keeps its running value. A handler the new values cannot build keeps the
   * running configuration entirely (throws). A listener that cannot bind is logged and left out.
   */
  reload(next: Config): Promise<ReloadPlan>;
  /** Stops: answers waiting REST requests, stops accepting, closes every connection and the LXD watch. */
  close(): Promise<void>;
}

/**
 * Wires config into running parts: the reflector starts filling the store at once; one handler answers every
 * DNS transport from the store (SERVFAIL / 503 until the first list). A server that cannot bind fails start-up;
 * everything already started is closed again.
 */
export async function startDaemon(config: Config, logger: Logger): Promise<Daemon> {
  logger.hide(config.secrets);
  for (const w of config.warnings) logger.warn('config', { problem: w });
  const endpoint = config.lxd.endpoint;
  if (endpoint.kind === 'https' && endpoint.serverCertificate === null)
    logger.warn('lxd server certificate is not verified; set server.lxd.server_certificate to pin it');

  let live = config;
  const store = new SnapshotStore();
  const snapshot = () => store.current;
  const listeners = new ListenerSet();
  // Kept across reloads (each configuration builds its own limiter): the metric only ever rises.
  const rateLimited: RateLimitCounts = { slipped: 0, dropped: 0 };
  const metrics = createMetrics({ version: version(), snapshot, listeners: () => listeners.counters(), rateLimited });
  const client = createLxdClient(endpoint);
  const reflector = new Reflector(client, store, {
    project: config.lxd.project,
    allProjects: config.lxd.allProjects,
    resyncIntervalMs: config.lxd.resyncIntervalMs,
    watchdogMs: config.lxd.watchdogMs,
    logger: logger.child({ component: 'lxd' }),
    observer: metrics.observer,
  });
  // With transfers configured, zone serials move only when a zone's content does (serial.ts), and the resolver's
  // SOA and the transfers share them; without, the SOA serial is the snapshot's time (no pass over the zone).
  // The zone's shape (suffix, TTLs, reverse zones) is then fixed at start: a reload that changes it is logged as
  // needing a restart, so queries and transfers never disagree. Who may transfer, the key, and whom to NOTIFY
  // follow reloads; only turning transfers on where they were off waits for a restart (the serials are wired in now).
  const xfr = config.dns.transfer;
  const transfersIn = (c: Config) => c.dns.transfer.allow.length > 0 || c.dns.transfer.notify.length > 0;
  const transfers = transfersIn(config);
  const resolverOf = (c: Config): ResolveOptions => ({ ...resolverOptions(c.lxd.suffix, c.dns), reverseZones: c.dns.reverseZones });
  const serials = new ZoneSerials(zoneOptions(resolverOf(config)));
  const withSerials = (r: ResolveOptions): ResolveOptions => (transfers ? { ...r, serial: (zone, n) => serials.serial(zone, n) } : r);
  const resolver = withSerials(resolverOf(config));
  const dnsLog = logger.child({ component: 'dns' });
  const buildHandler = (c: Config) =>
    withTsig(
      createHandler({ snapshot, resolver: c === config ? resolver : withSerials(resolverOf(c)), udpPayload: c.dns.ednsUdpSize, log: dnsLog }),
      c.dns.transfer.key === null ? [] : [c.dns.transfer.key],
    );
  let handler = buildHandler(config);
  const transferOf = (c: Config) => createTransfer({ snapshot, resolver, serials, allow: c.dns.transfer.allow, key: c.dns.transfer.key, log: dnsLog });
  let handleTransfer = transferOf(config);
  // One indirection, as for the handler: a reload swaps the allow list and key under the running listeners.
  const transfer: HandleTransfer = (query, peer) => handleTransfer(query, peer);
  const notifier = new Notifier(xfr.notify, xfr.key, logger.child({ component: 'dns/notify' }));
  const zones = (s: Snapshot) => [resolver.suffix, ...reverseZones(s, resolver)];
  const stopWatching = transfers ? watchZones(store.snapshot$, snapshot, zones, serials, notifier, dnsLog) : () => undefined;
  // One indirection so that a reload swaps the resolver options under every running transport.
  const handle: HandleQuery = (query, limit) => handler(query, limit);
  const certificates = new CertificateRegistry(logger, config.stateDirectory);
  /** Every loaded certificate's server is the set's listeners of that transport (attach needs it loaded). */
  const attachAll = () => {
    for (const name of ['dot', 'doh', 'doq', 'rest', 'agent'] as const) certificates.attach(name, { setTls: (m) => listeners.setTls(name, m) });
  };
  const shutdown = new AbortController();
  const reloaded = new Subject<void>();
  const app: RestOptions = {
    get suffix() {
      return live.lxd.suffix;
    },
    snapshot,
    updates: merge(store.snapshot$, reloaded),
    shutdown: shutdown.signal,
    metrics,
    watching: () => reflector.watching,
    log: logger.child({ component: 'rest' }),
  };
  const log = (component: TransportName) => logger.child({ component });
  /** The agent token in force: agent listeners read it at each hello, so a reload changes it without a reopen. */
  /** What agents' messages become: actions on the one store, checked against its current snapshot. */
  const registry = { snapshot, dispatch: (action: Parameters<typeof store.dispatch>[0]) => store.dispatch(action) };
  /** The agent trust settings in force: running agent listeners read them on every hello and state (SIGHUP). */
  const agentPolicy = (): AgentPolicy => ({ token: live.agent?.token ?? null, services: live.agent?.services ?? [] });
  const issuer = new AgentTokenIssuer({ client, log: logger.child({ component: 'agent' }), defaults: () => agentPolicy().services });
  // Looking through every running instance costs O(N); agents' states alone may publish a snapshot a second each.
  const stopIssuing = store.snapshot$.pipe(throttleTime(ISSUE_SCAN_MS, undefined, { leading: true, trailing: true })).subscribe((s) => {
    if (live.agent?.issueTokens === true && s.synced) issuer.observe(s);
  });
  /** The handler as one listener of `scheme`/`proto` on `bind` sees it: counted for metrics. */
  const counted = (scheme: DnsScheme, proto: DnsProto, host: string, port: number) => {
    const c = new ListenerCounters(scheme, proto, host, port);
    return { counters: c, handle: instrument(handle, c) };
  };

  /** The TLS transports a configuration enables, with their certificate settings. */
  const tlsOf = (c: Config) => {
    const { dns, rest } = c;
    const out: { name: TlsTransport; tls: Config['rest']['tls']; hostname: string; binds: Config['rest']['binds'] }[] = [];
    if (dns.dot.enabled) out.push({ name: 'dot', tls: dns.dot.tls, hostname: dns.dot.hostname, binds: dns.dot.binds });
    if (dns.doh.enabled) out.push({ name: 'doh', tls: dns.doh.tls, hostname: dns.doh.hostname, binds: dns.doh.binds });
    if (dns.quic.enabled) out.push({ name: 'doq', tls: dns.quic.tls, hostname: dns.quic.hostname, binds: dns.quic.binds });
    if (rest.enabled) out.push({ name: 'rest', tls: rest.tls, hostname: 'localhost', binds: rest.binds });
    if (c.agent !== null) out.push({ name: 'agent', tls: c.agent.tls, hostname: c.agent.hostname, binds: c.agent.binds });
    return out;
  };
  const material = (name: TlsTransport) => {
    const m = certificates.current.get(name);
    if (!m) throw new Error(`no certificate loaded for ${name}`);
    return m;
  };

  /** One spec per (transport, bind) that `c` enables. Certificates must be loaded first. */
  const specs = (c: Config): ListenerSpec[] => {
    const { dns } = c;
    const stream: StreamLimits = dns.limits;
    const out: ListenerSpec[] = [];
    // One limiter for every UDP bind of this configuration: a prefix's rate is the same whichever address it asks.
    const rateLimiter = dns.rateLimit === null ? null : new ResponseRateLimiter(dns.rateLimit, Date.now, rateLimited);
    if (dns.enabled)
      for (const bind of dns.binds)
        out.push({
          transport: 'dns',
          bind,
          open: async () => {
            const udp = counted('dns', 'udp', bind.host, bind.port);
            const tcp = counted('dns', 'tcp', bind.host, bind.port);
            const limits = { ...stream, maxReply: dns.maxUdpReply, rateLimiter };
            const l = await startPlainDns({ binds: [bind], handle: udp.handle, tcpHandle: tcp.handle, transfer, log: log('dns'), limits });
            return { listeners: l, counters: [udp.counters, tcp.counters] };
          },
        });
    if (dns.dot.enabled)
      for (const bind of dns.dot.binds)
        out.push({
          transport: 'dot',
          bind,
          open: async () => {
            const m = counted('tls', 'tcp', bind.host, bind.port);
            const l = await startDot({ binds: [bind], tls: material('dot'), handle: m.handle, transfer, log: log('dot'), limits: dns.dot.limits });
            return { listeners: l, counters: [m.counters] };
          },
        });
    if (dns.doh.enabled)
      for (const bind of dns.doh.binds)
        out.push({
          transport: 'doh',
          bind,
          open: async () => {
            const m = counted('https', 'tcp', bind.host, bind.port);
            const l = await startDoh({ binds: [bind], tls: material('doh'), handle: m.handle, log: log('doh'), limits: { ...DOH_LIMITS, ...dns.doh.limits } });
            return { listeners: l, counters: [m.counters] };
          },
        });
    if (dns.quic.enabled)
      for (const bind of dns.quic.binds)
        out.push({
          transport: 'doq',
          bind,
          open: async () => {
            const m = counted('quic', 'udp', bind.host, bind.port);
            // Loaded only when DoQ is on: @matrixai/quic's native part costs ~30 MB of memory once imported.
            const { startDoq } = await import('./servers/doq/index.js');
            const l = await startDoq({ binds: [bind], tls: material('doq'), handle: m.handle, log: log('doq'), limits: dns.quic.limits });
            return { listeners: l, counters: [m.counters] };
          },
        });
    if (c.rest.enabled) {
      // Mutual TLS is fixed when a server opens (requestCert): a new or changed client CA reopens the REST listeners,
      // which also ends connections made without a client certificate. Read here, so a bad file throws before a
      // reload has changed anything.
      const clientCa = c.rest.clientCa === null ? null : readClientCa(c.rest.clientCa);
      const variant = clientCa === null ? undefined : `client-ca:${createHash('sha256').update(clientCa.pem).digest('hex')}`;
      for (const bind of c.rest.binds)
        out.push({
          transport: 'rest',
          bind,
          ...(variant === undefined ? {} : { variant }),
          open: async () => ({ listeners: await startRest({ binds: [bind], tls: material('rest'), log: log('rest'), limits: { ...REST_LIMITS, ...c.rest.limits }, app, clientCa }) }),
        });
    }
    const agent = c.agent;
    if (agent !== null)
      for (const bind of agent.binds)
        out.push({
          transport: 'agent',
          bind,
          open: async () => ({
            listeners: await startAgentServer({
              binds: [bind],
              tls: material('agent'),
              log: log('agent'),
              limits: { ...agent.limits, helloTimeoutMs: agent.limits.firstRequestTimeoutMs, stateBurst: AGENT_LIMITS.stateBurst, stateRefillMs: AGENT_LIMITS.stateRefillMs },
              policy: agentPolicy,
              graceMs: agent.graceMs,
              registry,
            }),
          }),
        });
    if (c.metrics.enabled)
      for (const bind of c.metrics.binds)
        out.push({
          transport: 'metrics',
          bind,
          open: async () => ({
            listeners: await startMetrics({ binds: [bind], log: log('metrics'), render: () => metrics.render(), contentType: metrics.contentType }),
          }),
        });
    return out;
  };

  const close = async () => {
    // Waiting requests get their answer before the sockets go; a turn of the event loop lets it be written.
    shutdown.abort();
    stopWatching();
    stopIssuing.unsubscribe();
    notifier.close();
    await new Promise((resolve) => setImmediate(resolve));
    await listeners.close();
    await reflector.stop();
    await client.close();
  };

  try {
    for (const t of tlsOf(config)) await certificates.load(t.name, t.tls, t.hostname, t.binds);
    attachAll();
    await listeners.sync(specs(config));
  } catch (err) {
    await close();
    throw err;
  }

  /** Loads certificates whose settings changed, re-reads configured files, and hands each server its own. */
  const reloadTls = async (next: Config) => {
    const before = new Map(tlsOf(live).map((t) => [t.name, JSON.stringify([t.tls, t.hostname, t.binds])]));
    const unchanged: string[] = [];
    for (const t of tlsOf(next)) {
      if (before.get(t.name) === JSON.stringify([t.tls, t.hostname, t.binds])) {
        unchanged.push(t.name); // configured files are re-read below; a generated pair still fits and is kept
        continue;
      }
      try {
        const m = await certificates.load(t.name, t.tls, t.hostname, t.binds);
        if (before.has(t.name)) listeners.setTls(t.name, m);
      } catch (err) {
        logger.error('certificate reload failed; keeping the current one', { server: t.name, error: (err as Error).message });
      }
    }
    attachAll();
    await certificates.reload(unchanged);
  };

  let reloading = Promise.resolve();
  const reload = (next: Config): Promise<ReloadPlan> => {
    const run = reloading.then(async () => {
      const planned = planReload(live, next);
      // With transfers the zone's shape waits for a restart (see above): those keys are not applied.
      const frozen = ['server.lxd.suffix', 'server.dns.ttl', 'server.dns.negative_ttl'];
      let plan = transfers
        ? { live: planned.live.filter((k) => !frozen.includes(k)), restart: [...planned.restart, ...planned.live.filter((k) => frozen.includes(k))] }
        : planned;
      if (transfers) next = { ...next, lxd: { ...next.lxd, suffix: live.lxd.suffix }, dns: { ...next.dns, ttl: live.dns.ttl, negativeTtl: live.dns.negativeTtl } };
      // Transfers turned on where they were off at start: the serials are not wired in, so that waits too.
      const transferFrozen = !transfers && transfersIn(next);
      if (transferFrozen) plan = { live: plan.live.filter((k) => k !== 'server.dns.transfer'), restart: [...plan.restart, 'server.dns.transfer'] };
      next = { ...next, dns: { ...next.dns, reverseZones: live.dns.reverseZones, transfer: transferFrozen ? live.dns.transfer : next.dns.transfer } };
      const nextHandler = buildHandler(next); // throws on unusable resolver options: nothing applied yet
      const nextSpecs = specs(next); // throws on an unreadable client CA: still nothing applied
      logger.hide(next.secrets);
      for (const w of next.warnings) logger.warn('config', { problem: w });
      logger.setLevel(next.log.level);
      handler = nextHandler;
      handleTransfer = transferOf(next);
      if (JSON.stringify([live.dns.transfer.notify, live.dns.transfer.key]) !== JSON.stringify([next.dns.transfer.notify, next.dns.transfer.key]))
        notifier.configure(next.dns.transfer.notify, next.dns.transfer.key);
      await reloadTls(next);
      const defaultsBefore = agentPolicy().services;
      const changed = await listeners.sync(nextSpecs, (spec, err) =>
        logger.error('reload: listener failed to open', { transport: spec.transport, host: spec.bind.host, port: spec.bind.port, error: (err as Error).message }),
      );
      live = {
        ...next,
        // Applied only at a restart: keep reporting the running values.
        lxd: { ...next.lxd, endpoint: live.lxd.endpoint, project: live.lxd.project, allProjects: live.lxd.allProjects, resyncIntervalMs: live.lxd.resyncIntervalMs, watchdogMs: live.lxd.watchdogMs },
        log: { ...next.log, out: live.log.out },
        stateDirectory: live.stateDirectory,
      };
      // Agent states already in the store are re-checked against a changed default allow list at once.
      if (JSON.stringify(agentPolicy().services) !== JSON.stringify(defaultsBefore))
        store.dispatch({ type: 'agent-default', services: agentPolicy().services, at: Date.now() });
      reloaded.next();
      logger.info('configuration reloaded', { applied: plan.live, opened: changed.opened, closed: changed.closed, config: next.source });
      if (plan.restart.length > 0) logger.warn('configuration changes that need a restart were not applied', { keys: plan.restart });
      return plan;
    });
    reloading = run.then(() => undefined, () => undefined);
    return run;
  };

  reflector.start();
  logger.info('lexa started', { lxd: client.target, suffix: config.lxd.suffix, config: config.source ?? 'defaults' });
  // Read through to the running listeners, so ports stay true after a reload.
  const ports = Object.defineProperties(
    {},
    Object.fromEntries(TRANSPORTS.map((t) => [t, { enumerable: true, get: () => listeners.ports(t) }])),
  ) as Record<TransportName, readonly number[]>;
  return {
    store,
    reflector,
    handle,
    ports,
    certificates,
    metrics,
    get config() {
      return live;
    },
    reloadCertificates: () => certificates.reload(),
    reload,
    close,
  };
}
