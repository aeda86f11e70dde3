import { dirname } from 'node:path';
import { merge, Subject, throttleTime } from 'rxjs';
import type { Config } from './config/index.js';
import type { Logger } from './log/index.js';
import { createMetrics, instrument, ListenerCounters, type Metrics } from './metrics/index.js';
import { startAnswering } from './runtime/answering.js';
import { ListenerSet } from './runtime/listener-set.js';
import { decideReload, type ReloadPlan } from './runtime/reload-plan.js';
import { listenerSpecs, loadCertificates, portsOf, reloadCertificates } from './runtime/transports.js';
import { AgentIngest, type AgentPolicy } from './streams/agents/ingest.js';
import type { HandleQuery } from './dns/index.js';
import type { RateLimitCounts } from './servers/dns/index.js';
import type { TransportContext, TransportName } from './servers/descriptor.js';
import { AgentTokenIssuer, aliasConflicts, Checker, createLxdClient, FederatedStore, Reflector, SnapshotStore, type LxdClient, type ViewStore } from './streams/index.js';
import type { SiteConfig } from './config/types.js';
import { CertificateRegistry } from './tls/registry.js';
import { version } from './version.js';

export type { TransportName } from './servers/descriptor.js';
/**
 * How often, at most, the agent-token issuer looks through the running instances for one that needs a token: a
 * new instance gets its token within about this after LXD reports it, and the scan stays off the hot path.
 */
const ISSUE_SCAN_MS = 1_000;
/**
 * How often, at most, the server-side checker re-reads the running instances for checks to start or stop: a new
 * service's check is scheduled within about this, and a burst of snapshots (a list, many check results) costs one
 * O(N) pass.
 */
const CHECK_SCAN_MS = 250;

/** A running lexa: the LXD watcher, its store, the one DNS handler, and every enabled server. */
export interface Daemon {
  /** What every reader sees: the one site's store, or the sites combined (streams/state/federation.ts). */
  readonly store: ViewStore;
  /** The first site's reflector. */
  readonly reflector: Reflector;
  /** Every site's watch, in block order. */
  readonly sites: readonly Site[];
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

/** One site at run time: its LXD client, its own store and the reflector that keeps it equal to LXD. */
export interface Site {
  readonly name: string | null;
  readonly client: LxdClient;
  readonly store: SnapshotStore;
  readonly reflector: Reflector;
}

/**
 * Wires config into running parts: the reflector starts filling the store at once; one handler answers every
 * DNS transport from the store (SERVFAIL / 503 until the first list); every transport of the registry
 * (servers/registry.ts) the configuration enables listens. A server that cannot bind fails start-up; everything
 * already started is closed again.
 */
export async function startDaemon(config: Config, logger: Logger): Promise<Daemon> {
  logger.hide(config.secrets);
  for (const w of config.warnings) logger.warn('config', { problem: w });
  for (const site of config.sites)
    if (site.endpoint.kind === 'https' && site.endpoint.serverCertificate === null)
      logger.warn('lxd server certificate is not verified; set server.lxd.server_certificate to pin it', site.name === null ? {} : { site: site.name });

  let live = config;
  const snapshot = () => store.current;
  const listeners = new ListenerSet();
  // Kept across reloads (each configuration builds its own limiter): the metric only ever rises.
  const rateLimited: RateLimitCounts = { slipped: 0, dropped: 0 };
  let checker: Checker | undefined;
  const metrics = createMetrics({ version: version(), snapshot, listeners: () => listeners.counters(), rateLimited, checks: () => checker!.counters });
  const sites = config.sites.map((site) => watchSite(site, logger, metrics.observer));
  const reflector = sites[0]!.reflector;
  // One unnamed site is served from its own store, exactly as before sites existed; named sites are combined.
  const store: ViewStore = config.sites[0]!.name === null ? sites[0]!.store : new FederatedStore(sites.map((s) => ({ name: s.name!, store: s.store })));
  // Server-side checks run from this host for every site; each result goes to its instance's site (FederatedStore).
  checker = new Checker({ dispatch: (action) => store.dispatch(action), log: logger.child({ component: 'checks' }) });
  const answering = startAnswering(config, store, logger);
  const certificates = new CertificateRegistry(logger, config.stateDirectory);
  const shutdown = new AbortController();
  const reloaded = new Subject<void>();
  const agentPolicy = (): AgentPolicy => ({ token: live.agent?.token ?? null, services: live.agent?.services ?? [] });
  // What agents' messages become: actions on the one store, checked against its current snapshot.
  const agents = new AgentIngest({
    store: { snapshot, dispatch: (action) => store.dispatch(action) },
    policy: agentPolicy,
    graceMs: () => live.agent?.graceMs ?? 0,
    log: logger.child({ component: 'agent' }),
  });
  const context: TransportContext = {
    served: (scheme, proto, bind) => {
      const counters = new ListenerCounters(scheme, proto, bind.host, bind.port);
      return { handle: instrument(answering.handle, counters), counters: [counters] };
    },
    transfer: answering.transfer,
    log: (name) => logger.child({ component: name }),
    material: (name) => {
      const m = certificates.current.get(name);
      if (!m) throw new Error(`no certificate loaded for ${name}`);
      return m;
    },
    rateLimited,
    app: {
      get suffix() {
        return live.lxd.suffix;
      },
      get datacenter() {
        return live.consul.datacenter;
      },
      snapshot,
      updates: merge(store.snapshot$, reloaded),
      shutdown: shutdown.signal,
      metrics,
      watching: () => reflector.watching,
      log: logger.child({ component: 'rest' }),
    },
    agents,
    metrics,
  };
  // Each site's tokens are written through its own client. Looking through every running instance costs O(N);
  // agents' states alone may publish a snapshot a second each.
  const issuing = sites.map((site) => {
    const issuer = new AgentTokenIssuer({ client: site.client, log: logger.child({ component: 'agent' }), defaults: () => agentPolicy().services });
    return site.store.snapshot$.pipe(throttleTime(ISSUE_SCAN_MS, undefined, { leading: true, trailing: true })).subscribe((s) => {
      if (live.agent?.issueTokens === true && s.synced) issuer.observe(s);
    });
  });

  // Alias conflicts are logged once each when they appear (a scan of O(N), at most once a second).
  let conflicts = new Set<string>();
  const stopConflicts = store.snapshot$.pipe(throttleTime(ISSUE_SCAN_MS, undefined, { leading: true, trailing: true })).subscribe((s) => {
    const now = new Set(aliasConflicts(s));
    for (const c of now) if (!conflicts.has(c)) logger.warn('alias conflict', { problem: c });
    conflicts = now;
  });

  const stopChecking = store.snapshot$
    .pipe(throttleTime(CHECK_SCAN_MS, undefined, { leading: true, trailing: true }))
    .subscribe((s) => checker.observe(s));

  const close = async () => {
    // Waiting requests get their answer before the sockets go; a turn of the event loop lets it be written.
    shutdown.abort();
    for (const s of issuing) s.unsubscribe();
    stopConflicts.unsubscribe();
    agents.stop();
    stopChecking.unsubscribe();
    checker.stop();
    answering.close();
    await new Promise((resolve) => setImmediate(resolve));
    await listeners.close();
    await Promise.all(sites.map((s) => s.reflector.stop()));
    await Promise.all(sites.map((s) => s.client.close()));
  };

  try {
    await loadCertificates(config, certificates, listeners);
    await listeners.sync(listenerSpecs(config, context));
  } catch (err) {
    await close();
    throw err;
  }

  let reloading = Promise.resolve();
  const reload = (next: Config): Promise<ReloadPlan> => {
    const run = reloading.then(async () => {
      const { plan, apply } = decideReload(live, next, config);
      const commit = answering.prepare(live, apply); // throws on unusable resolver options: nothing applied yet
      const specs = listenerSpecs(apply, context); // throws on an unreadable client CA: still nothing applied
      logger.hide(apply.secrets);
      for (const w of apply.warnings) logger.warn('config', { problem: w });
      logger.setLevel(apply.log.level);
      commit();
      await reloadCertificates(live, apply, certificates, listeners, logger);
      const defaultsBefore = agentPolicy().services;
      const changed = await listeners.sync(specs, (spec, err) =>
        logger.error('reload: listener failed to open', { transport: spec.transport, host: spec.bind.host, port: spec.bind.port, error: (err as Error).message }),
      );
      live = apply;
      // Agent states already in the store are re-checked against a changed default allow list at once.
      if (JSON.stringify(agentPolicy().services) !== JSON.stringify(defaultsBefore))
        store.dispatch({ type: 'agent-default', services: agentPolicy().services, at: Date.now() });
      reloaded.next();
      logger.info('configuration reloaded', { applied: plan.live, opened: changed.opened, closed: changed.closed, config: apply.source });
      if (plan.restart.length > 0) logger.warn('configuration changes that need a restart were not applied', { keys: plan.restart });
      return plan;
    });
    reloading = run.then(() => undefined, () => undefined);
    return run;
  };
  for (const s of sites) s.reflector.start();
  logger.info('lexa started', {
    lxd: sites.length === 1 ? sites[0]!.client.target : sites.map((s) => `${s.name}=${s.client.target}`),
    suffix: config.lxd.suffix,
    config: config.source ?? 'defaults',
  });
  return {
    store,
    reflector,
    sites,
    handle: answering.handle,
    ports: portsOf(listeners),
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

/** A site's client, store and reflector (started by the caller). A named site's log lines and instances carry its name. */
function watchSite(site: SiteConfig, logger: Logger, observer: Metrics['observer']): Site {
  const client = createLxdClient(site.endpoint);
  const store = new SnapshotStore();
  const { project, allProjects, resyncIntervalMs, watchdogMs, watchLeases } = site;
  // LXD's directory holds its socket and its bridges' lease files (networks/<bridge>/dnsmasq.leases).
  const leaseDirectory = site.endpoint.kind === 'unix' && watchLeases ? dirname(site.endpoint.socket) : undefined;
  const log = logger.child(site.name === null ? { component: 'lxd' } : { component: 'lxd', site: site.name });
  const reflector = new Reflector(client, store, {
    ...(site.name === null ? {} : { site: site.name }),
    project,
    allProjects,
    resyncIntervalMs,
    watchdogMs,
    leaseDirectory,
    logger: log,
    observer,
  });
  return { name: site.name, client, store, reflector };
}
