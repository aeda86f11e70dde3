import { dirname } from 'node:path';
import type { Config } from '../config/index.js';
import type { SiteConfig } from '../config/types.js';
import type { Logger } from '../log/index.js';
import type { Metrics } from '../metrics/index.js';
import { createLxdClient, FederatedStore, Reflector, SnapshotStore, type LxdClient, type ViewStore } from '../streams/index.js';

/** One site at run time: its LXD client, its own store and the reflector that keeps it equal to LXD. */
export interface Site {
  readonly name: string | null;
  readonly client: LxdClient;
  readonly store: SnapshotStore;
  readonly reflector: Reflector;
}

/** Every site's watch (not started yet), and the store readers see. */
export interface Sites {
  readonly sites: readonly Site[];
  /** One unnamed site is served from its own store, exactly as before sites existed; named sites are combined. */
  readonly store: ViewStore;
  start(): void;
  stop(): Promise<void>;
  /** Where each site's LXD is, for the start-up log line. */
  readonly targets: string | string[];
}

/** The sites of `config`, in block order (the order unqualified names fail over in, docs/sites.md). */
export function watchSites(config: Config, logger: Logger, observer: Metrics['observer']): Sites {
  for (const site of config.sites)
    if (site.endpoint.kind === 'https' && site.endpoint.serverCertificate === null)
      logger.warn('lxd server certificate is not verified; set server.lxd.server_certificate to pin it', site.name === null ? {} : { site: site.name });
  const sites = config.sites.map((site) => watchSite(site, logger, observer));
  const store: ViewStore = config.sites[0]!.name === null ? sites[0]!.store : new FederatedStore(sites.map((s) => ({ name: s.name!, store: s.store })));
  return {
    sites,
    store,
    start: () => {
      for (const s of sites) s.reflector.start();
    },
    stop: async () => {
      await Promise.all(sites.map((s) => s.reflector.stop()));
      await Promise.all(sites.map((s) => s.client.close()));
    },
    targets: sites.length === 1 ? sites[0]!.client.target : sites.map((s) => `${s.name}=${s.client.target}`),
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
