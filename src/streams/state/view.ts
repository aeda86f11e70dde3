import type { Observable } from 'rxjs';
import type { AgentState, ClusterMember, Instance, InstanceChecks, ServiceEndpoint } from '../model/model.js';
import type { Action } from './fold.js';
import type { AddressOwner } from './snapshot.js';

/** A read-only table by key: what a PersistentMap offers readers (and a federation's merged tables). */
export interface Table<V> {
  readonly size: number;
  get(key: string): V | undefined;
  has(key: string): boolean;
  entries(): IterableIterator<[string, V]>;
  keys(): IterableIterator<string>;
  values(): IterableIterator<V>;
  [Symbol.iterator](): IterableIterator<[string, V]>;
}

/** What one site's cluster looks like: which member an instance's `cluster.` names point at. */
export interface SiteCluster {
  readonly members: ReadonlyMap<string, ClusterMember>;
  readonly clustered: boolean;
}

/** One site's health, as /readyz and the metrics report it. */
export interface SiteStatus {
  /** The site's label; null for the one unnamed site. */
  readonly name: string | null;
  readonly synced: boolean;
  readonly connected: boolean;
  readonly listedAt: number;
  readonly updatedAt: number;
}

/**
 * What every reader (the DNS core, REST, replication, the agent endpoint, metrics) sees of lexa's picture of LXD:
 * one site's Snapshot, or a Federation of several (federation.ts). Same contract as Snapshot: immutable, lookups
 * by host, service and address are hash lookups, names lower-cased. Lookups over several sites return the sites'
 * results in block order, so the first result's site is the first site that has any.
 */
export interface View extends SiteCluster {
  readonly instances: Table<Instance>;
  readonly agents: Table<AgentState>;
  /** The server-side checks' states of running instances, by instance key (Snapshot.checks). */
  readonly checks: Table<InstanceChecks>;
  /** True once a site has listed: answers start then (a site that never connects blocks nobody). */
  readonly synced: boolean;
  /** True once every site has listed: only then is a name found nowhere surely absent. */
  readonly complete: boolean;
  readonly connected: boolean;
  readonly listedAt: number;
  readonly updatedAt: number;
  readonly version: number;
  readonly subnets: readonly string[];
  /** The sites, in block order: one entry (named null) for a one-site configuration. */
  readonly sites: readonly SiteStatus[];
  hosts(host: string): readonly Instance[];
  hasHost(host: string): boolean;
  /** Whether any running instance claims an alias: lets a miss skip the alias lookup (and its name parse). */
  readonly hasAliases: boolean;
  /** Running instances claiming alias `name` (Snapshot.aliased), in block order. */
  aliased(name: string): readonly Instance[];
  matchHosts(pattern: string): Instance[];
  serviceEndpoints(name: string): readonly ServiceEndpoint[];
  addressOwners(ip: string): readonly AddressOwner[];
  holders(ip: string): readonly Instance[];
  running(): IterableIterator<Instance>;
  /** The cluster of the site `inst` belongs to. */
  clusterOf(inst: Instance): SiteCluster;
  /** Whether site `name` has listed (false for a site not configured). */
  siteSynced(name: string): boolean;
}

/** Where readers get the current view, and its changes; agents' actions are dispatched to it. */
export interface ViewStore {
  readonly current: View;
  readonly snapshot$: Observable<View>;
  dispatch(action: Action): void;
}
