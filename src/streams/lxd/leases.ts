import { describeError, type Logger } from '../../log/index.js';
import type { LxdClient } from './lxd-client.js';
import type { LxdInstance, LxdLease } from './lxd-model.js';
import { lxdLeasesOf } from './wire-shapes.js';
import { leaseScope, leasingNetworks, type Evidence } from './trust.js';

/** One network's DHCP lease list, as read for one project. */
export interface LeaseRead {
  readonly project: string;
  readonly network: string;
  readonly leases: LxdLease[];
}

/**
 * The lease lists of every lease-backed network (by `facts`) a running instance of `raw` is on, each read once
 * per project. Read after the instances: a lease precedes the address it gives in `/state`, so every leased
 * address a list shows is in a lease list read after it (trust.ts). A list that fails to read is left out (the
 * last one read stays in force). Never rejects.
 */
export async function readLeases(
  client: LxdClient,
  log: Logger,
  raw: readonly LxdInstance[],
  facts: Evidence['networks'],
  signal: AbortSignal,
): Promise<LeaseRead[]> {
  const scopes = new Map<string, { project: string; network: string }>();
  for (const r of raw) {
    if ((r.state?.status ?? r.status) !== 'Running') continue;
    const project = r.project || 'default';
    for (const network of leasingNetworks(r.expanded_devices, facts)) scopes.set(leaseScope(project, network), { project, network });
  }
  const lists = await Promise.all(
    [...scopes.values()].map(({ project, network }) =>
      client
        .get<unknown>(`/1.0/networks/${encodeURIComponent(network)}/leases?project=${encodeURIComponent(project)}`, signal)
        .then(
          (leases) => ({ project, network, leases: lxdLeasesOf(leases) }),
          (err) => {
            if (!signal.aborted) log.warn('lxd lease list failed', { network, project, error: describeError(err) });
            return undefined;
          },
        ),
    ),
  );
  return lists.filter((l) => l !== undefined);
}
