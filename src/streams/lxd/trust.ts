import { addressKey } from '../../net/addresses.js';
import type { LxdLease } from './lxd-model.js';
import type { LxdNetwork } from './networks.js';

/**
 * Which of an instance's addresses LXD vouches for. A container may put any address on any interface it has (LXD
 * bridges filter neither MAC nor IP by default), so what `/state` reports is the container's own say. An address
 * is *trusted* (used for service records, SRV additionals, PTR, `/traefik` and agent binding) only when LXD itself
 * stands behind it:
 *  - it is on an interface backed by an LXD NIC device (the device's `name` key, else the device name), and
 *  - on a NIC of a network whose addresses LXD hands out (a managed `bridge` or `ovn` network, which has leases),
 *    LXD lists it for that NIC: a DHCP lease of the NIC's MAC on that network (`GET /1.0/networks/<n>/leases`,
 *    which on LXD 5.0.2 also lists static device addresses and the SLAAC EUI-64 address), the device's own
 *    `ipv4.address`/`ipv6.address`, or the EUI-64 address of the NIC's MAC in the network's /64 (both known from
 *    config alone, so they need no fresh lease list);
 *  - on any other NIC (macvlan, physical, a bridge LXD does not manage) LXD has no record of addresses: the NIC
 *    being LXD's is the only evidence, and its addresses are trusted, except addresses inside the subnet of a
 *    network whose addresses LXD hands out (those only the NIC LXD leased them to may have).
 * Interfaces the container makes itself (dummy, veths of nested namespaces, ...) are never trusted. Pure.
 */

/** A network LXD reports (managed or one of the host's interfaces), as far as trust needs it. */
export interface NetworkFacts {
  /** True when LXD hands out (and lists) the addresses on it: managed `bridge` and `ovn` networks. */
  readonly leases: boolean;
  /** The first 16 hex digits of the network's IPv6 /64 (SLAAC prefix), when it has one. */
  readonly slaacPrefix: string | undefined;
  /** The network's subnets (`ipv4.address`/`ipv6.address` as CIDR), when LXD hands out addresses on it. */
  readonly subnets: readonly string[];
}

/** What LXD has said about its networks: the facts lexa read last, and the leases by network. */
export interface Evidence {
  /** Every network LXD reports, by name; empty until LXD's networks have been read. */
  readonly networks: ReadonlyMap<string, NetworkFacts>;
  /**
   * By `leaseScope(project, network)`, then lower-case MAC: the address keys (`addressKey`) LXD's lease list of
   * that network, read in that project, gives that MAC. LXD lists a project's own instances' leases only, so the
   * lists of two projects on one bridge are kept apart.
   */
  readonly leases: ReadonlyMap<string, ReadonlyMap<string, ReadonlySet<string>>>;
}

/** No evidence (networks not read yet): only device-configured addresses are trusted. */
export const NO_EVIDENCE: Evidence = Object.freeze({ networks: new Map(), leases: new Map() });

/** Network types whose addresses LXD hands out and lists in `/leases` (dnsmasq for bridges, OVN's DHCP for ovn). */
const LEASING_TYPES: ReadonlySet<string> = new Set(['bridge', 'ovn']);

/**
 * The facts of the networks `/1.0/networks?recursion=1` lists: LXD's managed networks and the host's own
 * interfaces (unmanaged, which macvlan/physical NICs name as `parent`). Never throws; odd entries are skipped.
 */
export function networkFacts(networks: readonly LxdNetwork[]): Map<string, NetworkFacts> {
  const out = new Map<string, NetworkFacts>();
  for (const n of Array.isArray(networks) ? networks : []) {
    if (typeof n?.name !== 'string') continue;
    const managed = n.managed === true;
    const v6 = n.config?.['ipv6.address'];
    const m = managed && typeof v6 === 'string' ? /^([0-9a-fA-F:]+)\/64$/.exec(v6) : null;
    const key = m ? addressKey(m[1]!) : undefined;
    const leases = managed && LEASING_TYPES.has(n.type ?? '');
    const subnets = leases ? ['ipv4.address', 'ipv6.address'].map((k) => n.config?.[k]).filter((v) => typeof v === 'string' && v.includes('/')) : [];
    out.set(n.name, { leases, slaacPrefix: key?.slice(0, 16), subnets: subnets as string[] });
  }
  return out;
}

/** One network's leases: the address keys (`addressKey`) LXD lists for each lower-case MAC. */
export type LeaseIndex = ReadonlyMap<string, ReadonlySet<string>>;

/** `leases` of one network as address keys by lower-case MAC; entries without a MAC (the gateway) are skipped. */
export function leasesByMac(leases: readonly LxdLease[] | null | undefined): Map<string, Set<string>> {
  const out = new Map<string, Set<string>>();
  for (const l of Array.isArray(leases) ? leases : []) {
    const mac = typeof l?.hwaddr === 'string' ? l.hwaddr.toLowerCase() : '';
    const key = typeof l?.address === 'string' ? addressKey(l.address) : undefined;
    if (mac === '' || key === undefined) continue;
    const set = out.get(mac);
    if (set === undefined) out.set(mac, new Set([key]));
    else set.add(key);
  }
  return out;
}

/** The key of one lease list in `Evidence.leases`. */
export function leaseScope(project: string, network: string): string {
  return `${project}\u0000${network}`;
}

/** `evidence` with the leases of `network` in `project` replaced by `leases` (LXD's complete list of them). */
export function withLeases(evidence: Evidence, project: string, network: string, leases: readonly LxdLease[] | null | undefined): Evidence {
  return withLeaseIndex(evidence, project, network, leasesByMac(leases));
}

/**
 * `evidence` with the leases of `network` in `project` replaced by `index` (leasesByMac of LXD's complete list);
 * `evidence` itself when it already holds that very index (one shared read applied by each of its readers).
 */
export function withLeaseIndex(evidence: Evidence, project: string, network: string, index: LeaseIndex): Evidence {
  const scope = leaseScope(project, network);
  if (evidence.leases.get(scope) === index) return evidence;
  const all = new Map(evidence.leases);
  all.set(scope, index);
  return { networks: evidence.networks, leases: all };
}

/** The networks an instance's NICs are on whose leases prove their addresses (those to read leases of). */
export function leasingNetworks(
  devices: Record<string, Record<string, string>> | null | undefined,
  networks: Evidence['networks'],
): string[] {
  const out = new Set<string>();
  for (const conf of Object.values(devices ?? {})) {
    if (conf?.['type'] !== 'nic') continue;
    const basis = nicBasis(conf, networks);
    if (typeof basis === 'object') out.add(basis.leases);
  }
  return [...out];
}

/**
 * What vouches for the addresses of NIC `conf`: the leases of a network (`{ leases }`), the NIC alone (`'nic'`:
 * LXD keeps no record of addresses there), or nothing yet (`'unknown'`: the network it names has not been
 * reported, so trust waits for evidence rather than being granted blindly).
 */
function nicBasis(conf: Record<string, string>, networks: Evidence['networks']): { readonly leases: string } | 'nic' | 'unknown' {
  const named = conf['network'];
  // A NIC naming a network LXD has not reported is assumed to have leases: its lease list then decides.
  if (named) return networks.get(named)?.leases === false ? 'nic' : { leases: named };
  const parent = conf['parent'];
  const facts = parent ? networks.get(parent) : undefined;
  if (facts === undefined) return parent ? 'unknown' : 'nic';
  // `nictype: bridged` with a `parent` is on that bridge, whose leases cover it when LXD manages it.
  return facts.leases && (conf['nictype'] ?? 'bridged') === 'bridged' ? { leases: parent! } : 'nic';
}

/**
 * A test of trust for the addresses of one interface of an instance of `project`: the interface is backed by a NIC
 * device configured `conf`, or by no device at all (undefined: never trusted). `mac` is the NIC's MAC as LXD
 * assigned it (`hwaddr`, else `volatile.<dev>.hwaddr`), lower-case.
 */
export function trustTest(
  conf: Record<string, string> | undefined,
  mac: string | undefined,
  project: string,
  evidence: Evidence,
): (address: string) => boolean {
  if (conf === undefined) return NEVER;
  const basis = nicBasis(conf, evidence.networks);
  const vouched = new Set<string>();
  for (const k of ['ipv4.address', 'ipv6.address']) {
    const key = conf[k] ? addressKey(conf[k]!) : undefined;
    if (key !== undefined) vouched.add(key);
  }
  // A NIC without leases is its own evidence, but not for an address of a subnet LXD hands out: LXD vouches for
  // that one on the NIC it leased it to, and a container must not claim it through another way in.
  if (basis === 'nic') {
    const leased = leasedSubnets(evidence.networks);
    return (address) => vouched.has(addressKey(address) ?? '') || !leased.some((cidr) => inSubnet(address, cidr));
  }
  if (mac !== undefined && basis !== 'unknown') {
    for (const key of evidence.leases.get(leaseScope(project, basis.leases))?.get(mac) ?? []) vouched.add(key);
    const prefix = evidence.networks.get(basis.leases)?.slaacPrefix;
    const iid = eui64(mac);
    if (prefix !== undefined && iid !== undefined) vouched.add(prefix + iid);
  }
  return (address) => {
    const key = addressKey(address);
    return key !== undefined && vouched.has(key);
  };
}

const NEVER = (): boolean => false;

/** Subnets of the networks whose addresses LXD hands out, by network table (computed once per table). */
const subnetsOf = new WeakMap<Evidence['networks'], readonly string[]>();

function leasedSubnets(networks: Evidence['networks']): readonly string[] {
  let out = subnetsOf.get(networks);
  if (out === undefined) {
    out = [...networks.values()].flatMap((n) => n.subnets);
    subnetsOf.set(networks, out);
  }
  return out;
}

/** Whether `address` lies in `cidr` (`10.99.0.1/24`, `fd42:99::1/64`); false for anything malformed. */
export function inSubnet(address: string, cidr: string): boolean {
  const slash = cidr.lastIndexOf('/');
  const bits = Number(cidr.slice(slash + 1));
  const net = addressKey(cidr.slice(0, slash));
  const key = addressKey(address);
  if (slash < 0 || !Number.isInteger(bits) || net === undefined || key === undefined) return false;
  const v4 = (k: string) => !/^[0-9a-f]{32}$/.test(k);
  if (v4(net) !== v4(key)) return false;
  const toBits = (k: string) =>
    v4(k)
      ? k.split('.').map((o) => Number(o).toString(2).padStart(8, '0')).join('')
      : [...k].map((h) => parseInt(h, 16).toString(2).padStart(4, '0')).join('');
  return toBits(net).slice(0, bits) === toBits(key).slice(0, bits);
}

/**
 * The modified EUI-64 interface identifier (RFC 4291 appendix A) of a 48-bit MAC as 16 hex digits: what SLAAC
 * appends to the /64 prefix. Undefined for anything that is not a MAC.
 */
export function eui64(mac: string): string | undefined {
  const m = /^([0-9a-f]{2}):([0-9a-f]{2}):([0-9a-f]{2}):([0-9a-f]{2}):([0-9a-f]{2}):([0-9a-f]{2})$/.exec(mac.toLowerCase());
  if (!m) return undefined;
  const first = (parseInt(m[1]!, 16) ^ 0x02).toString(16).padStart(2, '0');
  return `${first}${m[2]}${m[3]}fffe${m[4]}${m[5]}${m[6]}`;
}
