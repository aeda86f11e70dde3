import type { ClusterMember, Instance, NetInterface, Service } from '../../src/streams/model/model.js';
import { Snapshot } from '../../src/streams/state/snapshot.js';
import { NO_TRAEFIK_LABELS } from '../../src/streams/model/traefik-labels.js';

/** Hand-built model values for unit tests (no LXD involved). */

/**
 * An interface with these addresses, all of which LXD vouches for unless `trusted` names the subset it does
 * (trust.ts; `{}` for none, as on an interface the instance made itself).
 */
export function iface(
  name: string,
  ipv4: string[] = [],
  ipv6: string[] = [],
  trusted: { ipv4?: string[]; ipv6?: string[] } = { ipv4, ipv6 },
): NetInterface {
  return { name, ipv4, ipv6, trustedIpv4: trusted.ipv4 ?? [], trustedIpv6: trusted.ipv6 ?? [] };
}

export function service(name: string, over: Partial<Service> = {}): Service {
  return {
    name,
    port: 443,
    proto: 'tcp',
    tags: [],
    interface: null,
    priority: 1,
    weight: 1,
    source: 'config',
    ...over,
  };
}

export function instance(name: string, over: Partial<Instance> = {}): Instance {
  const project = over.project ?? 'default';
  const running = over.running ?? true;
  return {
    key: `${project}/${name}`,
    name,
    project,
    type: 'container',
    status: running ? 'Running' : 'Stopped',
    running,
    location: 'none',
    interfaces: [],
    services: [],
    traefik: NO_TRAEFIK_LABELS,
    configErrors: [],
    profiles: [],
    ...over,
  };
}

export function member(name: string, ipv4: string[], ipv6: string[] = []): ClusterMember {
  return { name, url: `https://${ipv4[0] ?? name}:8443`, status: 'Online', ipv4, ipv6 };
}

/** A synced snapshot of exactly these instances and members, deep-frozen so no reader can modify it. */
export function snapshotOf(
  instances: Instance[],
  members: ClusterMember[] = [],
  clustered = members.length > 0,
  at = AT,
): Snapshot {
  return Snapshot.empty().withList(deepFreeze(instances), deepFreeze(members), clustered, at);
}

/** The time fixture snapshots are made at; the SOA serial is this in seconds. */
export const AT = 1_700_000_000_000;
export const SERIAL = AT / 1000;

export function deepFreeze<T>(value: T): T {
  if (value !== null && typeof value === 'object' && !Object.isFrozen(value)) {
    Object.freeze(value);
    for (const v of Object.values(value)) deepFreeze(v);
  }
  return value;
}

/** A deterministic source of numbers in [0, 1) (a small LCG), for shuffled answers in tests. */
export function seeded(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s / 0x1_0000_0000;
  };
}
