import type { LxdAddress, LxdEvent, LxdInstance, LxdLease, LxdMember, LxdNetworkState, LxdServerEnvironment } from './lxd-model.js';
import type { LxdNetwork } from './networks.js';

/**
 * LXD's answers as parsed JSON → the wire types of lxd-model.ts: each field kept only when it has the declared
 * type, else dropped as if absent (a list that is not an array is empty). Everything lexa reads from LXD passes
 * through here at the read, so the translation after it (lxd-model.ts, trust.ts, the reflector) may rely on the
 * declared types. Why: `npm run fuzz` (the lxd target) found an instance whose name was a number stopping the
 * store for good (the fold threw), and an event whose action was a number throwing in the events handler.
 * Never throws.
 */

type Json = Record<string, unknown>;

const object = (v: unknown): Json | undefined => (typeof v === 'object' && v !== null && !Array.isArray(v) ? (v as Json) : undefined);
const text = (v: unknown): string | undefined => (typeof v === 'string' ? v : undefined);
const list = (v: unknown): unknown[] => (Array.isArray(v) ? v : []);

/** A map's entries whose values are strings (Object.fromEntries: a key such as `__proto__` stays a plain key). */
function strings(v: unknown): Record<string, string> | undefined {
  const o = object(v);
  return o && Object.fromEntries(Object.entries(o).filter((e): e is [string, string] => typeof e[1] === 'string'));
}

/** A map's entries whose values are objects, each read by `read`. */
function objects<T>(v: unknown, read: (o: unknown) => T | undefined): Record<string, T> | undefined {
  const o = object(v);
  if (o === undefined) return undefined;
  const out: [string, T][] = [];
  for (const [k, x] of Object.entries(o)) {
    const r = read(x);
    if (r !== undefined) out.push([k, r]);
  }
  return Object.fromEntries(out);
}

function address(v: unknown): LxdAddress | undefined {
  const o = object(v);
  return o && { family: text(o['family']), address: text(o['address']), scope: text(o['scope']) };
}

function networkState(v: unknown): LxdNetworkState | undefined {
  const o = object(v);
  return o && { type: text(o['type']), addresses: list(o['addresses']).flatMap((a) => address(a) ?? []) };
}

/** An instance record (`recursion=1` or `2`). */
export function lxdInstanceOf(v: unknown): LxdInstance {
  const o = object(v) ?? {};
  const state = object(o['state']);
  return {
    name: text(o['name']),
    project: text(o['project']),
    type: text(o['type']),
    status: text(o['status']),
    location: text(o['location']),
    last_used_at: text(o['last_used_at']),
    profiles: list(o['profiles']).filter((p): p is string => typeof p === 'string'),
    config: strings(o['config']),
    expanded_config: strings(o['expanded_config']),
    expanded_devices: objects(o['expanded_devices'], strings),
    state: state && { status: text(state['status']), network: objects(state['network'], networkState) },
  };
}

/** An instance list (`GET /1.0/instances?recursion=2`). */
export function lxdInstancesOf(v: unknown): LxdInstance[] {
  return list(v).map(lxdInstanceOf);
}

/** A lifecycle (or any) event from `/1.0/events`. */
export function lxdEventOf(v: unknown): LxdEvent {
  const o = object(v) ?? {};
  const m = object(o['metadata']);
  return {
    type: text(o['type']),
    timestamp: text(o['timestamp']),
    location: text(o['location']),
    project: text(o['project']),
    metadata: m && {
      action: text(m['action']),
      source: text(m['source']),
      context: object(m['context']) ?? null,
      name: text(m['name']),
      project: text(m['project']),
    },
  };
}

/** Cluster members (`GET /1.0/cluster/members?recursion=1`). */
export function lxdMembersOf(v: unknown): LxdMember[] {
  return list(v).flatMap((x) => {
    const o = object(x);
    return o ? [{ server_name: text(o['server_name']), url: text(o['url']), status: text(o['status']) }] : [];
  });
}

/** `GET /1.0`'s environment. */
export function lxdEnvironmentOf(v: unknown): LxdServerEnvironment | undefined {
  const o = object(v);
  return (
    o && {
      server: text(o['server']),
      server_version: text(o['server_version']),
      server_name: text(o['server_name']),
      server_clustered: o['server_clustered'] === true,
      addresses: list(o['addresses']).filter((a): a is string => typeof a === 'string'),
    }
  );
}

/** A network's DHCP leases (`GET /1.0/networks/<network>/leases`). */
export function lxdLeasesOf(v: unknown): LxdLease[] {
  return list(v).flatMap((x) => {
    const o = object(x);
    return o ? [{ hostname: text(o['hostname']), hwaddr: text(o['hwaddr']), address: text(o['address']), type: text(o['type']), location: text(o['location']) }] : [];
  });
}

/** Networks (`GET /1.0/networks?recursion=1`). */
export function lxdNetworksOf(v: unknown): LxdNetwork[] {
  return list(v).flatMap((x) => {
    const o = object(x);
    return o ? [{ name: text(o['name']), managed: o['managed'] === true, type: text(o['type']), config: strings(o['config']) }] : [];
  });
}
