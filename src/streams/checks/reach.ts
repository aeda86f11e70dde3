import { networkInterfaces } from 'node:os';
import { addressKey } from '../../net/addresses.js';
import { inSubnet } from '../lxd/trust.js';
import type { ClusterMember, Instance } from '../model/model.js';

/**
 * Which checks lexa can run from this host. A check lexa cannot run must not mark a service critical: the
 * service would vanish only because lexa stands in the wrong place. The rule:
 *   1. an address on no network this host is attached to (no interface's subnet holds it; a default route does
 *      not count) is not checked: the instance sits on a bridge of another machine, e.g. another cluster member;
 *   2. when LXD is clustered and this host is one of its members (one of its addresses is a member's), an
 *      instance located on another member is not checked: cluster members usually give their bridges the same
 *      subnet, so the address looks local while it is another machine's (the kernel would wait ~3 s on ARP, past
 *      the timeout, and call a healthy service dead);
 *   3. a run that fails because the kernel has no path (EHOSTUNREACH, ENETUNREACH, EHOSTDOWN, ENETDOWN) is not a
 *      failure of the service.
 * Such a check is `unreachable`: its service is served as if it declared no check, and the output says why.
 */

/** This host's addresses and the subnets of its interfaces (CIDR), as `os.networkInterfaces()` gives them. */
export interface HostNetworks {
  readonly addresses: readonly string[];
  readonly subnets: readonly string[];
}

/** Socket errors that mean this host has no path to the address (rule 3). */
export const UNREACHABLE_CODES: ReadonlySet<string> = new Set(['EHOSTUNREACH', 'ENETUNREACH', 'EHOSTDOWN', 'ENETDOWN']);

/** The networks of this host now; read again whenever the checks are reconciled. */
export function hostNetworks(): HostNetworks {
  const addresses: string[] = [];
  const subnets: string[] = [];
  for (const list of Object.values(networkInterfaces())) {
    for (const a of list ?? []) {
      addresses.push(a.address);
      if (a.cidr !== null) subnets.push(a.cidr);
    }
  }
  return { addresses, subnets };
}

/** Why a check of `inst` at `address` cannot be run from this host (rules 1 and 2), or undefined when it can. */
export function unreachableReason(
  inst: Instance,
  address: string,
  host: HostNetworks,
  cluster: { readonly clustered: boolean; readonly members: ReadonlyMap<string, ClusterMember> },
): string | undefined {
  if (!host.subnets.some((cidr) => inSubnet(address, cidr))) return `not checked: ${address} is on no network of this host`;
  if (!cluster.clustered) return undefined;
  const here = thisMember(host, cluster.members);
  if (here !== undefined && inst.location !== here)
    return `not checked: ${inst.name} runs on cluster member ${inst.location}, whose bridge this host (member ${here}) does not reach`;
  return undefined;
}

/** The cluster member this host is, found by its addresses; undefined when it is none of them. */
function thisMember(host: HostNetworks, members: ReadonlyMap<string, ClusterMember>): string | undefined {
  const mine = new Set<string | undefined>(host.addresses.map(addressKey));
  mine.delete(undefined);
  for (const m of members.values()) if ([...m.ipv4, ...m.ipv6].some((a) => mine.has(addressKey(a)))) return m.name;
  return undefined;
}
