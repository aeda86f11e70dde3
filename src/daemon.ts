import { Subject } from 'rxjs';
import type { Config } from './config/index.js';
import type { DestinationLogger, Logger } from './log/index.js';
import { createMetrics, type Metrics } from './metrics/index.js';
import { startAnswering } from './runtime/answering.js';
import { transportContext } from './runtime/context.js';
import { ListenerSet } from './runtime/listener-set.js';
import { decideReload, type ReloadPlan } from './runtime/reload-plan.js';
import { watchSites, type Site } from './runtime/sites.js';
import { listenerSpecs, loadCertificates, portsOf, reloadCertificates } from './runtime/transports.js';
import { startWatchers } from './runtime/watchers.js';
import { AgentIngest, type AgentPolicy } from './streams/agents/ingest.js';
import type { HandleQuery } from './dns/index.js';
import type { RateLimitCounts } from './servers/dns/index.js';
import type { TransportName } from './servers/descriptor.js';
import { Checker, type Reflector, type ViewStore } from './streams/index.js';
import { CertificateRegistry } from './tls/registry.js';
import { version } from './version.js';

export type { TransportName } from './servers/descriptor.js';
export type { Site } from './runtime/sites.js';

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

/**
 * Wires config into running parts: the reflector starts filling the store at once; one handler answers every
 * DNS transport from the store (SERVFAIL / 503 until the first list); every transport of the registry
 * (servers/registry.ts) the configuration enables listens. A server that cannot bind fails start-up; everything
 * already started is closed again.
 */
export async function startDaemon(config: Config, logger: Logger): Promise<Daemon> {
  logger.hide(config.secrets);
  for (const w of config.warnings) logger.warn('config', { problem: w });

  let live = config;
  const listeners = new ListenerSet();
  // Kept across reloads (each configuration builds its own limiter): the metric only ever rises.
  const rateLimited: RateLimitCounts = { slipped: 0, dropped: 0 };
  // Server-side checks run from this host for every site; each result goes to its instance's site (FederatedStore).
  const checker = new Checker({ dispatch: (action) => store.dispatch(action), log: logger.child({ component: 'checks' }) });
  const snapshot = () => store.current;
  // A logger with a destination (log/index.ts createLogger) counts the lines it dropped; a test's logger does not.
  const destination = logger as Partial<DestinationLogger>;
  const logDropped = typeof destination.dropped === 'number' ? () => destination.dropped ?? 0 : undefined;
  const metrics = createMetrics({ version: version(), snapshot, listeners: () => listeners.counters(), rateLimited, checks: () => checker.counters, logDropped });
  const sites = watchSites(config, logger, metrics.observer);
  const { store } = sites;
  const reflector = sites.sites[0]!.reflector;
  const answering = startAnswering(config, store, logger);
  const certificates = new CertificateRegistry(logger, config.stateDirectory);
  const shutdown = new AbortController();
  const reloaded = new Subject<void>();
  const agentPolicy = (): AgentPolicy => ({ token: live.agent?.token ?? null, services: live.agent?.services ?? [] });
  // What agents' messages become: actions on the one store, checked against its current snapshot.
  const agents = new AgentIngest({ store: { snapshot, dispatch: (a) => store.dispatch(a) }, policy: agentPolicy, graceMs: () => live.agent?.graceMs ?? 0, log: logger.child({ component: 'agent' }) });
  const context = transportContext({ live: () => live, answering, certificates, store, reloaded, shutdown: shutdown.signal, watching: () => reflector.watching, agents, rateLimited, metrics, logger });
  const stopWatchers = startWatchers({
    sites: sites.sites,
    views: store.snapshot$,
    checker,
    issueTokens: () => live.agent?.issueTokens === true,
    defaultServices: () => agentPolicy().services,
    logger,
  });

  const close = async () => {
    // Waiting requests get their answer before the sockets go; a turn of the event loop lets it be written.
    shutdown.abort();
    stopWatchers();
    agents.stop();
    answering.close();
    await new Promise((resolve) => setImmediate(resolve));
    await listeners.close();
    await sites.stop();
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
  sites.start();
  logger.info('lexa started', { lxd: sites.targets, suffix: config.lxd.suffix, config: config.source ?? 'defaults' });
  return {
    store,
    reflector,
    sites: sites.sites,
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
