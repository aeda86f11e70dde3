import { BehaviorSubject, combineLatest, type Observable } from 'rxjs';
import type { AgentState, ClusterMember, Instance, InstanceChecks, ServiceEndpoint } from '../model/model.js';
import type { Action } from './fold.js';
import type { AddressOwner, Snapshot } from './snapshot.js';
import type { SnapshotStore } from './store.js';
import type { SiteCluster, SiteStatus, Table, View, ViewStore } from './view.js';

/** One named site's picture, as its own reflector keeps it. */
export interface SitePicture {
  readonly name: string;
  readonly snapshot: Snapshot;
}

/**
 * Several sites seen as one (docs/sites.md): each site keeps its own Snapshot (its own reflector, list and
 * failure), and this view answers over all of them in block order. Building one costs O(sites); lookups by host,
 * service and address ask each site (O(sites) hash lookups) and return the sites' results in block order, so a
 * reader that wants "the first site that has it" takes the first result's site. The merged instance and agent
 * tables are views too (no copy); the union of subnets and members is built on first read.
 *
 * Instances of a named site carry `site` and keys `<site>/<project>/<name>`, so keys never collide across sites.
 */
export class Federation implements View {
  readonly #sites: readonly SitePicture[];
  readonly #byName: ReadonlyMap<string, Snapshot>;
  #subnets: readonly string[] | undefined;
  #members: ReadonlyMap<string, ClusterMember> | undefined;
  readonly instances: Table<Instance>;
  readonly agents: Table<AgentState>;
  readonly checks: Table<InstanceChecks>;

  constructor(sites: readonly SitePicture[], readonly version: number) {
    this.#sites = sites;
    this.#byName = new Map(sites.map((s) => [s.name, s.snapshot]));
    this.instances = new MergedTable(sites.map((s) => s.snapshot.instances), (key) => this.#byName.get(siteOfKey(key))?.instances);
    this.agents = new MergedTable(sites.map((s) => s.snapshot.agents), (key) => this.#byName.get(siteOfKey(key))?.agents);
    this.checks = new MergedTable(sites.map((s) => s.snapshot.checks), (key) => this.#byName.get(siteOfKey(key))?.checks);
  }

  get synced(): boolean {
    return this.#sites.some((s) => s.snapshot.synced);
  }

  get complete(): boolean {
    return this.#sites.every((s) => s.snapshot.synced);
  }

  /** Every site's events connection is up. */
  get connected(): boolean {
    return this.#sites.every((s) => s.snapshot.connected);
  }

  /** The oldest site's last list (0 while a site has never listed): how stale the least fresh site may be. */
  get listedAt(): number {
    return Math.min(...this.#sites.map((s) => s.snapshot.listedAt));
  }

  get updatedAt(): number {
    return Math.max(...this.#sites.map((s) => s.snapshot.updatedAt));
  }

  get clustered(): boolean {
    return this.#sites.some((s) => s.snapshot.clustered);
  }

  /** Every site's members by name (the first site's wins a shared name); `clusterOf` gives one site's. */
  get members(): ReadonlyMap<string, ClusterMember> {
    if (this.#members === undefined) {
      const out = new Map<string, ClusterMember>();
      for (const s of this.#sites) for (const [name, m] of s.snapshot.members) if (!out.has(name)) out.set(name, m);
      this.#members = out;
    }
    return this.#members;
  }

  /** Every site's subnets, deduplicated in block order: PTR covers every site. */
  get subnets(): readonly string[] {
    this.#subnets ??= [...new Set(this.#sites.flatMap((s) => s.snapshot.subnets))];
    return this.#subnets;
  }

  get sites(): readonly SiteStatus[] {
    return this.#sites.map(({ name, snapshot: s }) => ({ name, synced: s.synced, connected: s.connected, listedAt: s.listedAt, updatedAt: s.updatedAt }));
  }

  hosts(host: string): readonly Instance[] {
    return this.#concat((s) => s.hosts(host));
  }

  get hasAliases(): boolean {
    return this.#sites.some((s) => s.snapshot.hasAliases);
  }

  aliased(name: string): readonly Instance[] {
    return this.#concat((s) => s.aliased(name));
  }

  hasHost(host: string): boolean {
    return this.#sites.some((s) => s.snapshot.hasHost(host));
  }

  matchHosts(pattern: string): Instance[] {
    return this.#sites.flatMap((s) => s.snapshot.matchHosts(pattern));
  }

  serviceEndpoints(name: string): readonly ServiceEndpoint[] {
    return this.#concat((s) => s.serviceEndpoints(name));
  }

  addressOwners(ip: string): readonly AddressOwner[] {
    return this.#concat((s) => s.addressOwners(ip));
  }

  holders(ip: string): readonly Instance[] {
    return this.#concat((s) => s.holders(ip));
  }

  *running(): IterableIterator<Instance> {
    for (const s of this.#sites) yield* s.snapshot.running();
  }

  clusterOf(inst: Instance): SiteCluster {
    return (inst.site === undefined ? undefined : this.#byName.get(inst.site)) ?? NO_CLUSTER;
  }

  siteSynced(name: string): boolean {
    return this.#byName.get(name)?.synced === true;
  }

  /** The sites' results in block order; no copy when at most one site has any (the common case). */
  #concat<T>(get: (s: Snapshot) => readonly T[]): readonly T[] {
    let only: readonly T[] | undefined;
    let all: T[] | undefined;
    for (const site of this.#sites) {
      const found = get(site.snapshot);
      if (found.length === 0) continue;
      if (only === undefined) only = found;
      else (all ??= [...only]).push(...found);
    }
    return all ?? only ?? NONE;
  }
}

const NONE: readonly never[] = Object.freeze([]);
const NO_CLUSTER: SiteCluster = Object.freeze({ members: new Map<string, ClusterMember>(), clustered: false });

/** The site label a named site's key starts with (`<site>/<project>/<name>`). */
function siteOfKey(key: string): string {
  const at = key.indexOf('/');
  return at < 0 ? '' : key.slice(0, at);
}

/** The tables of every site as one, read-only: keys carry their site, so a key is looked up in its site only. */
class MergedTable<V> implements Table<V> {
  constructor(
    readonly parts: readonly Table<V>[],
    readonly partOf: (key: string) => Table<V> | undefined,
  ) {}

  get size(): number {
    let n = 0;
    for (const p of this.parts) n += p.size;
    return n;
  }

  get(key: string): V | undefined {
    return this.partOf(key)?.get(key);
  }

  has(key: string): boolean {
    return this.partOf(key)?.has(key) === true;
  }

  *entries(): IterableIterator<[string, V]> {
    for (const p of this.parts) yield* p.entries();
  }

  *keys(): IterableIterator<string> {
    for (const p of this.parts) yield* p.keys();
  }

  *values(): IterableIterator<V> {
    for (const p of this.parts) yield* p.values();
  }

  [Symbol.iterator](): IterableIterator<[string, V]> {
    return this.entries();
  }
}

/**
 * The store readers see when there are several sites: each site's SnapshotStore (fed by its own reflector)
 * combined into a Federation on every change of any of them. Agents' actions go to the store of the site their
 * instance key names; a change of the default allow list goes to every site.
 */
export class FederatedStore implements ViewStore {
  readonly #sites: readonly { readonly name: string; readonly store: SnapshotStore }[];
  readonly #state: BehaviorSubject<Federation>;
  readonly snapshot$: Observable<Federation>;
  #version = 0;

  constructor(sites: readonly { readonly name: string; readonly store: SnapshotStore }[]) {
    this.#sites = sites;
    const pictures = () => sites.map(({ name, store }) => ({ name, snapshot: store.current }));
    this.#state = new BehaviorSubject(new Federation(pictures(), 0));
    // Each store replays its current snapshot on subscribe, so the first combination is the state at start.
    combineLatest(sites.map((s) => s.store.snapshot$)).subscribe((snapshots) => {
      this.#state.next(new Federation(snapshots.map((snapshot, i) => ({ name: sites[i]!.name, snapshot })), ++this.#version));
    });
    this.snapshot$ = this.#state.asObservable();
  }

  get current(): Federation {
    return this.#state.getValue();
  }

  dispatch(action: Action): void {
    if (action.type === 'agent-default') {
      for (const s of this.#sites) s.store.dispatch(action);
      return;
    }
    if (action.type === 'agent-services' || action.type === 'agent-gone' || action.type === 'check') {
      const site = siteOfKey(action.key);
      this.#sites.find((s) => s.name === site)?.store.dispatch(action);
    }
    // LXD's own actions come from each site's reflector straight into that site's store, never through here.
  }
}
