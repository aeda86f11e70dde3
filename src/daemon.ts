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
import { AgentTokenIssuer, createLxdClient, Reflector, SnapshotStore } from './streams/index.js';
import { CertificateRegistry } from './tls/registry.js';
import { version } from './version.js';

export type { TransportName } from './servers/descriptor.js';
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
 * DNS transport from the store (SERVFAIL / 503 until the first list); every transport of the registry
 * (servers/registry.ts) the configuration enables listens. A server that cannot bind fails start-up; everything
 * already started is closed again.
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
  const { project, allProjects, resyncIntervalMs, watchdogMs, watchLeases } = config.lxd;
  // LXD's directory holds its socket and its bridges' lease files (networks/<bridge>/dnsmasq.leases).
  const leaseDirectory = endpoint.kind === 'unix' && watchLeases ? dirname(endpoint.socket) : undefined;
  const reflector = new Reflector(client, store, { project, allProjects, resyncIntervalMs, watchdogMs, leaseDirectory, logger: logger.child({ component: 'lxd' }), observer: metrics.observer });
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
  const issuer = new AgentTokenIssuer({ client, log: logger.child({ component: 'agent' }), defaults: () => agentPolicy().services });
  // Looking through every running instance costs O(N); agents' states alone may publish a snapshot a second each.
  const stopIssuing = store.snapshot$.pipe(throttleTime(ISSUE_SCAN_MS, undefined, { leading: true, trailing: true })).subscribe((s) => {
    if (live.agent?.issueTokens === true && s.synced) issuer.observe(s);
  });

  const close = async () => {
    // Waiting requests get their answer before the sockets go; a turn of the event loop lets it be written.
    shutdown.abort();
    stopIssuing.unsubscribe();
    agents.stop();
    answering.close();
    await new Promise((resolve) => setImmediate(resolve));
    await listeners.close();
    await reflector.stop();
    await client.close();
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
  reflector.start();
  logger.info('lexa started', { lxd: client.target, suffix: config.lxd.suffix, config: config.source ?? 'defaults' });
  return {
    store,
    reflector,
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
