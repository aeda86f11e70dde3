import type { Config, EncryptedDnsConfig, TlsFiles } from './config/types.js';
import type { Logger } from './log/index.js';
import { resolverOptions, startDns, type DnsServers, type HandleQuery } from './servers/dns/index.js';
import { startDoh } from './servers/doh/index.js';
import { createDoqServer } from './servers/doq/index.js';
import { startDot } from './servers/dot/index.js';
import { startRest, type RestServer } from './servers/rest/index.js';
import { createLxdClient, Reflector, SnapshotStore } from './streams/index.js';
import { tlsMaterial, type TlsMaterial } from './tls/index.js';

/** A running lexa: the LXD watcher, its store, and every enabled server. */
export interface Daemon {
  readonly store: SnapshotStore;
  readonly reflector: Reflector;
  readonly rest: RestServer | undefined;
  readonly dns: DnsServers | undefined;
  /** Bound ports of the encrypted transports that are enabled (in the order of their binds). */
  readonly ports: { readonly dot: readonly number[]; readonly doh: readonly number[]; readonly doq: readonly number[] };
  /** The certificate each TLS server presents (generated or from files), by server name. */
  readonly certificates: ReadonlyMap<string, TlsMaterial>;
  /** Re-reads configured certificate files and swaps them into the running listeners (SIGHUP). */
  reloadCertificates(): Promise<void>;
  close(): Promise<void>;
}

/** A listener whose certificate can be swapped for new connections without closing it. */
interface Swappable {
  readonly name: string;
  readonly files: TlsFiles;
  setTls?(m: TlsMaterial): void;
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
  const certificates = new Map<string, TlsMaterial>();
  const swappable: Swappable[] = [];
  /** The certificate for one server: its files, or a generated one whose fingerprint is logged. */
  const certificate = async (name: string, files: TlsFiles, hostname: string, binds: EncryptedDnsConfig['binds']) => {
    const m = await tlsMaterial(files, hostname, binds);
    certificates.set(name, m);
    if (m.generated) logger.info('generated a self-signed certificate', { server: name, hostname, sha256: m.fingerprint });
    else logger.info('loaded certificate', { server: name, file: files.certificate, sha256: m.fingerprint });
    return m;
  };

  const snapshot = () => store.current;
  const ports = { dot: [] as number[], doh: [] as number[], doq: [] as number[] };
  let rest: RestServer | undefined;
  let dns: DnsServers | undefined;
  try {
    if (config.dns.enabled || config.dns.dot.enabled || config.dns.doh.enabled || config.dns.quic.enabled) {
      const resolver = resolverOptions(config.lxd.suffix, config.dns);
      const dnsLog = logger.child({ component: 'dns' });
      // With plain DNS disabled, the encrypted transports still need the handler: bind it nowhere.
      dns = await startDns(config.dns.enabled ? config.dns.binds : [], config.dns, resolver, snapshot, dnsLog);
      closers.push(() => dns!.close());
      const handle: HandleQuery = dns.handle;
      const { dot, doh, quic } = config.dns;
      if (dot.enabled) {
        const tls = await certificate('dot', dot.tls, dot.hostname, dot.binds);
        const server = await startDot({
          binds: dot.binds,
          tls,
          handle,
          log: logger.child({ component: 'dot' }),
          idleTimeoutMs: config.dns.tcpIdleTimeoutMs,
          maxConnections: config.dns.maxTcpConnections,
        });
        closers.push(() => server.close());
        swappable.push({ name: 'dot', files: dot.tls, setTls: (m) => server.setTls(m) });
        ports.dot.push(...server.ports);
      }
      if (doh.enabled) {
        const tls = await certificate('doh', doh.tls, doh.hostname, doh.binds);
        const server = await startDoh({ binds: doh.binds, tls, handle, log: logger.child({ component: 'doh' }) });
        closers.push(() => server.close());
        swappable.push({ name: 'doh', files: doh.tls, setTls: (m) => server.setTls(m) });
        ports.doh.push(...server.ports);
      }
      if (quic.enabled) {
        const tls = await certificate('doq', quic.tls, quic.hostname, quic.binds);
        const doqLog = logger.child({ component: 'doq' });
        for (const b of quic.binds) {
          const server = createDoqServer({ host: b.host, port: b.port, cert: tls.cert, key: tls.key, handle: (q) => handle(q, 'tcp'), logger: doqLog });
          closers.push(() => server.close());
          ports.doq.push(await server.listen());
          doqLog.info('doq listening', { host: b.host, port: ports.doq.at(-1) });
        }
        // @matrixai/quic takes its TLS configuration once per server; DoQ keeps its certificate until restart.
        swappable.push({ name: 'doq', files: quic.tls });
      }
    }
    if (config.rest.enabled) {
      const tls = await certificate('rest', config.rest.tls, 'localhost', config.rest.binds);
      rest = await startRest(config.rest.binds, tls, { suffix: config.lxd.suffix, snapshot }, logger.child({ component: 'rest' }));
      closers.push(() => rest!.close());
      swappable.push({ name: 'rest', files: config.rest.tls, setTls: (m) => rest!.setTls(m) });
    }
  } catch (err) {
    await close();
    throw err;
  }

  const reloadCertificates = async () => {
    for (const s of swappable) {
      if (s.files.certificate === null) continue; // generated: kept for the process's life
      try {
        const m = await tlsMaterial(s.files, '', []);
        if (!s.setTls) {
          logger.warn('certificate reload needs a restart for this server', { server: s.name });
          continue;
        }
        s.setTls(m);
        certificates.set(s.name, m);
        logger.info('reloaded certificate', { server: s.name, file: s.files.certificate, sha256: m.fingerprint });
      } catch (err) {
        logger.error('certificate reload failed; keeping the current one', { server: s.name, error: (err as Error).message });
      }
    }
  };

  reflector.start();
  logger.info('lexa started', { lxd: client.target, suffix: config.lxd.suffix, config: config.source ?? 'defaults' });
  return { store, reflector, rest, dns, ports, certificates, reloadCertificates, close };
}
