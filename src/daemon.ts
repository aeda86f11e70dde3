import type { Config } from './config/types.js';
import type { Logger } from './log/index.js';
import { resolverOptions, startDns, type DnsServers } from './servers/dns/index.js';
import { startRest, type RestServer } from './servers/rest/index.js';
import { createLxdClient, Reflector, SnapshotStore } from './streams/index.js';
import { tlsMaterial } from './tls/index.js';

/** A running lexa: the LXD watcher, its store, and every enabled server. */
export interface Daemon {
  readonly store: SnapshotStore;
  readonly reflector: Reflector;
  readonly rest: RestServer | undefined;
  readonly dns: DnsServers | undefined;
  close(): Promise<void>;
}

/**
 * Wires config into running parts: the reflector starts filling the store at once, servers answer from the
 * store (SERVFAIL / 503 until the first list). A server that cannot bind fails start-up; everything already
 * started is closed again.
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

  const closers: (() => Promise<void>)[] = [];
  const close = async () => {
    await reflector.stop();
    await Promise.allSettled(closers.reverse().map((c) => c()));
    await client.close();
  };

  let rest: RestServer | undefined;
  let dns: DnsServers | undefined;
  const snapshot = () => store.current;
  try {
    if (config.dns.enabled) {
      const resolver = resolverOptions(config.lxd.suffix, config.dns);
      dns = await startDns(config.dns.binds, config.dns, resolver, snapshot, logger.child({ component: 'dns' }));
      closers.push(() => dns!.close());
    }
    if (config.rest.enabled) {
      const tls = await tlsMaterial(config.rest.tls, 'localhost', config.rest.binds);
      if (tls.generated) logger.info('rest uses a generated self-signed certificate', { sha256: tls.fingerprint });
      rest = await startRest(
        config.rest.binds,
        tls,
        { suffix: config.lxd.suffix, snapshot },
        logger.child({ component: 'rest' }),
      );
      closers.push(() => rest!.close());
    }
  } catch (err) {
    await close();
    throw err;
  }
  reflector.start();
  logger.info('lexa started', { lxd: client.target, suffix: config.lxd.suffix, config: config.source ?? 'defaults' });
  return { store, reflector, rest, dns, close };
}
