import { createHash } from 'node:crypto';
import {
  allowListOf,
  checkOf,
  findInterface,
  mayAnnounce,
  servesEndpoint,
  type AgentState,
  type Instance,
  type NetInterface,
  type Service,
  type ServiceHealth,
  type View,
} from '../../../streams/index.js';

/**
 * lexa's catalog in Consul's terms, one pure function of a snapshot (docs/catalog.md, "The mapping"):
 *
 * - a Consul node is a running instance. Its name is the instance's name, then `.<project>` outside the default
 *   project and `.<site>` in a named site, as its DNS name reads (LXD instance names hold no dot, so names never
 *   collide); its address is the first address LXD vouches for on its primary interface (IPv4 before IPv6), else
 *   on any later interface; its meta is `{location, project, type}` as LXD says, and `site` in a named site.
 * - a Consul service instance is a lexa service endpoint on that node (a service on an interface the instance
 *   has, with an address LXD vouches for: what DNS and /services serve). Its ID is
 *   `<node>:<service>:<port>:<proto>` (a service may be offered on tcp and udp on one port).
 * - its health is `passing`, or `critical` for an agent service whose checks fail (kept in the snapshot's agent
 *   state: DNS does not serve it, the catalog lists it) and for a config service whose server-side check withholds
 *   it (kept in the instance's `declared` services and the snapshot's check states). A checked service's output is
 *   its check's last line.
 * Stopped instances are not nodes: lexa serves only running ones, so a stopped instance's services leave the
 * catalog, as they leave DNS.
 */

export interface CatalogNode {
  /** A UUID derived from the instance's key: stable across restarts of lexa and of the instance. */
  readonly id: string;
  readonly name: string;
  /** Empty when LXD vouches for no address of the instance (yet). */
  readonly address: string;
  readonly ipv4: string | undefined;
  readonly ipv6: string | undefined;
  readonly meta: { readonly location: string; readonly project: string; readonly type: string };
}

export interface CatalogEntry {
  readonly instance: Instance;
  readonly node: CatalogNode;
  /** `<node>:<service>:<port>:<proto>`. */
  readonly id: string;
  readonly service: Service;
  /** The interface the service is offered on (its `interface`, or the primary one). */
  readonly iface: NetInterface;
  /** The interface's first vouched-for address (IPv4 before IPv6). */
  readonly address: string;
  readonly health: ServiceHealth;
  /** One line saying where the health comes from, as Consul's check Output does. */
  readonly output: string;
}

/** The node name of an instance; see the mapping above. */
export function nodeName(inst: Instance): string {
  const project = inst.project === 'default' ? '' : `.${inst.project}`;
  return `${inst.name}${project}${inst.site === undefined ? '' : `.${inst.site}`}`;
}

/**
 * Nodes already derived, by instance object: instances are immutable and shared from snapshot to snapshot, so an
 * instance's node (and its UUID's SHA-256) is computed once, not on every rendering; a WeakMap forgets it with
 * the instance.
 */
const NODES = new WeakMap<Instance, CatalogNode>();

/** The Consul node of a running instance. */
export function nodeOf(inst: Instance): CatalogNode {
  let node = NODES.get(inst);
  if (node === undefined) NODES.set(inst, (node = deriveNode(inst)));
  return node;
}

function deriveNode(inst: Instance): CatalogNode {
  const primary = inst.interfaces.find((i) => i.trustedIpv4.length + i.trustedIpv6.length > 0);
  const ipv4 = primary?.trustedIpv4[0];
  const ipv6 = primary?.trustedIpv6[0];
  return {
    id: uuidOf(inst.key),
    name: nodeName(inst),
    address: ipv4 ?? ipv6 ?? '',
    ipv4,
    ipv6,
    meta: { location: inst.location, project: inst.project, type: inst.type, ...(inst.site === undefined ? {} : { site: inst.site }) },
  };
}

/** Every node (running instance; those `keep` keeps), sorted by name. */
export function nodesOf(snap: View, keep: (inst: Instance) => boolean = () => true): CatalogNode[] {
  return [...snap.running()].filter(keep).map(nodeOf).sort((a, b) => cmp(a.name, b.name));
}

/** The running instance a node name names, if any (a hash lookup by host name). */
export function instanceOfNode(snap: View, name: string): Instance | undefined {
  const lname = name.toLowerCase();
  const dot = lname.indexOf('.');
  return snap.hosts(dot < 0 ? lname : lname.slice(0, dot)).find((i) => nodeName(i).toLowerCase() === lname);
}

/**
 * Every catalog entry of service `name` (lower-cased), passing and critical, sorted by node then ID. Costs the
 * service's endpoints plus one pass over the agent states (critical agent services are not indexed by name).
 */
export function serviceEntries(snap: View, name: string): CatalogEntry[] {
  const out: CatalogEntry[] = [];
  for (const ep of snap.serviceEndpoints(name)) {
    if (servesEndpoint(ep)) out.push(entryOf(ep.instance, ep.service, ep.iface, healthOf(ep.service), snap));
  }
  for (const [key, agent] of snap.agents) out.push(...criticalAgentEntries(snap, key, agent, name));
  for (const [key] of snap.checks) {
    const inst = snap.instances.get(key);
    if (inst !== undefined) out.push(...withheldEntries(snap, inst, name));
  }
  return out.sort(byNodeThenId);
}

/** Every catalog entry of one instance (a node), sorted by ID. */
export function instanceEntries(snap: View, inst: Instance): CatalogEntry[] {
  const out: CatalogEntry[] = [];
  for (const service of inst.services) {
    const iface = findInterface(inst, service.interface);
    if (iface !== undefined && iface.trustedIpv4.length + iface.trustedIpv6.length > 0) out.push(entryOf(inst, service, iface, healthOf(service), snap));
  }
  const agent = snap.agents.get(inst.key);
  if (agent !== undefined) out.push(...criticalAgentEntries(snap, inst.key, agent, undefined));
  out.push(...withheldEntries(snap, inst, undefined));
  return out.sort(byNodeThenId);
}

/** Every catalog entry of every running instance, sorted by node then ID: O(instances + services). */
export function allEntries(snap: View): CatalogEntry[] {
  const out: CatalogEntry[] = [];
  for (const inst of snap.running()) out.push(...instanceEntries(snap, inst));
  return out.sort(byNodeThenId);
}

/**
 * A service's health. Config services are passing unless the model gives them a health of their own (server-side
 * checks); agent services in a snapshot's served list are passing by construction (agents.ts).
 */
export function healthOf(service: Service): ServiceHealth {
  const health = (service as Service & { readonly health?: ServiceHealth }).health;
  return health === 'critical' ? 'critical' : 'passing';
}

/**
 * The agent's critical services of instance `key` (optionally only those named `only`) that the catalog lists:
 * those the instance may announce and no config declaration of the same name pins (the rules of servedServices,
 * agents.ts, with health left out).
 */
function criticalAgentEntries(snap: View, key: string, agent: AgentState, only: string | undefined): CatalogEntry[] {
  const inst = snap.instances.get(key);
  if (inst === undefined || !inst.running) return [];
  const pinned = new Set(inst.services.filter((s) => s.source === 'config').map((s) => s.name.toLowerCase()));
  const allow = allowListOf(inst, agent.defaultServices);
  const out: CatalogEntry[] = [];
  for (const s of agent.services) {
    const lname = s.name.toLowerCase();
    if (s.health !== 'critical' || (only !== undefined && lname !== only) || pinned.has(lname) || !mayAnnounce(allow, s.name)) continue;
    const iface = findInterface(inst, s.interface);
    if (iface !== undefined && iface.trustedIpv4.length + iface.trustedIpv6.length > 0) out.push(entryOf(inst, s, iface, 'critical'));
  }
  return out;
}

/**
 * The config services of `inst` (optionally only those named `only`) that their server-side check withholds: the
 * instance declares them (`declared`) but does not serve them (`services`). Listed critical, as Consul lists a
 * service whose check fails.
 */
function withheldEntries(snap: View, inst: Instance, only: string | undefined): CatalogEntry[] {
  if (!inst.running || inst.declared === undefined) return [];
  const served = new Set(inst.services.filter((s) => s.source === 'config'));
  const out: CatalogEntry[] = [];
  for (const s of inst.declared) {
    if (served.has(s) || (only !== undefined && s.name.toLowerCase() !== only)) continue;
    const iface = findInterface(inst, s.interface);
    if (iface !== undefined && iface.trustedIpv4.length + iface.trustedIpv6.length > 0) out.push(entryOf(inst, s, iface, 'critical', snap));
  }
  return out;
}

function entryOf(inst: Instance, service: Service, iface: NetInterface, health: ServiceHealth, snap?: View): CatalogEntry {
  const node = nodeOf(inst);
  return {
    instance: inst,
    node,
    id: `${node.name}:${service.name}:${service.port}:${service.proto}`,
    service,
    iface,
    address: iface.trustedIpv4[0] ?? iface.trustedIpv6[0] ?? '',
    health,
    output: outputOf(inst, service, health, snap),
  };
}

function outputOf(inst: Instance, service: Service, health: ServiceHealth, snap: View | undefined): string {
  if (service.source === 'agent')
    return health === 'passing' ? `the lexa agent in ${inst.name} reports its checks passing` : `the lexa agent in ${inst.name} reports a check failing`;
  if (service.check !== undefined) {
    const result = snap === undefined ? undefined : checkOf(snap.checks.get(inst.key), service.name);
    return result?.output ?? `lexa's check of ${service.name} on ${inst.name} has not run yet (critical until its first success)`;
  }
  if ((service as Service & { readonly health?: ServiceHealth }).health === undefined)
    return `declared in user.lexa.service.${service.name}; lexa runs no check for it: passing while ${inst.name} runs`;
  return health === 'passing' ? `lexa's check of ${service.name} on ${inst.name} passes` : `lexa's check of ${service.name} on ${inst.name} fails`;
}

/** A version-4-shaped UUID from the SHA-256 of `key`: the same key always gives the same ID. */
function uuidOf(key: string): string {
  const h = createHash('sha256').update(key).digest('hex');
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-4${h.slice(13, 16)}-8${h.slice(17, 20)}-${h.slice(20, 32)}`;
}

function byNodeThenId(a: CatalogEntry, b: CatalogEntry): number {
  return cmp(a.node.name, b.node.name) || cmp(a.id, b.id);
}

function cmp(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}
