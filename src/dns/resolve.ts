import { isIPv4 } from 'node:net';
import type { Answer, SoaAnswer } from 'dns-packet';
import { findInterface, isDnsLabel, servesEndpoint, siteZone, type Instance, type NetInterface, type ServiceEndpoint, type View } from '../streams/index.js';
import { aliasKeys, parseName, parseProjectName, parseReverseName, type NameForm, type ReverseForm } from './name.js';
import { addressKey, reverseZoneOf } from '../net/addresses.js';

/**
 * The one resolver every DNS transport shares: View × Question → Outcome. Pure and synchronous: it reads the
 * snapshot it is given and nothing else (the only state is a memo of values derived from `opts` and the last SOA).
 * Owner names are the question name exactly as asked (HAProxy discards records whose owner differs); lookups are
 * case-insensitive.
 *
 * The zone, with suffix `lexa` (it may have several labels), by name form. How a query name becomes a form
 * (case, the trailing dot, the `interface` synonym, which form wins when they overlap, what is `none`) is the
 * grammar in name.ts; this is what each form answers:
 *
 *   apex         lexa                              SOA, NS (NS target = SOA MNAME, default `ns.<suffix>`), with
 *                                                  the name server's addresses as additionals when it has any
 *   name server  ns.lexa                           A/AAAA of `opts.nameServerAddresses` (server.dns.ns_addresses,
 *                                                  default the DNS binds' specific addresses): it wins over an
 *                                                  instance named `ns` and, like the apex, answers before the
 *                                                  snapshot has synced. Without addresses it is an ordinary host
 *                                                  name (an instance `ns`, or NXDOMAIN)
 *   host         <host>.lexa                       A/AAAA of the instance's primary interface (`interfaces[0]`)
 *   iface        <if>.if.<host>.lexa               A/AAAA of interface <if>
 *   service      [<tag>.]<svc>.service.lexa        A/AAAA of every endpoint of service <svc> (with tag <tag>), on
 *                                                  the endpoint's interface; SRV as `_<svc>._tcp` (every protocol)
 *                                                  and `_<svc>._<tag>` answer it (Consul's names answer SRV)
 *   srv          _<svc>._<proto|tag>.service.lexa  SRV; `_tcp`/`_udp` filter on the protocol, anything else on a
 *                                                  tag
 *   cluster      cluster.<instance>.lexa           the cluster member the instance runs on (see "Cluster names")
 *   member       <member>.cluster.<instance>.lexa  A/AAAA of <member>, if the instance runs on it
 *   none                                           NXDOMAIN
 *   outside                                        REFUSED
 *
 * Host and instance labels are patterns: `*` anywhere matches any run of characters; a bare `*` matches every
 * running instance (a full scan: O(N)). Every record of a wildcard answer is owned by the question name. Only
 * running instances exist in this zone.
 *
 * Existence (RFC 8020: never NXDOMAIN for a name that has names below it):
 *   - `service.lexa`, `_<x>.service.lexa` (serviceParent) and `if.<host>.lexa` / `interface.<host>.lexa`
 *     (ifaceParent, for a running host) are empty non-terminals: NODATA. `service.lexa` and `_<x>.service.lexa`
 *     are NODATA whether or not a matching service exists, so no lookup is O(N).
 *   - A name that exists but lacks the type asked (AAAA of an IPv4-only host, MX anywhere, A of a running
 *     instance with no address yet): NODATA. A name that matches nothing: NXDOMAIN. Both carry the zone SOA.
 *   - A running host named `service` answers at `service.lexa` as any host does; its sub-names are shadowed by
 *     the service forms.
 *
 * ANY (RFC 8482): one RRset, the first the name holds of: SOA (apex), CNAME (cluster name on one member),
 * SRV, A, AAAA. Zone transfers (AXFR/IXFR) are REFUSED here: they are served over TCP by transfer.ts, beside
 * this resolver; meta types (OPT, TKEY, TSIG, MAILA, MAILB) are NOTIMP.
 *
 * Reverse zones (`opts.reverseZones`, or one per subnet of LXD's managed networks): PTR for every address of a
 * running instance (see `reverse` below and the forms in name.ts); the apex has SOA and NS as the forward zone's.
 * Names outside the suffix, and classes other than IN: REFUSED (this also answers CoreDNS's `. NS` health probe
 * with a fast, well-formed, honest reply). Until the snapshot has synced, every in-zone name below the apex is
 * NOTREADY (SERVFAIL), never a false NXDOMAIN; the apex answers regardless since it does not depend on LXD.
 *
 * Cluster names:
 *   - `cluster.<x>` CNAME: `<member>.` (the member's name as a FQDN, as the original lexa did) when every match
 *     runs on the same member; NODATA when the matches span several members (RFC 1034 allows one CNAME per
 *     owner).
 *   - `cluster.<x>` A/AAAA: the addresses of the member(s) directly, owned by the question name, WITHOUT a
 *     CNAME: the CNAME target is outside this zone, so resolvers would discard an address under it (bailiwick)
 *     and HAProxy discards records not owned by the question name. So this name is a CNAME to CNAME queries and
 *     an address RRset to A/AAAA queries: a synthesized view, deliberately not an RFC 1034 zone.
 *   - Members' addresses come from `snapshot.members`; a member missing there or without addresses adds none.
 *   - Standalone LXD (`snapshot.clustered === false`): the server is the one member of its own cluster (the
 *     reflector records it in `snapshot.members`: named after LXD's `server_name`, with the addresses its API
 *     listens on), and every instance runs on it. So `cluster.<x>` CNAMEs to `<server_name>.` and answers A/AAAA
 *     with those addresses (NODATA when LXD's API listens on no specific address), and
 *     `<server_name>.cluster.<x>` answers the same addresses. Without that record (members empty), `cluster.<x>`
 *     is NODATA and `<member>.cluster.<x>` NXDOMAIN.
 *
 * SRV targets are `<if>.if.<instance>.<suffix>`; when two projects reuse an instance name, a target names both
 * (its additionals carry only the endpoint's own addresses).
 *
 * Answer order is shuffled on every query (`opts.random`, injectable for tests); SRV additionals follow the
 * order of the answers, so when a reply must shed additionals, the ones kept belong to the first answers.
 * Duplicate records (a service offered on tcp and udp, one address in two projects) are sent once.
 */
export function resolve(snapshot: View, q: Question, opts: ResolveOptions): Outcome {
  const zone = zoneOf(opts);
  if (q.class !== 'IN') return REFUSED;
  const form = parseName(q.name, zone.suffix, zone.sites);
  if (form.kind === 'outside') return reverse(snapshot, q, zone, parseReverseName(q.name, reverseZones(snapshot, opts)));
  if (q.type === 'AXFR' || q.type === 'IXFR') return REFUSED;
  if (META_TYPES.has(q.type)) return NOTIMP;
  if (form.kind === 'apex') return apex(snapshot, q, zone, zone.suffix);
  if (zone.nameServer !== undefined && isName(q.name, zone.nameServer.name)) return nameServer(snapshot, q, zone, zone.nameServer);
  if (!snapshot.synced) return NOTREADY;
  let site = form.site;
  if (site !== undefined && !snapshot.siteSynced(site)) return NOTREADY;
  let out = forward(snapshot, q, zone, form, site);
  // A name of no form may name an instance of a project (name.ts, "Projects"): asked only on the way to NXDOMAIN.
  if (out.kind === 'nxdomain' && form.kind === 'none') {
    // Only a running host can answer; asking first spares a random-subdomain flood the rest (bench dns.js).
    const scoped = parseProjectName(q.name, zone.suffix, zone.sites, (host) => snapshot.hasHost(host));
    if (scoped.kind !== 'none') {
      site = scoped.site;
      if (site !== undefined && !snapshot.siteSynced(site)) return NOTREADY;
      out = forward(snapshot, q, zone, scoped, site);
    }
  }
  // Still nothing: an alias may name it. An instance's own name always wins over an alias (it answered above).
  // Without any alias in the view a miss costs nothing more (a flood of random names stays as cheap as before).
  if (out.kind === 'nxdomain' && snapshot.hasAliases) {
    const keys = aliasKeys(q.name, zone.suffix, zone.sites);
    const target = aliasTarget(snapshot, keys);
    if (target !== undefined) {
      if (keys.site !== undefined && !snapshot.siteSynced(keys.site)) return NOTREADY;
      return aliasAnswer(snapshot, q, zone, target);
    }
  }
  // A name found in no site is surely absent only once every site has listed: never a false NXDOMAIN while a
  // site that may hold it has not (a one-site snapshot is complete once synced, so this never fires there).
  return out.kind === 'nxdomain' && site === undefined && !snapshot.complete ? NOTREADY : out;
}

/** A name below the suffix, once the view has synced: see the table above. */
function forward(snapshot: View, q: Question, zone: Zone, form: NameForm, site: string | undefined): Outcome {
  switch (form.kind) {
    case 'host':
      return hostAddresses(snapshot, q, zone, hostsIn(snapshot, form.pattern, site, form.project));
    case 'ifaceParent':
      return hostsIn(snapshot, form.host, site, form.project).length > 0 ? nodata(snapshot, zone) : nxdomain(snapshot, zone);
    case 'iface':
      return addresses(snapshot, q, zone, namedIfaces(hostsIn(snapshot, form.host, site, form.project), form.iface));
    case 'serviceParent': {
      const found = form.host === null ? NO_INSTANCES : hostsIn(snapshot, form.host, site, form.project);
      return found.length > 0 ? hostAddresses(snapshot, q, zone, found) : nodata(snapshot, zone);
    }
    case 'service': {
      const all = snapshot.serviceEndpoints(form.svc);
      const eps = inSite(form.tag === undefined ? all : withTag(all, form.tag), endpointSite, site);
      // Consul answers SRV at its service names too: the same records as `_<svc>._tcp` (every protocol, here)
      // and `_<svc>._<tag>`.
      if (q.type === 'SRV' || q.type === 'ANY') return srvRecords(snapshot, q, zone, eps);
      return addresses(snapshot, q, zone, ifacesOf(eps), TRUSTED);
    }
    case 'srv':
      return srv(snapshot, q, zone, form.svc, form.protoOrTag, site);
    case 'cluster':
      return cluster(snapshot, q, zone, hostsIn(snapshot, form.host, site, form.project));
    case 'member':
      return member(snapshot, q, zone, hostsIn(snapshot, form.host, site, form.project), form.member);
    case 'siteApex':
      return nodata(snapshot, zone);
    case 'none':
    case 'apex':
    case 'outside':
      return nxdomain(snapshot, zone);
  }
}

/**
 * The part of `found` a name answers with (docs/sites.md): the results of site `site` when the name names one;
 * otherwise those of the first site, in block order, that has any (a View returns results in block order, so
 * that is the first result's site): local first, the others as failover, as a Consul prepared query does. A
 * wildcard and an SRV set behave the same: all their matches from that one site, none from the others. With the
 * one unnamed site nothing carries a site and `found` is returned as it is.
 */
function inSite<T>(found: readonly T[], siteOf: (t: T) => string | undefined, site: string | undefined): readonly T[] {
  if (found.length === 0) return found;
  const want = site ?? siteOf(found[0]!);
  if (want === undefined) return found;
  let all = true;
  for (const t of found) if (siteOf(t) !== want) all = false;
  return all ? found : found.filter((t) => siteOf(t) === want);
}

const instanceSite = (inst: Instance): string | undefined => inst.site;

/**
 * The instance an alias names (docs/sites.md, "Aliases"): the absolute name's claimants, else the relative
 * name's in the site the name gives or, unqualified, the first site (block order) with a claimant. Two
 * instances claiming one alias in that site: the one with the smallest key (`<site>/<project>/<name>`) wins,
 * the same one on every query and every restart (the daemon logs the conflict once).
 */
function aliasTarget(snapshot: View, keys: { absolute: string; relative: string; site?: string }): Instance | undefined {
  let found = snapshot.aliased(keys.absolute);
  if (found.length === 0) found = inSite(snapshot.aliased(keys.relative), instanceSite, keys.site);
  let best: Instance | undefined;
  for (const inst of found) if (best === undefined || inst.key < best.key) best = inst;
  return best;
}

/**
 * An alias: a CNAME to the instance's own name and, for an address question, that name's A/AAAA (the owner the
 * CNAME names, as a resolver following the chain expects). An instance whose name cannot be a DNS name answers
 * none of its aliases (NXDOMAIN would have come anyway).
 */
function aliasAnswer(snapshot: View, q: Question, zone: Zone, inst: Instance): Outcome {
  const target = hostName(inst, zone.suffix);
  if (target === undefined) return nxdomain(snapshot, zone);
  const cname: Answer = { name: q.name, type: 'CNAME', class: 'IN', ttl: zone.ttl, data: target };
  const iface = inst.interfaces[0];
  if (iface === undefined || (q.type !== 'A' && q.type !== 'AAAA' && q.type !== 'ANY')) return answer([cname]);
  const records: Answer[] = [cname];
  if (q.type !== 'AAAA') for (const ip of iface.ipv4) records.push(addressRecord(target, 'A', zone.ttl, ip));
  if (q.type !== 'A') for (const ip of iface.ipv6) records.push(addressRecord(target, 'AAAA', zone.ttl, ip));
  return answer(records);
}
const endpointSite = (ep: ServiceEndpoint): string | undefined => ep.instance.site;

/** A question as the resolver sees it: dns-packet's type and class strings ('A', 'IN'). */
export interface Question {
  readonly name: string;
  readonly type: string;
  readonly class: string;
}

export interface SoaOptions {
  /** SOA MNAME, also the apex NS target. Default `ns.<suffix>`. */
  readonly mname?: string;
  /** SOA RNAME (the mailbox, first `.` standing for `@`). Default `hostmaster.<suffix>`. */
  readonly rname?: string;
  /**
   * Negative-caching TTL (RFC 2308), seconds: the SOA MINIMUM field and the SOA record's own TTL in NXDOMAIN and
   * NODATA replies. Keep it small: an instance that starts should resolve at once.
   */
  readonly minimum: number;
  /** Zone-transfer timers for secondaries (RFC 1035 §3.3.13). lexa NOTIFYs its secondaries of every change, so
   * `refresh` is only the fallback when a NOTIFY is lost. */
  readonly refresh?: number;
  readonly retry?: number;
  readonly expire?: number;
}

export interface ResolveOptions {
  /** Zone suffix, e.g. `lexa` or `lxd.example.com`; case-insensitive; leading/trailing dots ignored. */
  readonly suffix: string;
  /** TTL of every positive answer, seconds. The original lexa used 0: answers are live data. */
  readonly ttl: number;
  readonly soa: SoaOptions;
  /** Uniform random numbers in [0, 1) for answer order; Math.random unless a test injects its own. */
  readonly random?: () => number;
  /**
   * The reverse zones lexa answers PTR in (lower-case names such as `0.99.10.in-addr.arpa`, see reverse.ts).
   * Absent or null: derived from the snapshot's subnets (LXD's managed networks), one zone per subnet.
   */
  readonly reverseZones?: readonly string[] | null;
  /**
   * The SOA serial of zone `zone` (the suffix or a reverse zone) in `snapshot`. Absent: the snapshot's update time
   * in seconds. The daemon passes serial.ts's, which moves exactly when the zone's transferable content changes,
   * so the SOA every query sees agrees with what a zone transfer gives.
   */
  readonly serial?: (zone: string, snapshot: View) => number;
  /**
   * The named sites (docs/sites.md), in block order; absent or empty for the one unnamed site. A site's label
   * before the suffix scopes a name to it (name.ts).
   */
  readonly sites?: readonly string[];
  /**
   * The addresses of the name server name (the SOA MNAME, when it is inside the suffix): `ns.<suffix>` answers
   * them and the apex NS carries them as additionals. Absent or empty: the name has no address of lexa's.
   */
  readonly nameServerAddresses?: readonly string[];
}

/**
 * What the resolver decided; transports map each kind to a wire code in one place (wire.ts):
 * answer/nodata → NOERROR, nxdomain → NXDOMAIN, refused → REFUSED, notready → SERVFAIL, notimp → NOTIMP.
 * `answer`, `nodata` and `nxdomain` are authoritative (AA). Records must not be modified by callers: some are
 * shared between replies (the SOA).
 */
export type Outcome =
  | { readonly kind: 'answer'; readonly answers: readonly Answer[]; readonly additionals: readonly Answer[] }
  | { readonly kind: 'nodata'; readonly soa: SoaAnswer }
  | { readonly kind: 'nxdomain'; readonly soa: SoaAnswer }
  | { readonly kind: 'refused' }
  | { readonly kind: 'notready' }
  | { readonly kind: 'notimp' };

const REFUSED: Outcome = Object.freeze({ kind: 'refused' });
const NOTREADY: Outcome = Object.freeze({ kind: 'notready' });
const NOTIMP: Outcome = Object.freeze({ kind: 'notimp' });

/** Question types that never name data: OPT, TKEY, TSIG, MAILB, MAILA (dns-packet names the last two UNKNOWN_n). */
const META_TYPES: ReadonlySet<string> = new Set(['OPT', 'TKEY', 'TSIG', 'UNKNOWN_253', 'UNKNOWN_254']);

const DEFAULT_REFRESH = 3600;
const DEFAULT_RETRY = 600;
/**
 * How long a secondary keeps answering lexa's zone while it cannot reach lexa: a week, as lexa itself keeps
 * answering its last snapshot while LXD is away. One day made Zonemaster warn (ZONE05 wants at least 604800;
 * RFC 1912 §2.2 suggests 2–4 weeks); a secondary is refreshed by NOTIFY long before either matters.
 */
const DEFAULT_EXPIRE = 604800;

/** Everything derived from ResolveOptions once, plus the last SOA built (it changes only with the snapshot). */
interface Zone {
  /** Lower-cased suffix without dots at either end. */
  readonly suffix: string;
  readonly dotSuffix: string;
  readonly ttl: number;
  readonly minimum: number;
  readonly mname: string;
  readonly rname: string;
  readonly refresh: number;
  readonly retry: number;
  readonly expire: number;
  readonly random: () => number;
  readonly serial: ((zone: string, snapshot: View) => number) | undefined;
  /** The named sites, for the name grammar. */
  readonly sites: ReadonlySet<string>;
  /** The SOA built per zone name and snapshot (weakly held: no old snapshot is kept alive by it). */
  readonly soas: Map<string, WeakMap<View, SoaAnswer>>;
  /** The name server name and its address records, when it is inside the suffix and has addresses. */
  readonly nameServer: NameServer | undefined;
}

/** `ns.<suffix>` (the MNAME), lower-case, and its A then AAAA records owned by it: the apex NS's additionals. */
interface NameServer {
  readonly name: string;
  readonly glue: readonly Answer[];
}

/** Derived values per options object: pass the same ResolveOptions object to every call (resolved once). */
const zones = new WeakMap<ResolveOptions, Zone>();

/**
 * Validates options and returns the problems found (empty when usable). Transports call this once at start so
 * a bad configuration fails there rather than on every query.
 */
export function checkResolveOptions(opts: ResolveOptions): string[] {
  const problems: string[] = [];
  const suffix = trimDots(opts.suffix);
  if (suffix === '') problems.push('dns: suffix must not be empty');
  else if (!isPlainName(suffix)) problems.push(`dns: suffix "${opts.suffix}" is not a plain ASCII domain name`);
  for (const [what, name] of [
    ['soa mname', opts.soa.mname],
    ['soa rname', opts.soa.rname],
  ] as const) {
    if (name !== undefined && !isPlainName(trimDots(name))) {
      problems.push(`dns: ${what} "${name}" is not a plain ASCII domain name`);
    }
  }
  if (!isTtl(opts.ttl)) problems.push(`dns: ttl ${opts.ttl} is not an integer in 0..2147483647`);
  if (!isTtl(opts.soa.minimum)) problems.push(`dns: negative ttl ${opts.soa.minimum} is not an integer in 0..2147483647`);
  for (const ip of opts.nameServerAddresses ?? []) {
    if (addressKey(ip) === undefined) problems.push(`dns: name server address "${ip}" is not an IPv4 or IPv6 address`);
  }
  return problems;
}

function zoneOf(opts: ResolveOptions): Zone {
  let zone = zones.get(opts);
  if (zone === undefined) {
    const suffix = trimDots(opts.suffix).toLowerCase();
    const mname = trimDots(opts.soa.mname ?? `ns.${suffix}`);
    zone = {
      suffix,
      dotSuffix: `.${suffix}`,
      ttl: opts.ttl,
      minimum: opts.soa.minimum,
      mname,
      rname: trimDots(opts.soa.rname ?? `hostmaster.${suffix}`),
      refresh: opts.soa.refresh ?? DEFAULT_REFRESH,
      retry: opts.soa.retry ?? DEFAULT_RETRY,
      expire: opts.soa.expire ?? DEFAULT_EXPIRE,
      random: opts.random ?? Math.random,
      serial: opts.serial,
      sites: new Set(opts.sites ?? []),
      soas: new Map(),
      nameServer: nameServerOf(mname.toLowerCase(), suffix, opts.ttl, opts.nameServerAddresses ?? []),
    };
    zones.set(opts, zone);
  }
  return zone;
}

/**
 * The SOA of zone `name` (the suffix or a reverse zone) for this snapshot, built once per snapshot and zone. The
 * serial is `opts.serial`'s, or else the snapshot's update time in seconds (monotonic across restarts).
 */
function soaOf(snapshot: View, zone: Zone, name: string = zone.suffix): SoaAnswer {
  let memo = zone.soas.get(name);
  if (memo === undefined) zone.soas.set(name, (memo = new WeakMap()));
  let soa = memo.get(snapshot);
  if (soa === undefined) memo.set(snapshot, (soa = soaRecord(name, zone, snapshot, name)));
  return soa;
}

/** The SOA of zone `zoneName` owned by `owner` (the question name as asked, at the apex). */
function soaRecord(owner: string, zone: Zone, snapshot: View, zoneName: string): SoaAnswer {
  const serial = zone.serial?.(zoneName, snapshot) ?? Math.floor(snapshot.updatedAt / 1000);
  return {
    name: owner,
    type: 'SOA',
    class: 'IN',
    ttl: zone.minimum,
    data: {
      mname: zone.mname,
      rname: zone.rname,
      serial: serial >>> 0,
      refresh: zone.refresh,
      retry: zone.retry,
      expire: zone.expire,
      minimum: zone.minimum,
    },
  };
}

function nodata(snapshot: View, zone: Zone, name?: string): Outcome {
  return { kind: 'nodata', soa: soaOf(snapshot, zone, name) };
}

function nxdomain(snapshot: View, zone: Zone, name?: string): Outcome {
  return { kind: 'nxdomain', soa: soaOf(snapshot, zone, name) };
}

function answer(answers: readonly Answer[], additionals: readonly Answer[] = NO_RECORDS): Outcome {
  return { kind: 'answer', answers, additionals };
}

const NO_RECORDS: readonly Answer[] = Object.freeze([]);

function apex(snapshot: View, q: Question, zone: Zone, name: string): Outcome {
  switch (q.type) {
    case 'SOA':
    case 'ANY':
      return answer([soaRecord(q.name, zone, snapshot, name)]);
    case 'NS':
      return answer([{ name: q.name, type: 'NS', class: 'IN', ttl: zone.ttl, data: zone.mname }], zone.nameServer?.glue);
    default:
      return nodata(snapshot, zone, name);
  }
}

/**
 * The name server name's records (`nameServerOf`), or undefined when it has none of lexa's: no address, or an
 * MNAME outside the forward zone (its addresses are then another zone's to publish).
 */
function nameServerOf(name: string, suffix: string, ttl: number, ips: readonly string[]): NameServer | undefined {
  if (ips.length === 0 || !name.endsWith(`.${suffix}`)) return undefined;
  const glue: Answer[] = [];
  for (const ip of ips) if (isIPv4(ip)) glue.push(addressRecord(name, 'A', ttl, ip));
  for (const ip of ips) if (!isIPv4(ip)) glue.push(addressRecord(name, 'AAAA', ttl, ip));
  return { name, glue };
}

/**
 * `ns.<suffix>` itself: its A or AAAA records owned by the question name as asked; ANY gives the first RRset it
 * holds (A, else AAAA, as ANY does everywhere here); any other type, or a family it lacks, NODATA.
 */
function nameServer(snapshot: View, q: Question, zone: Zone, ns: NameServer): Outcome {
  const hasA = ns.glue.some((r) => r.type === 'A');
  const want = q.type === 'ANY' ? (hasA ? 'A' : 'AAAA') : q.type;
  const records = ns.glue.filter((r) => r.type === want).map((r) => ({ ...r, name: q.name }) as Answer);
  return records.length > 0 ? answer(records) : nodata(snapshot, zone);
}

/** Whether `qname` (as asked: any case, an optional trailing dot) is `name` (lower-case, no trailing dot). */
function isName(qname: string, name: string): boolean {
  const n = qname.length;
  if (n !== name.length && n !== name.length + 1) return false;
  const lower = qname.toLowerCase();
  return lower === name || lower === `${name}.`;
}

/**
 * Names in the reverse zones: the apex has SOA and NS as the forward zone's; `ptr` names answer PTR with the
 * name of every running instance interface holding the address (`<host>.<suffix>` for its primary interface,
 * `<if>.if.<host>.<suffix>` for another, so each PTR target answers that address back), NXDOMAIN when none does;
 * partial names (empty non-terminals) are NODATA without a lookup, as `service.<suffix>` is.
 */
function reverse(snapshot: View, q: Question, zone: Zone, form: ReverseForm): Outcome {
  if (form.kind === 'outside') return REFUSED;
  if (q.type === 'AXFR' || q.type === 'IXFR') return REFUSED;
  if (META_TYPES.has(q.type)) return NOTIMP;
  if (form.kind === 'reverseApex') return apex(snapshot, q, zone, form.zone);
  if (!snapshot.synced) return NOTREADY;
  switch (form.kind) {
    case 'reverseParent':
      return nodata(snapshot, zone, form.zone);
    case 'none':
      return nxdomain(snapshot, zone, form.zone);
    case 'ptr': {
      const targets = ptrTargets(snapshot, form.ip, zone.suffix);
      if (targets.length === 0) return nxdomain(snapshot, zone, form.zone);
      if (q.type !== 'PTR' && q.type !== 'ANY') return nodata(snapshot, zone, form.zone);
      const records = targets.map((data): Answer => ({ name: q.name, type: 'PTR', class: 'IN', ttl: zone.ttl, data }));
      return answer(shuffle(records, zone.random));
    }
  }
}

/**
 * The names a PTR for `ip` points to (lower-case, deduplicated, sorted). An interface whose name is not a DNS
 * label (dns-label.ts) names nothing, so an address held only there has no PTR (NXDOMAIN), as the zone says.
 * O(holders of `ip`): a hash lookup, then one name per holder.
 */
export function ptrTargets(snapshot: View, ip: string, suffix: string): string[] {
  const out = new Set<string>();
  for (const { instance, iface } of snapshot.addressOwners(ip)) {
    const name = iface === instance.interfaces[0] ? hostName(instance, suffix) : ifaceName(instance, iface, suffix);
    if (name !== undefined) out.add(name);
  }
  return [...out].sort();
}

/**
 * `<host>.<suffix>` (lower-case) for an instance, or undefined when its name cannot be a DNS label or the name
 * would be longer than DNS allows: such a name is never offered (zone, PTR), so it never reaches the encoder.
 */
export function hostName(inst: Instance, suffix: string): string | undefined {
  return isDnsLabel(inst.name) ? fitting(`${inst.name}.${siteZone(inst, suffix)}`.toLowerCase()) : undefined;
}


/**
 * `<if>.if.<host>.<suffix>` (lower-case), the name of one interface and the target of SRV records on it, or
 * undefined when the interface or instance name cannot be a DNS label (Linux allows `a..b`) or the name would be
 * too long: the interface then has no name of its own, and an SRV record or PTR that would need it is left out
 * rather than failing the whole reply or zone.
 */
export function ifaceName(inst: Instance, iface: NetInterface, suffix: string): string | undefined {
  if (!isDnsLabel(iface.name) || !isDnsLabel(inst.name)) return undefined;
  return fitting(`${iface.name}.if.${inst.name}.${siteZone(inst, suffix)}`.toLowerCase());
}

/** DNS's limit on a name in text without the trailing dot (255 bytes on the wire). */
const MAX_NAME_CHARS = 253;

function fitting(name: string): string | undefined {
  return name.length <= MAX_NAME_CHARS ? name : undefined;
}

/** Derived reverse zones by subnet list (the list object survives across snapshots until LXD's networks change). */
const derivedZones = new WeakMap<readonly string[], readonly string[]>();

/**
 * The reverse zones lexa serves for this snapshot: the configured ones, or one per subnet of LXD's managed
 * networks (deduplicated, sorted).
 */
export function reverseZones(snapshot: View, opts: ResolveOptions): readonly string[] {
  if (opts.reverseZones !== undefined && opts.reverseZones !== null) return opts.reverseZones;
  let zones = derivedZones.get(snapshot.subnets);
  if (zones === undefined) {
    zones = [...new Set(snapshot.subnets.map(reverseZoneOf).filter((z) => z !== undefined))].sort();
    derivedZones.set(snapshot.subnets, zones);
  }
  return zones;
}

/** Which of an interface's addresses a name answers with, by family (see NetInterface). */
type AddressPick = (iface: NetInterface, v4: boolean) => readonly string[];
/** Every address the instance reports: for names the instance owns (`<host>`, `<if>.if.<host>`) and members. */
const ALL: AddressPick = (iface, v4) => (v4 ? iface.ipv4 : iface.ipv6);
/** Only addresses LXD vouches for: for names other instances' traffic relies on (services, SRV additionals). */
const TRUSTED: AddressPick = (iface, v4) => (v4 ? iface.trustedIpv4 : iface.trustedIpv6);

/**
 * A/AAAA (or ANY: A if there is any IPv4, else AAAA) from a set of interfaces, all owned by the question name,
 * with the addresses `pick` takes from each. The caller has established the name; an empty set means it matched
 * nothing (NXDOMAIN).
 */
function addresses(snapshot: View, q: Question, zone: Zone, ifaces: readonly NetInterface[], pick: AddressPick = ALL): Outcome {
  if (ifaces.length === 0) return nxdomain(snapshot, zone);
  let type = q.type;
  if (type === 'ANY') type = ifaces.some((i) => pick(i, true).length > 0) ? 'A' : 'AAAA';
  if (type !== 'A' && type !== 'AAAA') return nodata(snapshot, zone);
  const v4 = type === 'A';
  let ips: readonly string[];
  if (ifaces.length === 1) ips = pick(ifaces[0]!, v4);
  else {
    // Several interfaces can share an address (a service offered twice, instances in different projects).
    const seen = new Set<string>();
    for (const iface of ifaces) for (const ip of pick(iface, v4)) seen.add(ip);
    ips = [...seen];
  }
  if (ips.length === 0) return nodata(snapshot, zone);
  // Shuffle indices rather than copy-and-shuffle the addresses: one small array, then records for the first
  // MAX_ANSWER_RECORDS only (a bare `*` over 10,000 instances must not build 10,000 records).
  const order = shuffle(indices(ips.length), zone.random);
  const n = Math.min(order.length, MAX_ANSWER_RECORDS);
  const records = new Array<Answer>(n);
  for (let i = 0; i < n; i++) records[i] = addressRecord(q.name, type, zone.ttl, ips[order[i]!]!);
  return answer(records);
}

/**
 * The most records (answers and additionals together) a reply can use: a DNS message is at most 65535 bytes and
 * the smallest record lexa writes (an A record owned by a pointer) is 16, so no transport can carry more than
 * 4095. Every answer is built from at most this many records, whatever the number of matches or addresses.
 */
const MAX_ANSWER_RECORDS = 4096;

function indices(n: number): number[] {
  const out = new Array<number>(n);
  for (let i = 0; i < n; i++) out[i] = i;
  return out;
}

function addressRecord(owner: string, type: 'A' | 'AAAA', ttl: number, ip: string): Answer {
  return { name: owner, type, class: 'IN', ttl, data: ip };
}

/**
 * SRV for `_<svc>._<protoOrTag>.service`: one record per endpoint whose interface has an address LXD vouches for
 * (`servesEndpoint`), target `<if>.if.<host>.<suffix>` (lower-case), weight `256 * weight - 1` (see
 * Service.weight), and the targets' trusted addresses as additionals. Endpoints exist but none vouched: NODATA.
 */
function srv(snapshot: View, q: Question, zone: Zone, svc: string, protoOrTag: string, site: string | undefined): Outcome {
  const all = snapshot.serviceEndpoints(svc);
  const eps = inSite(
    protoOrTag === 'tcp' || protoOrTag === 'udp'
      ? all.filter((ep) => ep.service.proto === protoOrTag)
      : withTag(all, protoOrTag),
    endpointSite,
    site,
  );
  if (q.type !== 'SRV' && q.type !== 'ANY') return eps.length === 0 ? nxdomain(snapshot, zone) : nodata(snapshot, zone);
  return srvRecords(snapshot, q, zone, eps);
}

/**
 * The SRV answer for endpoints `eps` (NXDOMAIN when there are none), as `srv` describes it; also what
 * `[<tag>.]<svc>.service` answers to SRV (Consul's names).
 */
function srvRecords(snapshot: View, q: Question, zone: Zone, eps: readonly ServiceEndpoint[]): Outcome {
  if (eps.length === 0) return nxdomain(snapshot, zone);
  const entries: { record: Answer; target: string; iface: NetInterface }[] = [];
  const seen = new Set<string>();
  for (const ep of eps) {
    if (!servesEndpoint(ep)) continue;
    const target = ifaceName(ep.instance, ep.iface, zone.suffix);
    // An endpoint on an interface with no DNS name cannot be an SRV target; its address still answers as A/AAAA.
    if (target === undefined) continue;
    const s = ep.service;
    const weight = 256 * s.weight - 1;
    const key = `${s.priority} ${weight} ${s.port} ${target}`;
    if (seen.has(key)) continue;
    seen.add(key);
    const data = { priority: s.priority, weight, port: s.port, target };
    entries.push({ record: { name: q.name, type: 'SRV', class: 'IN', ttl: zone.ttl, data }, target, iface: ep.iface });
  }
  if (entries.length === 0) return nodata(snapshot, zone);
  shuffle(entries, zone.random);
  if (entries.length > MAX_ANSWER_RECORDS) entries.length = MAX_ANSWER_RECORDS;
  const answers: Answer[] = [];
  const additionals: Answer[] = [];
  const added = new Set<string>();
  // Additionals stop where no message could hold more records: an interface may carry any number of addresses
  // (a container adds them to itself), and building a record per address would make every SRV query cost that.
  const room = MAX_ANSWER_RECORDS - entries.length;
  const addAll = (target: string, type: 'A' | 'AAAA', ips: readonly string[]): void => {
    for (let i = 0; i < ips.length && additionals.length < room; i++) additionals.push(addressRecord(target, type, zone.ttl, ips[i]!));
  };
  for (const { record, target, iface } of entries) {
    answers.push(record);
    if (added.has(target)) continue;
    added.add(target);
    addAll(target, 'A', iface.trustedIpv4);
    addAll(target, 'AAAA', iface.trustedIpv6);
  }
  return answer(answers, additionals);
}

function cluster(snapshot: View, q: Question, zone: Zone, found: readonly Instance[]): Outcome {
  if (found.length === 0) return nxdomain(snapshot, zone);
  const locations = [...new Set(found.map((i) => locationOf(snapshot, i)).filter((l) => l !== undefined))];
  // The name exists (the instance runs) even when lexa does not know where: NODATA, not NXDOMAIN.
  if (locations.length === 0) return nodata(snapshot, zone);
  const single = locations.length === 1 ? locations[0]! : undefined;
  if (q.type === 'CNAME' || (q.type === 'ANY' && single !== undefined)) {
    if (single === undefined) return nodata(snapshot, zone);
    return answer([{ name: q.name, type: 'CNAME', class: 'IN', ttl: zone.ttl, data: single }]);
  }
  const ifaces = memberIfaces(snapshot, found, locations);
  // The name exists (the instance runs) even if lexa has no address for its member: NODATA, not NXDOMAIN.
  return ifaces.length === 0 ? nodata(snapshot, zone) : addresses(snapshot, q, zone, ifaces);
}

function member(snapshot: View, q: Question, zone: Zone, found: readonly Instance[], name: string): Outcome {
  const location = found.map((i) => locationOf(snapshot, i)).find((l) => l?.toLowerCase() === name);
  if (location === undefined) return nxdomain(snapshot, zone);
  const ifaces = memberIfaces(snapshot, found, [location]);
  // The member exists (an instance runs on it) even if lexa has no address for it: NODATA, not NXDOMAIN.
  return ifaces.length === 0 ? nodata(snapshot, zone) : addresses(snapshot, q, zone, ifaces);
}

/**
 * The member an instance runs on: its `location` in a cluster; on a standalone LXD, the server itself (the one
 * member the reflector records), or undefined when lexa has no record of it.
 */
function locationOf(snapshot: View, inst: Instance): string | undefined {
  const cluster = snapshot.clusterOf(inst);
  if (cluster.clustered) return inst.location;
  if (cluster.members.size !== 1) return undefined;
  return cluster.members.keys().next().value;
}

/** Cluster members' addresses, shaped as interfaces so `addresses` can answer for them. */
function memberIfaces(snapshot: View, found: readonly Instance[], locations: readonly string[]): NetInterface[] {
  const out: NetInterface[] = [];
  // The matches are of one site (inSite), so its members are theirs.
  const members = found.length === 0 ? snapshot.members : snapshot.clusterOf(found[0]!).members;
  for (const loc of locations) {
    const m = members.get(loc);
    // Members' addresses come from LXD's own member list: LXD vouches for them.
    if (m !== undefined) out.push({ name: m.name, ipv4: m.ipv4, ipv6: m.ipv6, trustedIpv4: m.ipv4, trustedIpv6: m.ipv6 });
  }
  return out;
}

/**
 * Running instances whose name matches `pattern`, in the site `inSite` chooses; only those of LXD project
 * `project` (compared lower-cased, as names are) when the name carries a project label.
 */
function hostsIn(snapshot: View, pattern: string, site: string | undefined, project: string | undefined): readonly Instance[] {
  const found = pattern.includes('*') ? snapshot.matchHosts(pattern) : snapshot.hosts(pattern);
  return inSite(project === undefined ? found : found.filter((i) => i.project.toLowerCase() === project), instanceSite, site);
}

/** A/AAAA of the primary interfaces of running instances; none found is NXDOMAIN. */
function hostAddresses(snapshot: View, q: Question, zone: Zone, found: readonly Instance[]): Outcome {
  return found.length === 0 ? nxdomain(snapshot, zone) : addresses(snapshot, q, zone, primaryIfaces(found));
}

function primaryIfaces(found: readonly Instance[]): NetInterface[] {
  const out: NetInterface[] = [];
  for (const inst of found) {
    const iface = inst.interfaces[0];
    if (iface !== undefined) out.push(iface);
  }
  // A running instance without interfaces still exists: answer NODATA, not NXDOMAIN.
  return out.length === 0 ? [NO_ADDRESSES] : out;
}

function namedIfaces(found: readonly Instance[], name: string): NetInterface[] {
  const out: NetInterface[] = [];
  for (const inst of found) {
    const iface = findInterface(inst, name);
    if (iface !== undefined && isDnsLabel(iface.name)) out.push(iface);
  }
  return out;
}

function ifacesOf(eps: readonly ServiceEndpoint[]): NetInterface[] {
  return eps.map((ep) => ep.iface);
}

function withTag(eps: readonly ServiceEndpoint[], tag: string): ServiceEndpoint[] {
  return eps.filter((ep) => ep.service.tags.some((t) => t.toLowerCase() === tag));
}

const NO_ADDRESSES: NetInterface = Object.freeze({ name: '', ipv4: [], ipv6: [], trustedIpv4: [], trustedIpv6: [] });
const NO_INSTANCES: readonly Instance[] = Object.freeze([]);

/** Fisher–Yates, in place. */
function shuffle<T>(list: T[], random: () => number): T[] {
  for (let i = list.length - 1; i > 0; i--) {
    const j = Math.floor(random() * (i + 1));
    const tmp = list[i]!;
    list[i] = list[j]!;
    list[j] = tmp;
  }
  return list;
}

function trimDots(name: string): string {
  let start = 0;
  let end = name.length;
  while (start < end && name[start] === '.') start++;
  while (end > start && name[end - 1] === '.') end--;
  return name.slice(start, end);
}

/** Labels of 1..63 printable ASCII characters, at most 253 characters in all: what records.ts can write. */
function isPlainName(name: string): boolean {
  return name.length <= 253 && name.split('.').every((l) => /^[\x21-\x2d\x2f-\x7e]{1,63}$/.test(l));
}

function isTtl(n: number): boolean {
  return Number.isInteger(n) && n >= 0 && n <= 0x7fffffff;
}

/** What zone.ts and serial.ts need to write the zone exactly as the resolver answers it (same defaults). */
export function zoneOptions(opts: ResolveOptions): {
  readonly suffix: string;
  readonly ttl: number;
  readonly mname: string;
  readonly soa: { readonly mname: string; readonly rname: string; readonly refresh: number; readonly retry: number; readonly expire: number; readonly minimum: number };
  readonly nameServerRecords: readonly Answer[];
} {
  const z = zoneOf(opts);
  const soa = { mname: z.mname, rname: z.rname, refresh: z.refresh, retry: z.retry, expire: z.expire, minimum: z.minimum };
  return { suffix: z.suffix, ttl: z.ttl, mname: z.mname, soa, nameServerRecords: z.nameServer?.glue ?? NO_RECORDS };
}
