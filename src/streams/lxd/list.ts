import type { Logger } from '../../log/index.js';
import type { LxdClient } from './lxd-client.js';
import { readLeases } from './leases.js';
import { daemonKind, toInstance, toStandaloneMember, type DaemonKind, type LxdInstance } from './lxd-model.js';
import { lxdEnvironmentOf, lxdInstancesOf } from './wire-shapes.js';
import { readMembers } from './members.js';
import type { ClusterMember, Instance } from '../model/model.js';
import { readNetworks, type LxdNetwork } from './networks.js';
import { complete } from './refetch.js';
import { networkFacts, withLeases, type Evidence } from './trust.js';

/**
 * A list can catch an instance that started moments ago, before its addresses arrived; no event will follow. Those
 * that started within this window and lack addresses are re-read on the settle schedule. Bounded by recency so a
 * host full of IPv4-only instances is not polled after every re-list.
 */
export const RECENT_START_MS = 30_000;

/** The query naming the projects lexa watches, for the instance list and the events socket. */
export function scopeQuery(opts: { readonly project: string; readonly allProjects: boolean }): string {
  return opts.allProjects ? 'all-projects=true' : `project=${encodeURIComponent(opts.project)}`;
}

/** The instances of `list` running without all their addresses yet, started less than RECENT_START_MS before `now`. */
export function recentStarts(list: ListRead, now: number): Instance[] {
  return list.instances.filter((inst, i) => {
    const startedAt = Date.parse(list.raw[i]?.last_used_at ?? '');
    return inst.running && !complete(inst) && now - startedAt < RECENT_START_MS;
  });
}

/** What one full list read of LXD. */
export interface ListRead {
  /** LXD or Incus, and its version. */
  readonly daemon: DaemonKind;
  readonly clustered: boolean;
  /** The cluster's members, or the standalone LXD as its own member. */
  readonly members: ClusterMember[];
  /** The instances as LXD sent them, and as lexa models them (same order). */
  readonly raw: readonly LxdInstance[];
  readonly instances: Instance[];
  /** LXD's networks; undefined when they could not be read (the last ones read stay in force). */
  readonly networks: LxdNetwork[] | undefined;
  /** The trust evidence the instances were modelled with (trust.ts), for the refetcher to go on with. */
  readonly evidence: Evidence;
}

/**
 * Reads everything a full list needs: the server, instances (and members when clustered). LXD's networks are read
 * beside the instances, and the leases of every lease-backed network a running instance is on after them (one
 * request per network and project): a lease precedes the address it gives in `/state`, so every leased address
 * the list shows is in a lease list read after it, and is trusted (trust.ts). `known` is the evidence learnt so
 * far, asked for once the reads have landed: lease lists read meanwhile, for networks this list did not read,
 * stay. Rejects if a request of the server, instances or members fails, or once `signal` is aborted.
 */
export async function readList(
  client: LxdClient,
  log: Logger,
  scope: string,
  known: () => Evidence,
  signal: AbortSignal,
  /** The site the instances belong to (lxd-model.ts `toInstance`); absent for the unnamed one. */
  site?: string,
): Promise<ListRead> {
  const [server, listed, networks] = await Promise.all([
    client.get<unknown>('/1.0', signal),
    client.get<unknown>(`/1.0/instances?recursion=2&${scope}`, signal),
    readNetworks(client, log, signal),
  ]);
  const raw = lxdInstancesOf(listed);
  const environment = lxdEnvironmentOf((server as { environment?: unknown } | null)?.environment);
  const daemon = daemonKind(environment, client.target);
  const clustered = environment?.server_clustered === true;
  const facts = networks === undefined ? known().networks : networkFacts(networks);
  const [members, leases] = await Promise.all([
    clustered ? readMembers(client, log, signal) : [toStandaloneMember(environment)],
    readLeases(client, log, raw, facts, signal),
  ]);
  // The lease reads never reject: a list whose connection ended meanwhile must not land.
  signal.throwIfAborted();
  let evidence: Evidence = { networks: facts, leases: known().leases };
  for (const read of leases) evidence = withLeases(evidence, read.project, read.network, read.leases);
  const instances = raw.map((r) => toInstance(r, evidence, site));
  return { daemon, clustered, members, raw, instances, networks, evidence };
}
