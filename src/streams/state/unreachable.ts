import type { ClusterMember, Instance } from '../model/model.js';

/**
 * What lexa serves for an instance whose cluster member LXD cannot reach (the member's daemon or host died).
 *
 * LXD emits no event when a member dies. From that moment any member lists the dead member's instances with
 * status "Error" and no state, while it still lists the member itself as Online until missed heartbeats mark it
 * Offline (measured on LXD 5.0.2: ~10–20 s). The policy:
 *   - while LXD lists the member Online, an instance lexa last saw running keeps its last known record: a daemon
 *     restart or a short outage does not empty a load balancer's backend;
 *   - once LXD lists the member as anything else (Offline, Evacuated, ...), its instances are served as LXD
 *     reports them, i.e. not running, and leave DNS and REST: a host that is down took its containers with it;
 *   - when the member returns, LXD reports them Running again and they are back (the reflector re-lists).
 * Pure; used by the fold for lists and single reads alike.
 */
export function unreachableHeld(
  previous: Instance | undefined,
  next: Instance,
  members: ReadonlyMap<string, ClusterMember>,
  clustered: boolean,
): Instance {
  if (!clustered || next.status !== UNREACHABLE_STATUS || previous?.running !== true) return next;
  return members.get(next.location)?.status === 'Online' ? previous : next;
}

/** The status LXD 5.0 gives an instance whose member it cannot reach. */
export const UNREACHABLE_STATUS = 'Error';
