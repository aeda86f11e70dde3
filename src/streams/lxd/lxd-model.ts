import { parseAliases } from '../model/aliases.js';
import { exact } from '../model/arrays.js';
import { isIPv4, isIPv6 } from 'node:net';
import type { ClusterMember, Instance, NetInterface } from '../model/model.js';
import { parseAgentKeys } from '../model/agents.js';
import { isDnsLabel } from '../model/dns-label.js';
import { parseServiceKeys } from '../model/services.js';
import { parseTraefikKeys } from '../model/traefik-labels.js';
import { NO_EVIDENCE, trustTest, type Evidence } from './trust.js';

/**
 * LXD's wire shapes (the subset lexa reads) and their translation into the model. Translation is total: odd or
 * missing fields give empty values, never an exception, because one strange instance must not stop the list.
 */

export interface LxdAddress {
  family?: string;
  address?: string;
  scope?: string;
}

export interface LxdNetworkState {
  addresses?: LxdAddress[] | null;
  type?: string;
}

export interface LxdInstanceState {
  status?: string;
  network?: Record<string, LxdNetworkState> | null;
}

export interface LxdInstance {
  name?: string;
  project?: string;
  type?: string;
  status?: string;
  location?: string;
  /** When the instance last started (RFC 3339). */
  last_used_at?: string;
  profiles?: string[] | null;
  /** The instance's own config (without its profiles'): where its agent token must be set. */
  config?: Record<string, string> | null;
  expanded_config?: Record<string, string> | null;
  expanded_devices?: Record<string, Record<string, string>> | null;
  state?: LxdInstanceState | null;
}

export interface LxdMember {
  server_name?: string;
  url?: string;
  status?: string;
}

export interface LxdEvent {
  type?: string;
  timestamp?: string;
  location?: string;
  project?: string;
  metadata?: { action?: string; source?: string; context?: Record<string, unknown> | null; name?: string; project?: string };
}

/**
 * An instance's unique key: `<project>/<name>`, and `<site>/<project>/<name>` for an instance of a named site
 * (docs/sites.md), so the instances of several sites never share a key.
 */
export function instanceKey(project: string, name: string, site?: string): string {
  return site === undefined ? `${project}/${name}` : `${site}/${project}/${name}`;
}

/**
 * The model of one LXD instance, from its `recursion=2` record (which carries its state). `evidence` is what LXD last said about its networks and leases, which decides the interfaces' trusted addresses
 * (trust.ts); without it only device-configured addresses and NICs off lease-backed networks are trusted.
 */
export function toInstance(raw: LxdInstance, evidence: Evidence = NO_EVIDENCE, site?: string): Instance {
  const name = raw.name ?? '';
  const project = raw.project || 'default';
  const st = raw.state;
  const status = st?.status ?? raw.status ?? 'Unknown';
  const parsed = parseServiceKeys(raw.expanded_config);
  const routing = parseTraefikKeys(raw.expanded_config, parsed.services);
  const { errors: agentErrors, ...agent } = parseAgentKeys(raw.expanded_config, raw.config);
  const interfaces = toInterfaces(raw.expanded_devices, st?.network, raw.expanded_config, project, evidence);
  const named = parseAliases(raw.expanded_config);
  return {
    key: instanceKey(project, name, site),
    name,
    ...(site === undefined ? {} : { site }),
    project,
    type: raw.type ?? 'container',
    status,
    running: status === 'Running',
    location: raw.location || 'none',
    interfaces,
    services: parsed.services,
    traefik: routing.traefik,
    configErrors: exact([...parsed.errors, ...routing.errors, ...agentErrors, ...named.errors, ...unnamedInterfaces(interfaces)]),
    profiles: exact((raw.profiles ?? []).filter((p) => typeof p === 'string')),
    ...agent,
    ...(named.aliases.length > 0 ? { aliases: named.aliases } : {}),
  };
}

/**
 * One problem per interface whose name cannot be a DNS label (dns-label.ts): said once when the instance is read
 * (the reflector logs an instance's problems when they change, not per query), and the reason its interface has
 * no `<if>.if.<host>` name, SRV target or PTR.
 */
function unnamedInterfaces(interfaces: readonly NetInterface[]): string[] {
  return interfaces
    .filter((i) => !isDnsLabel(i.name))
    .map((i) => `interface ${JSON.stringify(i.name)} is not a DNS label (letters, digits, '-', '_'; 1..63): it has no DNS name of its own (no <if>.if.<host> address, SRV target or PTR)`);
}

/**
 * Primary first: interfaces of LXD-managed NICs in LXD's device order (the in-instance name is the device's
 * `name` property, else the device name), then any other interface the instance reports, loopback excluded.
 * A managed NIC with no state yet is still listed (with no addresses) so the primary interface does not change
 * while addresses arrive. Only global-scope addresses are kept; of those, `trusted*` holds the ones LXD vouches
 * for given `evidence` (trust.ts): none on an interface no NIC device backs.
 */
export function toInterfaces(
  devices: Record<string, Record<string, string>> | null | undefined,
  network: Record<string, LxdNetworkState> | null | undefined,
  config?: Record<string, string> | null,
  project = 'default',
  evidence: Evidence = NO_EVIDENCE,
): NetInterface[] {
  const nics = new Map<string, { conf: Record<string, string>; mac: string | undefined }>();
  for (const [dev, conf] of Object.entries(devices ?? {})) {
    if (conf?.['type'] !== 'nic') continue;
    const ifname = conf['name'] || dev;
    if (!nics.has(ifname)) nics.set(ifname, { conf, mac: nicMac(dev, conf, config)?.toLowerCase() });
  }
  const names = [...nics.keys()];
  for (const [ifname, ns] of Object.entries(network ?? {})) {
    if (ns?.type === 'loopback' || ifname === 'lo') continue;
    if (!names.includes(ifname)) names.push(ifname);
  }
  return names.map((ifname) => {
    const addrs = network?.[ifname]?.addresses ?? [];
    // Only well-formed global addresses: whatever LXD reports must be safe to put on the wire as is.
    const global = (family: string, valid: (a: string) => boolean) =>
      addrs
        .filter((a) => a?.family === family && a.scope === 'global' && typeof a.address === 'string' && valid(a.address))
        .map((a) => a.address!);
    const nic = nics.get(ifname);
    const trusted = trustTest(nic?.conf, nic?.mac, project, evidence);
    const ipv4 = global('inet', isIPv4);
    const ipv6 = global('inet6', isIPv6);
    // Usually every address is trusted: the same array then, not a copy per instance.
    const trustedOf = (all: readonly string[]) => (all.every(trusted) ? all : exact(all.filter(trusted)));
    return { name: ifname, ipv4, ipv6, trustedIpv4: trustedOf(ipv4), trustedIpv6: trustedOf(ipv6) };
  });
}

/** The MAC LXD gave NIC device `dev`: its `hwaddr` key, else the `volatile.<dev>.hwaddr` LXD sets at first start. */
function nicMac(dev: string, conf: Record<string, string>, config: Record<string, string> | null | undefined): string | undefined {
  return conf['hwaddr'] || config?.[`volatile.${dev}.hwaddr`] || undefined;
}

/** A DHCP lease as `GET /1.0/networks/<network>/leases` lists it (LXD reads its dnsmasq's leases). */
export interface LxdLease {
  hostname?: string;
  hwaddr?: string;
  address?: string;
  type?: string;
  location?: string;
}

/**
 * The managed network and MAC address of an instance's primary NIC (the first NIC device, as toInterfaces orders
 * them), from which its DHCP lease can be found; undefined when the NIC is not on a managed network or has no MAC
 * yet (LXD sets `volatile.<device>.hwaddr` at first start).
 */
export function primaryNic(raw: LxdInstance): { network: string; hwaddr: string } | undefined {
  for (const [dev, conf] of Object.entries(raw.expanded_devices ?? {})) {
    if (conf?.['type'] !== 'nic') continue;
    const network = conf['network'] ?? conf['parent'];
    const hwaddr = nicMac(dev, conf, raw.expanded_config);
    return network && hwaddr ? { network, hwaddr: hwaddr.toLowerCase() } : undefined;
  }
  return undefined;
}

/** The IPv4 address of the lease held by `hwaddr`, if any (well-formed addresses only). */
export function leasedIpv4(leases: readonly LxdLease[] | null | undefined, hwaddr: string): string | undefined {
  const lease = (leases ?? []).find((l) => l?.hwaddr?.toLowerCase() === hwaddr && typeof l.address === 'string' && isIPv4(l.address));
  return lease?.address;
}

/** A cluster member; its address is the host part of its API URL. */
export function toMember(raw: LxdMember): ClusterMember {
  const url = raw.url ?? '';
  let host = '';
  try {
    host = new URL(url).hostname.replace(/^\[|\]$/g, '');
  } catch {
    host = '';
  }
  const isV4 = isIPv4(host);
  const isV6 = isIPv6(host);
  return {
    name: raw.server_name ?? '',
    url,
    status: raw.status ?? 'Unknown',
    ipv4: isV4 ? [host] : [],
    ipv6: isV6 ? [host] : [],
  };
}

/** What `GET /1.0` says about the server, the parts lexa reads. */
export interface LxdServerEnvironment {
  /** "lxd" or "incus" (Incus keeps LXD's API and says which it is here). */
  server?: string;
  server_version?: string;
  server_name?: string;
  server_clustered?: boolean;
  /** Addresses the API listens on, "host:port" or "[v6]:port". */
  addresses?: string[] | null;
}

/** Which daemon lexa is talking to: Incus speaks LXD's API (its lifecycle metadata also carries `name` and `project`, and `recursion=2` adds fields: lexa tolerates both). */
export interface DaemonKind {
  readonly kind: 'lxd' | 'incus';
  readonly version: string;
}

/**
 * The daemon behind `target` (a socket path or URL): what `environment.server` says, else guessed from the target
 * (Incus's socket lives under /var/lib/incus), else LXD.
 */
export function daemonKind(env: LxdServerEnvironment | undefined, target: string): DaemonKind {
  const said = env?.server?.toLowerCase();
  const kind = said === 'incus' || said === 'lxd' ? said : /incus/i.test(target) ? 'incus' : 'lxd';
  return { kind, version: env?.server_version ?? 'unknown' };
}

/**
 * A standalone LXD as the one member of its own "cluster": named after the server, with the addresses its API
 * listens on (wildcards skipped). Instances of a standalone LXD all run on it.
 */
export function toStandaloneMember(env: LxdServerEnvironment | undefined): ClusterMember {
  const hosts = (env?.addresses ?? [])
    .map((a) => a.replace(/:\d+$/, '').replace(/^\[|\]$/g, ''))
    .filter((h) => h !== '0.0.0.0' && h !== '::');
  return {
    name: env?.server_name || 'none',
    url: env?.addresses?.[0] ? `https://${env.addresses[0]}` : '',
    status: 'Online',
    ipv4: [...new Set(hosts.filter((h) => isIPv4(h)))],
    ipv6: [...new Set(hosts.filter((h) => isIPv6(h)))],
  };
}

/** `(project, name)` an event's `source` (`/1.0/instances/<name>[?project=<p>]`) refers to, if an instance. */
export function eventInstance(ev: LxdEvent): { project: string; name: string } | undefined {
  const source = ev.metadata?.source ?? '';
  const m = /^\/1\.0\/(?:instances|containers|virtual-machines)\/([^/?]+)(?:\?(.*))?$/.exec(source);
  if (!m) return undefined;
  const params = new URLSearchParams(m[2] ?? '');
  const name = decodedComponent(m[1]!);
  return name === undefined ? undefined : { name, project: params.get('project') || ev.project || ev.metadata?.project || 'default' };
}

/** The profile name an event's `source` refers to, with its project. */
export function eventProfile(ev: LxdEvent): { project: string; name: string } | undefined {
  const m = /^\/1\.0\/profiles\/([^/?]+)(?:\?(.*))?$/.exec(ev.metadata?.source ?? '');
  if (!m) return undefined;
  const params = new URLSearchParams(m[2] ?? '');
  const name = decodedComponent(m[1]!);
  return name === undefined ? undefined : { name, project: params.get('project') || ev.project || 'default' };
}

/** A percent-encoded path segment decoded; undefined when it is not valid percent-encoding (decodeURIComponent throws). */
function decodedComponent(s: string): string | undefined {
  try {
    return decodeURIComponent(s);
  } catch {
    return undefined;
  }
}
