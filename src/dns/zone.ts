import type { Answer } from 'dns-packet';
import { addressKey, endpointsOf, servesEndpoint, siteZone, type NetInterface, type View } from '../streams/index.js';
import { isAtOrBelow, reverseNameOf } from './reverse.js';
import { hostName, ifaceName, ptrTargets } from './resolve.js';

/**
 * The transferable content of one of lexa's zones in a snapshot: every RRset a secondary can hold, apart from the
 * SOA (serial.ts numbers the content; transfer.ts wraps it in the SOA). Pure; O(N) in the running instances, so
 * it runs once per snapshot and zone (serial.ts memoises it), never per query.
 *
 * The forward zone `<suffix>` holds: the apex NS; the name server's A/AAAA at `ns.<suffix>` when it has addresses
 * (then an instance named `ns` has no record there, as the resolver answers); `<host>` A/AAAA (primary interface); `<if>.if.<host>` A/AAAA
 * for every interface; `<svc>.service` and `<tag>.<svc>.service` A/AAAA (trusted addresses only);
 * `_<svc>._<proto>.service` and `_<svc>._<tag>.service` SRV for endpoints with a trusted address, with targets
 * `<if>.if.<host>` (which the zone holds). With named sites (docs/sites.md) one zone holds every site, each
 * name above with its site's label before the suffix (`web.rack1.lexa`). It does NOT hold what the
 * resolver synthesizes per query: the unqualified names of sites (a failover choice made per question), wildcard host patterns (`web-*`), the `interface` synonym of `if`, and the
 * `cluster.` names (a CNAME and addresses at one owner, which no zone may hold). A reverse zone holds its apex NS
 * and a PTR per trusted address of a running instance inside it, as the resolver answers.
 *
 * Records are lower-case, deduplicated and sorted (by owner, type, rdata), so equal content gives equal lists.
 */
export function zoneContent(snapshot: View, zone: string, opts: ContentOptions): Answer[] {
  const out = new Map<string, Answer>();
  const add = (rec: Answer): void => {
    out.set(recordKey(rec), rec);
  };
  const { suffix, ttl, mname, nameServerRecords } = opts;
  add({ name: zone, type: 'NS', class: 'IN', ttl, data: mname });
  if (zone === suffix) {
    for (const rec of nameServerRecords) add(rec);
    const nameServer = nameServerRecords[0]?.name;
    forward(snapshot, suffix, ttl, (rec) => {
      if (rec.name !== nameServer) add(rec);
    });
  }
  else reverse(snapshot, zone, suffix, ttl, add);
  return [...out.entries()].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)).map(([, r]) => r);
}

export interface ContentOptions {
  /** The forward zone (lower-case, no dots at the ends). */
  readonly suffix: string;
  readonly ttl: number;
  /** The NS target (the SOA MNAME). */
  readonly mname: string;
  /** The name server name's A/AAAA records (owned by it, lower-case); empty when it has no address of lexa's. */
  readonly nameServerRecords: readonly Answer[];
  /** The SOA fields other than the serial, as the resolver writes them. */
  readonly soa: { readonly mname: string; readonly rname: string; readonly refresh: number; readonly retry: number; readonly expire: number; readonly minimum: number };
}

function forward(snapshot: View, suffix: string, ttl: number, add: (r: Answer) => void): void {
  const address = (name: string, v4: readonly string[], v6: readonly string[]) => {
    for (const ip of v4) add({ name, type: 'A', class: 'IN', ttl, data: ip });
    for (const ip of v6) add({ name, type: 'AAAA', class: 'IN', ttl, data: ip });
  };
  // The instance's own names carry every address it reports; service names only those LXD vouches for, as the
  // resolver answers (NetInterface).
  const addresses = (name: string, iface: NetInterface) => address(name, iface.ipv4, iface.ipv6);
  const trustedAddresses = (name: string, iface: NetInterface) => address(name, iface.trustedIpv4, iface.trustedIpv6);
  for (const inst of snapshot.running()) {
    // Names that cannot be DNS names (an interface called `a..b`) are left out, as the resolver leaves them out
    // (resolve.ts `hostName`, `ifaceName`), so one odd interface never fails the transfer of the whole zone.
    const host = hostName(inst, suffix);
    const primary = inst.interfaces[0];
    if (primary !== undefined && host !== undefined) addresses(host, primary);
    for (const iface of inst.interfaces) {
      const name = ifaceName(inst, iface, suffix);
      if (name !== undefined) addresses(name, iface);
    }
    for (const ep of endpointsOf(inst)) {
      if (!servesEndpoint(ep)) continue;
      const s = ep.service;
      const svc = s.name.toLowerCase();
      const zone = siteZone(inst, suffix);
      const base = `${svc}.service.${zone}`;
      const target = ifaceName(inst, ep.iface, suffix);
      const srv = (name: string): void => {
        if (target !== undefined)
          add({ name, type: 'SRV', class: 'IN', ttl, data: { priority: s.priority, weight: 256 * s.weight - 1, port: s.port, target } });
      };
      trustedAddresses(base, ep.iface);
      srv(`_${svc}._${s.proto}.service.${zone}`);
      for (const tag of s.tags) {
        const t = tag.toLowerCase();
        trustedAddresses(`${t}.${base}`, ep.iface);
        srv(`_${svc}._${t}.service.${zone}`);
      }
    }
  }
}

/**
 * One PTR set per address in the zone. Each address is looked up once however many interfaces hold it: a lookup
 * per holder made the zone O(N²) when N instances copy one address (a tenant can do that to its own containers).
 */
function reverse(snapshot: View, zone: string, suffix: string, ttl: number, add: (r: Answer) => void): void {
  const done = new Set<string>();
  for (const inst of snapshot.running()) {
    for (const iface of inst.interfaces) {
      for (const ip of [...iface.trustedIpv4, ...iface.trustedIpv6]) {
        const key = addressKey(ip);
        if (key === undefined || done.has(key)) continue;
        done.add(key);
        const name = reverseNameOf(ip);
        if (name === undefined || name === zone || !isAtOrBelow(name, zone)) continue;
        for (const data of ptrTargets(snapshot, ip, suffix)) add({ name, type: 'PTR', class: 'IN', ttl, data });
      }
    }
  }
}

/** A record as one line of text: owner, type, TTL and rdata (what a zone's content hash and sort key are made of). */
export function recordKey(rec: Answer): string {
  return rec.type === 'OPT' ? '' : `${rec.name} ${rec.type} ${JSON.stringify(rec.data)} ${rec.ttl ?? 0}`;
}
