import { isIPv4, isIPv6 } from 'node:net';
import type { ClusterMember, Instance, NetInterface, ServiceEndpoint } from './model.js';

/**
 * An immutable view of LXD at one moment, indexed for the lookups the servers make.
 *
 * Contract: a Snapshot and everything reachable from it is never modified after construction; "changing" it
 * returns a new Snapshot that shares all untouched instances with the old one. Lookups by host name and by
 * service name are hash lookups; they do not grow with the number of instances. Host and service names are
 * indexed lower-cased, and callers must pass lower-cased names.
 */
export class Snapshot {
  /** Running instances by lower-cased host name (several when projects reuse a name). */
  readonly #hosts: ReadonlyMap<string, readonly Instance[]>;
  /** Endpoints of running instances by lower-cased service name. */
  readonly #services: ReadonlyMap<string, readonly ServiceEndpoint[]>;
  /** Running host names, sorted; built on first wildcard lookup after a change. */
  #sortedHosts: readonly string[] | undefined;
  /** Interfaces of running instances by address (see `addressKey`); built on the first reverse lookup. */
  #byAddress: ReadonlyMap<string, readonly AddressOwner[]> | undefined;

  private constructor(
    /** Every instance LXD reported (running or not), by `project/name`. */
    readonly instances: ReadonlyMap<string, Instance>,
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
    hosts: ReadonlyMap<string, readonly Instance[]>,
    services: ReadonlyMap<string, readonly ServiceEndpoint[]>,
    sortedHosts?: readonly string[],
    /**
     * The subnets (CIDR, e.g. `10.99.0.1/24`) of LXD's managed networks, as their `ipv4.address`/`ipv6.address`
     * say: the bridges instances get addresses on. Empty until LXD's networks have been read.
     */
    readonly subnets: readonly string[] = NONE,
  ) {
    this.#hosts = hosts;
    this.#services = services;
    this.#sortedHosts = sortedHosts;
  }

  static empty(): Snapshot {
    return new Snapshot(new Map(), new Map(), false, false, false, 0, Date.now(), 0, new Map(), new Map());
  }

  /** A snapshot holding exactly `instances` and `members`: what a full list of LXD produces. */
  withList(
    instances: readonly Instance[],
    members: readonly ClusterMember[],
    clustered: boolean,
    at: number,
  ): Snapshot {
    const byKey = new Map<string, Instance>();
    for (const inst of instances) byKey.set(inst.key, inst);
    const hosts = new Map<string, Instance[]>();
    const services = new Map<string, ServiceEndpoint[]>();
    for (const inst of byKey.values()) indexInstance(hosts, services, inst);
    return new Snapshot(
      byKey,
      new Map(members.map((m) => [m.name, m])),
      clustered,
      true,
      this.connected,
      at,
      at,
      this.version + 1,
      hosts,
      services,
      undefined,
      this.subnets,
    );
  }

  /** Adds or replaces one instance. Only the index entries of its old and new names and services change. */
  withInstance(inst: Instance, at: number = Date.now()): Snapshot {
    const old = this.instances.get(inst.key);
    if (old !== undefined && sameInstance(old, inst)) return this;
    const instances = new Map(this.instances);
    instances.set(inst.key, inst);
    return this.#reindexed(instances, old, inst, at);
  }

  /** Removes one instance by key; unchanged if absent. */
  withoutInstance(key: string, at: number = Date.now()): Snapshot {
    const old = this.instances.get(key);
    if (old === undefined) return this;
    const instances = new Map(this.instances);
    instances.delete(key);
    return this.#reindexed(instances, old, undefined, at);
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
  #with(patch: Partial<Pick<Snapshot, 'members' | 'clustered' | 'connected' | 'subnets'>>, at: number): Snapshot {
    return new Snapshot(
      this.instances,
      patch.members ?? this.members,
      patch.clustered ?? this.clustered,
      this.synced,
      patch.connected ?? this.connected,
      this.listedAt,
      at,
      this.version + 1,
      this.#hosts,
      this.#services,
      this.#sortedHosts,
      patch.subnets ?? this.subnets,
    );
  }

  /** Running instances named `host` (lower-cased). Usually zero or one; several only across projects. */
  hosts(host: string): readonly Instance[] {
    return this.#hosts.get(host) ?? NONE;
  }

  /** Whether any running instance has this exact (lower-cased) host name. */
  hasHost(host: string): boolean {
    return this.#hosts.has(host);
  }

  /**
   * Running instances whose lower-cased name matches `pattern`, where `*` matches any run of characters
   * (possibly empty). The literal text before the first `*` narrows the search by binary search over the sorted
   * names, so `web-*` costs O(log N + matches) rather than a scan of every instance.
   */
  matchHosts(pattern: string): Instance[] {
    const star = pattern.indexOf('*');
    if (star < 0) return [...this.hosts(pattern)];
    const prefix = pattern.slice(0, star);
    const re = wildcardRegExp(pattern);
    const names = this.#sorted();
    const out: Instance[] = [];
    for (let i = lowerBound(names, prefix); i < names.length; i++) {
      const name = names[i]!;
      if (!name.startsWith(prefix)) break;
      if (re.test(name)) out.push(...this.hosts(name));
    }
    return out;
  }

  /** Endpoints of running instances offering service `name` (lower-cased). */
  serviceEndpoints(name: string): readonly ServiceEndpoint[] {
    return this.#services.get(name) ?? NONE;
  }

  /**
   * The interfaces of running instances that hold address `ip` (any spelling: `addressKey` normalises it), in no
   * particular order. Usually one; several when projects or interfaces share an address. The index is built on
   * the first call for each snapshot (one pass over the running instances), so a lookup is a hash lookup after it.
   */
  addressOwners(ip: string): readonly AddressOwner[] {
    if (this.#byAddress === undefined) {
      const index = new Map<string, AddressOwner[]>();
      for (const instance of this.running()) {
        for (const iface of instance.interfaces) {
          for (const a of [...iface.ipv4, ...iface.ipv6]) {
            const key = addressKey(a);
            if (key === undefined) continue;
            const list = index.get(key);
            if (list) list.push({ instance, iface });
            else index.set(key, [{ instance, iface }]);
          }
        }
      }
      this.#byAddress = index;
    }
    const key = addressKey(ip);
    return key === undefined ? NONE : (this.#byAddress.get(key) ?? NONE);
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

  #reindexed(instances: Map<string, Instance>, old: Instance | undefined, neu: Instance | undefined, at: number) {
    const hosts = new Map(this.#hosts) as Map<string, readonly Instance[]>;
    const services = new Map(this.#services) as Map<string, readonly ServiceEndpoint[]>;
    // The sorted names survive unless the set of names changes: an instance replaced under the same name (its
    // addresses or services changed) removes its name and adds it back.
    let removedName: string | undefined;
    let addedName: string | undefined;
    if (old?.running) {
      const lname = old.name.toLowerCase();
      const rest = (hosts.get(lname) ?? NONE).filter((i) => i.key !== old.key);
      if (rest.length === 0) {
        hosts.delete(lname);
        removedName = lname;
      } else hosts.set(lname, rest);
      for (const svc of new Set(old.services.map((s) => s.name.toLowerCase()))) {
        const restSvc = (services.get(svc) ?? NONE).filter((e) => e.instance.key !== old.key);
        if (restSvc.length === 0) services.delete(svc);
        else services.set(svc, restSvc);
      }
    }
    if (neu?.running) {
      const lname = neu.name.toLowerCase();
      if (!hosts.has(lname)) addedName = lname;
      hosts.set(lname, [...(hosts.get(lname) ?? NONE), neu]);
      for (const ep of endpointsOf(neu)) {
        const svc = ep.service.name.toLowerCase();
        services.set(svc, [...(services.get(svc) ?? NONE), ep]);
      }
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
      hosts,
      services,
      removedName !== addedName ? undefined : this.#sortedHosts,
      this.subnets,
    );
  }
}

const NONE: readonly never[] = Object.freeze([]);

/** An interface of a running instance that holds a given address. */
export interface AddressOwner {
  readonly instance: Instance;
  readonly iface: NetInterface;
}

/**
 * One spelling per address: IPv4 as dotted quad, IPv6 as its 32 lower-case hex digits (so `fd42:99::1` and
 * `fd42:0099:0:0:0:0:0:1` meet). Undefined for anything that is not an address.
 */
export function addressKey(ip: string): string | undefined {
  if (isIPv4(ip)) return ip;
  if (!isIPv6(ip) || ip.includes('%')) return undefined;
  let text = ip.toLowerCase();
  // An embedded IPv4 tail (::ffff:1.2.3.4) becomes two hex groups.
  const v4 = /(\d+)\.(\d+)\.(\d+)\.(\d+)$/.exec(text);
  if (v4) {
    const [a, b, c, d] = v4.slice(1).map(Number) as [number, number, number, number];
    text = `${text.slice(0, v4.index)}${((a << 8) | b).toString(16)}:${((c << 8) | d).toString(16)}`;
  }
  const [head, tail] = text.includes('::') ? (text.split('::') as [string, string]) : [text, undefined];
  const left = head === '' ? [] : head.split(':');
  const right = tail === undefined || tail === '' ? [] : tail.split(':');
  const fill = tail === undefined ? [] : new Array<string>(8 - left.length - right.length).fill('0');
  return [...left, ...fill, ...right].map((g) => g.padStart(4, '0')).join('');
}

function indexInstance(
  hosts: Map<string, Instance[]>,
  services: Map<string, ServiceEndpoint[]>,
  inst: Instance,
): void {
  if (!inst.running) return;
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

/** The named interface (case-insensitive), or the primary one when `name` is null. */
export function findInterface(inst: Instance, name: string | null): NetInterface | undefined {
  if (name === null) return inst.interfaces[0];
  const lname = name.toLowerCase();
  return inst.interfaces.find((i) => i.name.toLowerCase() === lname);
}

function wildcardRegExp(pattern: string): RegExp {
  const body = pattern
    .split('*')
    .map((part) => part.replace(/[.*+?^${}()|[\]\\]/g, '\\$&'))
    .join('.*');
  return new RegExp(`^${body}$`);
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
