import type { Config } from '../config/index.js';
import type { Logger } from '../log/index.js';
import type { TransportContext, TransportName } from '../servers/descriptor.js';
import { TRANSPORTS } from '../servers/registry.js';
import type { CertificateRegistry } from '../tls/registry.js';
import type { ListenerSet, ListenerSpec } from './listener-set.js';

/** The daemon's transports driven from the registry: listener specs, certificates and ports, each one loop. */

/** One spec per (transport, bind) that `c` enables, in registry order. Certificates must be loaded first. */
export function listenerSpecs(c: Config, ctx: TransportContext): ListenerSpec[] {
  return TRANSPORTS.flatMap((t) => {
    if (!t.enabled(c)) return [];
    const prepared = t.prepare(c, ctx);
    return t.binds(c).map((bind) => ({
      transport: t.name,
      bind,
      ...(prepared.variant === undefined ? {} : { variant: prepared.variant }),
      open: () => prepared.open(bind),
    }));
  });
}

/** The TLS transports `c` enables, with their certificate settings and binds (a generated pair names them). */
function tlsOf(c: Config) {
  return TRANSPORTS.flatMap((t) => {
    const settings = t.tls && t.enabled(c) ? t.tls.settings(c) : null;
    return settings === null ? [] : [{ name: t.name, swapsLive: t.tls!.swapsLive, ...settings, binds: t.binds(c) }];
  });
}

/**
 * Hands each loaded certificate's reload to the set's listeners of its transport, where they can take a new one;
 * the others are registered without (the registry logs that their reload waits for a restart).
 */
function attach(certificates: CertificateRegistry, listeners: ListenerSet): void {
  for (const t of TRANSPORTS)
    if (t.tls !== null) certificates.attach(t.name, t.tls.swapsLive ? { setTls: (m) => listeners.setTls(t.name, m) } : undefined);
}

/** Loads the certificate of every TLS transport `c` enables; throws on unusable files (start-up fails). */
export async function loadCertificates(c: Config, certificates: CertificateRegistry, listeners: ListenerSet): Promise<void> {
  for (const t of tlsOf(c)) await certificates.load(t.name, t.tls, t.hostname, t.binds);
  attach(certificates, listeners);
}

/**
 * Loads certificates whose settings changed from `running` to `next`, re-reads configured files of the others, and
 * hands each running server that can take one its own. A certificate that fails to load keeps the current one.
 */
export async function reloadCertificates(running: Config, next: Config, certificates: CertificateRegistry, listeners: ListenerSet, logger: Logger): Promise<void> {
  const before = new Map(tlsOf(running).map((t) => [t.name, JSON.stringify([t.tls, t.hostname, t.binds])]));
  const unchanged: string[] = [];
  for (const t of tlsOf(next)) {
    if (before.get(t.name) === JSON.stringify([t.tls, t.hostname, t.binds])) {
      unchanged.push(t.name); // configured files are re-read below; a generated pair still fits and is kept
      continue;
    }
    try {
      const m = await certificates.load(t.name, t.tls, t.hostname, t.binds);
      if (before.has(t.name) && t.swapsLive) listeners.setTls(t.name, m);
    } catch (err) {
      logger.error('certificate reload failed; keeping the current one', { server: t.name, error: (err as Error).message });
    }
  }
  attach(certificates, listeners);
  await certificates.reload(unchanged);
}

/** Bound ports of each transport, read through to the running listeners so they stay true after a reload. */
export function portsOf(listeners: ListenerSet): Readonly<Record<TransportName, readonly number[]>> {
  return Object.defineProperties(
    {},
    Object.fromEntries(TRANSPORTS.map((t) => [t.name, { enumerable: true, get: () => listeners.ports(t.name) }])),
  ) as Record<TransportName, readonly number[]>;
}
