import type { Config } from './config/index.js';
import type { Logger } from './log/index.js';
import {
  createHandler,
  createTransfer,
  DEFAULT_MAX_UDP_PAYLOAD,
  Notifier,
  watchZones,
  resolverOptions,
  reverseZones,
  startPlainDns,
  withTsig,
  ZoneSerials,
  zoneOptions,
  type HandleQuery,
  type ResolveOptions,
} from './servers/dns/index.js';
import { DOH_LIMITS, startDoh } from './servers/doh/index.js';
import { DOQ_LIMITS, startDoq } from './servers/doq/index.js';
import { startDot } from './servers/dot/index.js';
import { REST_LIMITS, startRest } from './servers/rest/index.js';
import type { Listeners, StreamLimits, TlsListeners } from './servers/transport.js';
import { createLxdClient, Reflector, SnapshotStore, type Snapshot } from './streams/index.js';
import { CertificateRegistry } from './tls/registry.js';

/** The transports lexa serves, by the name their ports and certificates go by. */
export type TransportName = 'dns' | 'dot' | 'doh' | 'doq' | 'rest';

/** A running lexa: the LXD watcher, its store, the one DNS handler, and every enabled server. */
export interface Daemon {
  readonly store: SnapshotStore;
  readonly reflector: Reflector;
  /** The handler every DNS transport wraps. */
  readonly handle: HandleQuery;
  /** Bound ports of each transport, in the order of its binds; empty when it is disabled. */
  readonly ports: Readonly<Record<TransportName, readonly number[]>>;
  /** The certificates the TLS servers present, and their reload. */
  readonly certificates: CertificateRegistry;
  /** Re-reads configured certificate files and swaps them into the running listeners (SIGHUP). */
  reloadCertificates(): Promise<void>;
  close(): Promise<void>;
}

/**
 * Wires config into running parts: the reflector starts filling the store at once; one handler answers every
 * DNS transport from the store (SERVFAIL / 503 until the first list). A server that cannot bind fails start-up;
 * everything already started is closed again.
 */
export async function startDaemon(config: Config, logger: Logger): Promise<Daemon> {
  for (const w of config.warnings) logger.warn('config', { problem: w });
  const endpoint = config.lxd.endpoint;
  if (endpoint.kind === 'https' && endpoint.serverCertificate === null)
    logger.warn('lxd server certificate is not verified; set server.lxd.server_certificate to pin it');

  const store = new SnapshotStore();
  const client = createLxdClient(endpoint);
  const reflector = new Reflector(client, store, {
    project: config.lxd.project,
    allProjects: config.lxd.allProjects,
    resyncIntervalMs: config.lxd.resyncIntervalMs,
    watchdogMs: config.lxd.watchdogMs,
    logger: logger.child({ component: 'lxd' }),
  });
  const snapshot = () => store.current;
  // With transfers configured, zone serials move only when a zone's content does (serial.ts), and the resolver's
  // SOA and the transfers share them; without, the SOA serial is the snapshot's time (no pass over the zone).
  const xfr = config.dns.transfer;
  const transfers = xfr.allow.length > 0 || xfr.notify.length > 0;
  const base = { ...resolverOptions(config.lxd.suffix, config.dns), reverseZones: config.dns.reverseZones };
  const serials = new ZoneSerials(zoneOptions(base));
  const resolver: ResolveOptions = transfers ? { ...base, serial: (zone, s) => serials.serial(zone, s) } : base;
  const handle = withTsig(
    createHandler({ snapshot, resolver, udpPayload: DEFAULT_MAX_UDP_PAYLOAD, log: logger.child({ component: 'dns' }) }),
    xfr.key === null ? [] : [xfr.key],
  );
  const transfer = createTransfer({ snapshot, resolver, serials, allow: xfr.allow, key: xfr.key, log: logger.child({ component: 'dns' }) });
  const notifier = new Notifier(xfr.notify, xfr.key, logger.child({ component: 'dns/notify' }));
  const zones = (s: Snapshot) => [resolver.suffix, ...reverseZones(s, resolver)];
  const stopWatching = transfers
    ? watchZones(store.snapshot$, snapshot, zones, serials, notifier, logger.child({ component: 'dns' }))
    : () => undefined;
  const certificates = new CertificateRegistry(logger);
  const { dns, rest } = config;
  const stream: StreamLimits = { idleTimeoutMs: dns.tcpIdleTimeoutMs, maxConnections: dns.maxTcpConnections };

  const ports: Record<TransportName, readonly number[]> = { dns: [], dot: [], doh: [], doq: [], rest: [] };
  const opened: Listeners[] = [];
  const close = async () => {
    stopWatching();
    notifier.close();
    await reflector.stop();
    await Promise.allSettled(opened.splice(0).reverse().map((l) => l.close()));
    await client.close();
  };
  /** Starts one transport and records its ports; `setTls` servers get their certificate swapped on reload. */
  const start = async (name: TransportName, listeners: Promise<Listeners | TlsListeners>) => {
    const l = await listeners;
    opened.push(l);
    ports[name] = l.ports;
    certificates.attach(name, 'setTls' in l ? l : undefined);
  };
  const log = (component: TransportName) => logger.child({ component });

  try {
    if (dns.enabled) {
      const limits = { ...stream, udpPayload: DEFAULT_MAX_UDP_PAYLOAD };
      await start('dns', startPlainDns({ binds: dns.binds, handle, transfer, log: log('dns'), limits }));
    }
    if (dns.dot.enabled) {
      const tls = await certificates.load('dot', dns.dot.tls, dns.dot.hostname, dns.dot.binds);
      await start('dot', startDot({ binds: dns.dot.binds, tls, handle, transfer, log: log('dot'), limits: stream }));
    }
    if (dns.doh.enabled) {
      const tls = await certificates.load('doh', dns.doh.tls, dns.doh.hostname, dns.doh.binds);
      await start('doh', startDoh({ binds: dns.doh.binds, tls, handle, log: log('doh'), limits: DOH_LIMITS }));
    }
    if (dns.quic.enabled) {
      const tls = await certificates.load('doq', dns.quic.tls, dns.quic.hostname, dns.quic.binds);
      await start('doq', startDoq({ binds: dns.quic.binds, tls, handle, log: log('doq'), limits: DOQ_LIMITS }));
    }
    if (rest.enabled) {
      const tls = await certificates.load('rest', rest.tls, 'localhost', rest.binds);
      const app = { suffix: config.lxd.suffix, snapshot };
      await start('rest', startRest({ binds: rest.binds, tls, log: log('rest'), limits: REST_LIMITS, app }));
    }
  } catch (err) {
    await close();
    throw err;
  }

  reflector.start();
  logger.info('lexa started', { lxd: client.target, suffix: config.lxd.suffix, config: config.source ?? 'defaults' });
  return { store, reflector, handle, ports, certificates, reloadCertificates: () => certificates.reload(), close };
}
