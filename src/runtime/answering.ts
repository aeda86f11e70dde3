import type { Config } from '../config/index.js';
import type { Logger } from '../log/index.js';
import { createHandler, resolverOptions, reverseZones, zoneOptions, type HandleQuery, type ResolveOptions } from '../dns/index.js';
import { createTransfer, Notifier, watchZones, withTsig, ZoneSerials, type HandleTransfer } from '../replication/index.js';
import type { View, ViewStore } from '../streams/index.js';
import { transfersIn } from './reload-plan.js';

/**
 * The one DNS handler and the zone transfers every transport serves, following reloads: `handle` and `transfer`
 * are fixed functions the listeners keep; `prepare` builds the next configuration's (throwing on unusable resolver
 * options before anything changed) and the returned `commit` swaps them in.
 */
export interface Answering {
  readonly handle: HandleQuery;
  readonly transfer: HandleTransfer;
  prepare(running: Config, next: Config): () => void;
  close(): void;
}

/**
 * With transfers configured, zone serials move only when a zone's content does (serial.ts), and the resolver's
 * SOA and the transfers share them; without, the SOA serial is the snapshot's time (no pass over the zone). The
 * zone's shape (suffix, TTLs, reverse zones) is then fixed at start (reload-plan.ts keeps it), so queries and
 * transfers never disagree. Who may transfer, the key, and whom to NOTIFY follow reloads.
 */
export function startAnswering(config: Config, store: ViewStore, logger: Logger): Answering {
  const snapshot = () => store.current;
  const transfers = transfersIn(config);
  const resolverOf = (c: Config): ResolveOptions => ({ ...resolverOptions(c.lxd.suffix, c.dns, c.sites), reverseZones: c.dns.reverseZones });
  const serials = new ZoneSerials(zoneOptions(resolverOf(config)));
  const withSerials = (r: ResolveOptions): ResolveOptions => (transfers ? { ...r, serial: (zone, n) => serials.serial(zone, n) } : r);
  const resolver = withSerials(resolverOf(config));
  const log = logger.child({ component: 'dns' });
  const handlerOf = (c: Config) =>
    withTsig(
      createHandler({ snapshot, resolver: c === config ? resolver : withSerials(resolverOf(c)), udpPayload: c.dns.ednsUdpSize, log }),
      c.dns.transfer.key === null ? [] : [c.dns.transfer.key],
    );
  const transferOf = (c: Config) => createTransfer({ snapshot, resolver, serials, allow: c.dns.transfer.allow, key: c.dns.transfer.key, log });
  let handler = handlerOf(config);
  let handleTransfer = transferOf(config);
  const xfr = config.dns.transfer;
  const notifier = new Notifier(xfr.notify, xfr.key, logger.child({ component: 'dns/notify' }));
  const zones = (s: View) => [resolver.suffix, ...reverseZones(s, resolver)];
  const stopWatching = transfers ? watchZones(store.snapshot$, snapshot, zones, serials, notifier, log) : () => undefined;
  return {
    // One indirection each, so that a reload swaps the resolver options, allow list and key under every listener.
    handle: (query, limit) => handler(query, limit),
    transfer: (query, peer) => handleTransfer(query, peer),
    prepare(running, next) {
      const nextHandler = handlerOf(next);
      return () => {
        handler = nextHandler;
        handleTransfer = transferOf(next);
        const { notify, key } = next.dns.transfer;
        if (JSON.stringify([running.dns.transfer.notify, running.dns.transfer.key]) !== JSON.stringify([notify, key])) notifier.configure(notify, key);
      };
    },
    close() {
      stopWatching();
      notifier.close();
    },
  };
}
