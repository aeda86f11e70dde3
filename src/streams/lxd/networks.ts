/** LXD's networks as lexa needs them: the subnets of the managed ones (the bridges instances get addresses on). */

import { describeError, type Logger } from '../../log/index.js';
import type { LxdClient } from './lxd-client.js';
import { lxdNetworksOf } from './wire-shapes.js';

/** The fields lexa reads from `/1.0/networks?recursion=1`. */
export interface LxdNetwork {
  readonly name?: string;
  readonly managed?: boolean;
  /** `bridge`, `ovn`, `macvlan`, `sriov`, `physical`, ...: whether LXD hands out (and lists) addresses on it. */
  readonly type?: string;
  readonly config?: Readonly<Record<string, string | null | undefined>>;
}

/**
 * The subnets of managed networks, as CIDR with the gateway address LXD holds (`10.99.0.1/24`,
 * `fd42:99::1/64`), sorted so equal lists compare equal. `ipv4.address`/`ipv6.address` may be `none`, `auto`
 * (only before LXD resolves it) or absent: none of those is a subnet. Never throws.
 */
export function toSubnets(networks: readonly LxdNetwork[]): string[] {
  const out = new Set<string>();
  for (const n of Array.isArray(networks) ? networks : []) {
    if (n?.managed !== true) continue;
    for (const key of ['ipv4.address', 'ipv6.address']) {
      const v = n.config?.[key];
      if (typeof v === 'string' && /^[0-9a-fA-F:.]+\/\d{1,3}$/.test(v)) out.add(v);
    }
  }
  return [...out].sort();
}

/**
 * Reads LXD's networks: their subnets (the reverse zones lexa derives) and which hand out addresses (trust.ts).
 * Never rejects: a failure resolves undefined, so the caller keeps what the last list learnt (the reverse zones,
 * the networks' facts) until the next list, and never costs the instances.
 */
export function readNetworks(client: LxdClient, log: Logger, signal: AbortSignal): Promise<LxdNetwork[] | undefined> {
  return client.get<unknown>('/1.0/networks?recursion=1', signal).then(
    (n) => lxdNetworksOf(n),
    (err) => {
      if (!signal.aborted) log.warn('lxd network list failed', { error: describeError(err) });
      return undefined;
    },
  );
}
