import { addressKey } from '../../net/addresses.js';
import { declaredServices, withServed } from '../model/agents.js';
import { checkOf, findInterface } from '../model/health.js';
import { Glob } from './glob.js';
import type { AgentState, CheckResult, ClusterMember, Instance, InstanceChecks, NetInterface, ServiceEndpoint } from '../model/model.js';
import { PersistentMap } from './pmap.js';
import type { SiteCluster, SiteStatus, View } from './view.js';

export { findInterface };

/**
 * An immutable view of LXD at one moment, indexed for the lookups the servers make.
 *
 * Contract: a Snapshot and everything reachable from it is never modified after construction; "changing" it
 * returns a new Snapshot that shares all untouched instances with the old one. Lookups by host name and by
 * service name are hash lookups; they do not grow with the number of instances. Host and service names are
 * indexed lower-cased, and callers must pass lower-cased names.
 *
 * The instance table, the agent states and every index are persistent maps (pmap.ts): one instance or one agent
 * changed costs O(log N) new trie nodes, not a copy of N entries, so folding an LXD event or an agent's message
 * stays flat as a host grows to 10,000 instances.
 */
export class Snapshot implements View {
  /** Running instances by lower-cased host name (several when projects reuse a name). */
  readonly #hosts: PersistentMap<readonly Instance[]>;
  /** Endpoints of running instances by lower-cased service name. */
  readonly #services: PersistentMap<readonly ServiceEndpoint[]>;
  /**
   * Interfaces of running instances by trusted address (one spelling per address: `addressKey`): which instance an
   * agent's connection comes from, and what a reverse (PTR) lookup names. Only addresses LXD vouches for count.
   */
  readonly #addresses: PersistentMap<readonly AddressOwner[]>;
  /** Running instances by each of their `user.lexa.alias` names (as aliases.ts stores them). */
  readonly #aliases: PersistentMap<readonly Instance[]>;
  /**
   * Running host names, sorted: built on the first wildcard lookup after a full list, then carried from snapshot
   * to snapshot, a name added or removed by one binary-search splice (a copy of N pointers at fold time) so no
   * later wildcard query ever sorts.
   */
  #sortedHosts: readonly string[] | undefined;

  private constructor(
    /** Every instance LXD reported (running or not), by `project/name`. */
    readonly instances: PersistentMap<Instance>,
    /** Cluster members by name; empty when LXD is not clustered. */
    readonly members: ReadonlyMap<string, ClusterMember>,
    /** Whether LXD reported itself clustered on the last list. */
    readonly clustered: boolean,
    /** True once a full list of LXD has been loaded; never goes back to false. */
    readonly synced: boolean,
    /** Whether the events connection to LXD is up right now. */
    readonly connected: boolean,
    /** Epoch ms of the last full list (0 before the first). */
    readonly listedAt: number,
    /** Epoch ms this snapshot was made. */
    readonly updatedAt: number,
    /** Increments on every change; lets readers tell snapshots apart cheaply. */
    readonly version: number,
    /**
     * What the agent inside each running instance last said, by instance key. An instance's `services` already
     * include its agent's passing services (agents.ts); this keeps the whole state, critical services included.
     */
    readonly agents: PersistentMap<AgentState>,
    indexes: Indexes,
    sortedHosts: readonly string[] | undefined,
    /**
     * The subnets (CIDR, e.g. `10.99.0.1/24`) of LXD's managed networks, as their `ipv4.address`/`ipv6.address`
     * say: the bridges instances get addresses on. Empty until LXD's networks have been read.
     */
    readonly subnets: readonly string[],
    /**
     * The server-side checks' states of each running instance, by instance key (checks/checker.ts). Kept beside
     * the instances, as agent states are, so an LXD re-read of an instance does not wipe them; an instance's
     * `services` already leave out the config services its checks withhold (agents.ts).
     */
    readonly checks: PersistentMap<InstanceChecks>,
  ) {
    this.#hosts = indexes.hosts;
    this.#services = indexes.services;
    this.#addresses = indexes.addresses;
    this.#aliases = indexes.aliases;
    this.#sortedHosts = sortedHosts;
  }

  static empty(): Snapshot {
    const none = PersistentMap.empty<never>();
    return new Snapshot(none, new Map(), false, false, false, 0, Date.now(), 0, none, { hosts: none, services: none, addresses: none, aliases: none }, undefined, NONE, none);
  }

  /**
   * A snapshot holding exactly `instances` and `members`: what a full list of LXD produces. Agent and check states
   * survive for instances the list shows running, and are dropped for the rest (stopped or gone: whatever the
   * agent said, whatever the checks saw).
   */
  withList(
    instances: readonly Instance[],
    members: readonly ClusterMember[],
    clustered: boolean,
    at: number,
  ): Snapshot {
    const byKey = new Map<string, Instance>();
    const agents = new Map<string, AgentState>();
    const checks = new Map<string, InstanceChecks>();
    for (const listed of instances) {
      const agent = listed.running ? this.agents.get(listed.key) : undefined;
      if (agent) agents.set(listed.key, agent);
      const results = listed.running ? checksOf(listed, this.checks.get(listed.key)) : undefined;
      if (results) checks.set(listed.key, results);
      byKey.set(listed.key, withServed(listed, agent, results));
    }
    const hosts = new Map<string, Instance[]>();
    const services = new Map<string, ServiceEndpoint[]>();
    const addresses = new Map<string, AddressOwner[]>();
    const aliases = new Map<string, Instance[]>();
    for (const inst of byKey.values()) indexInstance(hosts, services, addresses, aliases, inst);
    return new Snapshot(
      PersistentMap.of(byKey),
      new Map(members.map((m) => [m.name, m])),
      clustered,
      true,
      this.connected,
      at,
      at,
      this.version + 1,
      agents.size === this.agents.size ? this.agents : PersistentMap.of(agents),
      { hosts: PersistentMap.of(hosts), services: PersistentMap.of(services), addresses: PersistentMap.of(addresses), aliases: PersistentMap.of(aliases) },
      undefined,
      this.subnets,
      checks.size === 0 && this.checks.size === 0 ? this.checks : PersistentMap.of(checks),
    );
  }

  /**
   * Adds or replaces one instance (as LXD reports it: config services only; its agent's are added here). Only the
   * index entries of its old and new names and services change. An instance that is not running loses its agent
   * and check states at once; a running one keeps the states of the checks it still declares.
   */
  withInstance(read: Instance, at: number = Date.now()): Snapshot {
    const agent = read.running ? this.agents.get(read.key) : undefined;
    const before = this.checks.get(read.key);
    const results = read.running ? checksOf(read, before) : undefined;
    const inst = withServed(read, agent, results);
    const old = this.instances.get(inst.key);
    const agents = agent === undefined ? this.agents.delete(read.key) : this.agents;
    const checks = results === before ? this.checks : results === undefined ? this.checks.delete(read.key) : this.checks.set(read.key, results);
    if (old !== undefined && agents === this.agents && checks === this.checks && sameInstance(old, inst)) return this;
    return this.#reindexed(this.instances.set(inst.key, inst), old, inst, at, agents, checks);
  }

  /**
   * Records one server-side check's new state for service `service` of instance `key`. Ignored (same snapshot)
   * when the instance is unknown, not running or no longer declares a check for that service, or when nothing
   * changed. Costs what one instance's change costs: O(its services + log N).
   */
  withCheck(key: string, service: string, result: CheckResult, at: number = Date.now()): Snapshot {
    const old = this.instances.get(key);
    const name = service.toLowerCase();
    if (old === undefined || !old.running || !declaredServices(old).some((s) => s.check !== undefined && s.name.toLowerCase() === name)) return this;
    const before = this.checks.get(key);
    const was = checkOf(before, name);
    if (was !== undefined && was.target === result.target && was.status === result.status && was.output === result.output) return this;
    const results: InstanceChecks = { ...before, [name]: result };
    const checks = this.checks.set(key, results);
    const inst = withServed(old, this.agents.get(key), results);
    if (inst === old) return this.#with({}, at, this.agents, checks);
    return this.#reindexed(this.instances.set(key, inst), old, inst, at, this.agents, checks);
  }

  /** Removes one instance by key (and its agent and check states); unchanged if absent. */
  withoutInstance(key: string, at: number = Date.now()): Snapshot {
    const old = this.instances.get(key);
    if (old === undefined) return this;
    return this.#reindexed(this.instances.delete(key), old, undefined, at, this.agents.delete(key), this.checks.delete(key));
  }

  /**
   * Records what the agent in instance `key` says. Ignored (same snapshot) when the instance is unknown or not
   * running: an agent speaks only for a running instance. Costs what one instance's LXD change costs: that
   * instance's index entries are replaced, O(its services + log N), whatever the number of instances.
   */
  withAgent(key: string, state: AgentState, at: number = Date.now()): Snapshot {
    const old = this.instances.get(key);
    if (old === undefined || !old.running) return this;
    const before = this.agents.get(key);
    // A re-announcement of the same state (after a reconnect, say) changes nothing a reader can see.
    if (
      before?.session === state.session &&
      before.connected === state.connected &&
      JSON.stringify(before.services) === JSON.stringify(state.services) &&
      JSON.stringify(before.defaultServices) === JSON.stringify(state.defaultServices)
    )
      return this;
    const agents = this.agents.set(key, state);
    const inst = withServed(old, state, this.checks.get(key));
    const instances = inst === old ? this.instances : this.instances.set(key, inst);
    return this.#reindexed(instances, old, inst, at, agents, this.checks);
  }

  /**
   * Forgets instance `key`'s agent state, if it is still the state of connection `session` (a newer connection's
   * state stays). Its services leave at once.
   */
  withoutAgent(key: string, session: string, at: number = Date.now()): Snapshot {
    const state = this.agents.get(key);
    const old = this.instances.get(key);
    if (state === undefined || state.session !== session) return this;
    const agents = this.agents.delete(key);
    if (old === undefined) return this.#with({}, at, agents);
    const inst = withServed(old, undefined, this.checks.get(key));
    const instances = inst === old ? this.instances : this.instances.set(key, inst);
    return this.#reindexed(instances, old, inst, at, agents, this.checks);
  }

  /**
   * Running instances holding address `ip` (any interface, any spelling) with LXD's word for it: an address an
   * instance merely added to its own interfaces is not held (see NetInterface). A hash lookup.
   */
  holders(ip: string): readonly Instance[] {
    const owners = this.addressOwners(ip);
    if (owners.length <= 1) return owners.map((o) => o.instance);
    return [...new Set(owners.map((o) => o.instance))];
  }

  /**
   * The interfaces of running instances that hold address `ip` with LXD's word for it (any spelling: `addressKey`
   * normalises it), in no particular order. Usually one; several when projects or interfaces share an address. A hash lookup.
   */
  addressOwners(ip: string): readonly AddressOwner[] {
    const key = addressKey(ip);
    return key === undefined ? NONE : (this.#addresses.get(key) ?? NONE);
  }

  withMembers(members: readonly ClusterMember[], clustered: boolean, at: number = Date.now()): Snapshot {
    return this.#with({ members: new Map(members.map((m) => [m.name, m])), clustered }, at);
  }

  /** The managed networks' subnets; unchanged (the same snapshot) when equal to the current ones. */
  withSubnets(subnets: readonly string[], at: number = Date.now()): Snapshot {
    if (subnets.length === this.subnets.length && subnets.every((s, i) => s === this.subnets[i])) return this;
    return this.#with({ subnets }, at);
  }

  withConnected(connected: boolean, at: number = Date.now()): Snapshot {
    if (connected === this.connected) return this;
    return this.#with({ connected }, at);
  }

  /** A copy with `patch` applied, the same indexes, a new time and the next version. */
  #with(patch: Partial<Pick<Snapshot, 'members' | 'clustered' | 'connected' | 'subnets'>>, at: number, agents = this.agents, checks = this.checks): Snapshot {
    return new Snapshot(
      this.instances,
      patch.members ?? this.members,
      patch.clustered ?? this.clustered,
      this.synced,
      patch.connected ?? this.connected,
      this.listedAt,
      at,
      this.version + 1,
      agents,
      { hosts: this.#hosts, services: this.#services, addresses: this.#addresses, aliases: this.#aliases },
      this.#sortedHosts,
      patch.subnets ?? this.subnets,
      checks,
    );
  }

  /** A one-site view is complete once it has listed. */
  get complete(): boolean {
    return this.synced;
  }

  /** The one unnamed site (View.sites). */
  get sites(): readonly SiteStatus[] {
    return [{ name: null, synced: this.synced, connected: this.connected, listedAt: this.listedAt, updatedAt: this.updatedAt }];
  }

  /** One site: every instance is on this snapshot's cluster. */
  clusterOf(_inst: Instance): SiteCluster {
    return this;
  }

  /** One unnamed site: no name is a site of it. */
  siteSynced(_name: string): boolean {
    return false;
  }

  /** Running instances named `host` (lower-cased). Usually zero or one; several only across projects. */
  hosts(host: string): readonly Instance[] {
    return this.#hosts.get(host) ?? NONE;
  }

  get hasAliases(): boolean {
    return this.#aliases.size > 0;
  }

  /**
   * Running instances claiming alias `name` (`user.lexa.alias`, as aliases.ts stores it: `www`, or `www.lexa.`
   * for an absolute one). A hash lookup.
   */
  aliased(name: string): readonly Instance[] {
    return this.#aliases.get(name) ?? NONE;
  }

  /** Whether any running instance has this exact (lower-cased) host name. */
  hasHost(host: string): boolean {
    return this.#hosts.has(host);
  }

  /**
   * Running instances whose lower-cased name matches `pattern`, where `*` matches any run of characters
   * (possibly empty). The literal text before the first `*` narrows the search by binary search over the sorted
   * names, so `web-*` costs O(log N + candidates) rather than a scan of every instance. Each candidate costs at
   * most O(len(name) × len(pattern)) (glob.ts: no backtracking), whatever the pattern; a pattern starting with
   * `*` tests every running name, so a query's work is at most N such tests (measured in docs/security.md,
   * "Bounded work per query").
   */
  matchHosts(pattern: string): Instance[] {
    if (!pattern.includes('*')) return [...this.hosts(pattern)];
    const glob = new Glob(pattern);
    const names = this.#sorted();
    const out: Instance[] = [];
    for (let i = lowerBound(names, glob.prefix); i < names.length; i++) {
      const name = names[i]!;
      if (!name.startsWith(glob.prefix)) break;
      if (glob.matches(name)) out.push(...this.hosts(name));
    }
    return out;
  }

  /** Endpoints of running instances offering service `name` (lower-cased). */
  serviceEndpoints(name: string): readonly ServiceEndpoint[] {
    return this.#services.get(name) ?? NONE;
  }

  /**
   * Instances of `project` (running or not) that use `profile`. A scan: it serves only `profile-updated` events,
   * which are rare, so no index is kept for it.
   */
  instancesUsingProfile(project: string, profile: string): Instance[] {
    const out: Instance[] = [];
    for (const inst of this.instances.values()) if (inst.project === project && inst.profiles.includes(profile)) out.push(inst);
    return out;
  }

  /** Every running instance, in no particular order. */
  *running(): IterableIterator<Instance> {
    for (const list of this.#hosts.values()) yield* list;
  }

  #sorted(): readonly string[] {
    if (this.#sortedHosts === undefined) this.#sortedHosts = [...this.#hosts.keys()].sort();
    return this.#sortedHosts;
  }

  #reindexed(
    instances: PersistentMap<Instance>,
    old: Instance | undefined,
    neu: Instance | undefined,
    at: number,
    agents: PersistentMap<AgentState>,
    checks: PersistentMap<InstanceChecks>,
  ) {
    let hosts = this.#hosts;
    let services = this.#services;
    let addresses = this.#addresses;
    let aliases = this.#aliases;
    // The sorted names survive unless the set of names changes: an instance replaced under the same name (its
    // addresses or services changed) removes its name and adds it back.
    let removedName: string | undefined;
    let addedName: string | undefined;
    if (old?.running) {
      const lname = old.name.toLowerCase();
      const rest = (hosts.get(lname) ?? NONE).filter((i) => i.key !== old.key);
      if (rest.length === 0) {
        hosts = hosts.delete(lname);
        removedName = lname;
      } else hosts = hosts.set(lname, rest);
      for (const svc of new Set(old.services.map((s) => s.name.toLowerCase()))) {
        const restSvc = (services.get(svc) ?? NONE).filter((e) => e.instance.key !== old.key);
        services = restSvc.length === 0 ? services.delete(svc) : services.set(svc, restSvc);
      }
      for (const ip of addressKeysOf(old)) {
        const restIp = (addresses.get(ip) ?? NONE).filter((o) => o.instance.key !== old.key);
        addresses = restIp.length === 0 ? addresses.delete(ip) : addresses.set(ip, restIp);
      }
      for (const alias of old.aliases ?? NONE) {
        const restAlias = (aliases.get(alias) ?? NONE).filter((i) => i.key !== old.key);
        aliases = restAlias.length === 0 ? aliases.delete(alias) : aliases.set(alias, restAlias);
      }
    }
    if (neu?.running) {
      const lname = neu.name.toLowerCase();
      if (!hosts.has(lname)) addedName = lname;
      hosts = hosts.set(lname, [...(hosts.get(lname) ?? NONE), neu]);
      for (const ep of endpointsOf(neu)) {
        const svc = ep.service.name.toLowerCase();
        services = services.set(svc, [...(services.get(svc) ?? NONE), ep]);
      }
      for (const [ip, owners] of ownersOf(neu)) addresses = addresses.set(ip, [...(addresses.get(ip) ?? NONE), ...owners]);
      for (const alias of neu.aliases ?? NONE) aliases = aliases.set(alias, [...(aliases.get(alias) ?? NONE), neu]);
    }
    return new Snapshot(
      instances,
      this.members,
      this.clustered,
      this.synced,
      this.connected,
      this.listedAt,
      at,
      this.version + 1,
      agents,
      { hosts, services, addresses, aliases },
      removedName === addedName ? this.#sortedHosts : resorted(this.#sortedHosts, removedName, addedName),
      this.subnets,
      checks,
    );
  }
}

/** The indexes over running instances a snapshot carries. */
interface Indexes {
  readonly hosts: PersistentMap<readonly Instance[]>;
  readonly services: PersistentMap<readonly ServiceEndpoint[]>;
  readonly addresses: PersistentMap<readonly AddressOwner[]>;
  readonly aliases: PersistentMap<readonly Instance[]>;
}

/** An interface of a running instance that holds a given address. */
export interface AddressOwner {
  readonly instance: Instance;
  readonly iface: NetInterface;
}

/**
 * An instance's interfaces by the keys of the addresses they hold that LXD vouches for (an address on two
 * interfaces has two owners). Addresses an instance only gave itself own nothing: they must not bind an agent
 * nor answer a PTR (trust.ts).
 */
function ownersOf(inst: Instance): Map<string, AddressOwner[]> {
  const out = new Map<string, AddressOwner[]>();
  for (const iface of inst.interfaces) {
    for (const a of [...iface.trustedIpv4, ...iface.trustedIpv6]) {
      const key = addressKey(a);
      if (key === undefined) continue;
      const list = out.get(key);
      if (list === undefined) out.set(key, [{ instance: inst, iface }]);
      else if (!list.some((o) => o.iface === iface)) list.push({ instance: inst, iface });
    }
  }
  return out;
}

function addressKeysOf(inst: Instance): Iterable<string> {
  return ownersOf(inst).keys();
}

/**
 * The check states of `inst` still worth keeping: those of services it declares with a check (a removed service's
 * state goes with it). The same object when all stay; undefined when none does.
 */
function checksOf(inst: Instance, results: InstanceChecks | undefined): InstanceChecks | undefined {
  if (results === undefined) return undefined;
  const names = new Set(declaredServices(inst).filter((s) => s.check !== undefined).map((s) => s.name.toLowerCase()));
  const kept = Object.entries(results).filter(([name]) => names.has(name));
  if (kept.length === Object.keys(results).length) return results;
  return kept.length === 0 ? undefined : Object.fromEntries(kept);
}

/** `sorted` without `removed` and with `added` (either may be absent); undefined stays undefined (not built yet). */
function resorted(sorted: readonly string[] | undefined, removed: string | undefined, added: string | undefined) {
  if (sorted === undefined) return undefined;
  const out = [...sorted];
  if (removed !== undefined) {
    const at = lowerBound(out, removed);
    if (out[at] === removed) out.splice(at, 1);
  }
  if (added !== undefined) {
    const at = lowerBound(out, added);
    if (out[at] !== added) out.splice(at, 0, added);
  }
  return out;
}

const NONE: readonly never[] = Object.freeze([]);

function indexInstance(
  hosts: Map<string, Instance[]>,
  services: Map<string, ServiceEndpoint[]>,
  addresses: Map<string, AddressOwner[]>,
  aliases: Map<string, Instance[]>,
  inst: Instance,
): void {
  if (!inst.running) return;
  for (const alias of inst.aliases ?? NONE) {
    const list = aliases.get(alias);
    if (list) list.push(inst);
    else aliases.set(alias, [inst]);
  }
  for (const [ip, owners] of ownersOf(inst)) {
    const list = addresses.get(ip);
    if (list) list.push(...owners);
    else addresses.set(ip, [...owners]);
  }
  const lname = inst.name.toLowerCase();
  const list = hosts.get(lname);
  if (list) list.push(inst);
  else hosts.set(lname, [inst]);
  for (const ep of endpointsOf(inst)) {
    const svc = ep.service.name.toLowerCase();
    const eps = services.get(svc);
    if (eps) eps.push(ep);
    else services.set(svc, [ep]);
  }
}

/**
 * The endpoints an instance offers: one per service whose interface exists. A service declared on an interface
 * the instance does not have is not offered (the original lexa's rule).
 */
export function endpointsOf(inst: Instance): ServiceEndpoint[] {
  const out: ServiceEndpoint[] = [];
  for (const service of inst.services) {
    const iface = findInterface(inst, service.interface);
    if (iface) out.push({ instance: inst, service, iface });
  }
  return out;
}

/**
 * Whether an endpoint may be served under the service's shared names (SRV records, `/traefik`): its interface has
 * an address LXD vouches for (NetInterface). A service on an interface the instance made itself, or whose only
 * addresses are ones it gave itself, is not offered to other instances' traffic.
 */
export function servesEndpoint(ep: ServiceEndpoint): boolean {
  return ep.iface.trustedIpv4.length + ep.iface.trustedIpv6.length > 0;
}

function lowerBound(sorted: readonly string[], key: string): number {
  let lo = 0;
  let hi = sorted.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (sorted[mid]! < key) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

/** Structural equality of two instances, so an event that changed nothing lexa serves emits no new snapshot. */
export function sameInstance(a: Instance, b: Instance): boolean {
  return JSON.stringify(a) === JSON.stringify(b);
}
