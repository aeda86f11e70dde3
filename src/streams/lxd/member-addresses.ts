import { lookup as dnsLookup } from 'node:dns/promises';
import { isIP } from 'node:net';
import type { ClusterMember } from '../model/model.js';

/**
 * Cluster members' addresses for `cluster.<instance>` answers. LXD lists each member with its API URL, whose host
 * may be an address (kept as is by toMember) or a host name: those are resolved here, when the member list is
 * read, so the snapshot carries addresses and no DNS query ever waits on a lookup.
 */

/** How long one member's host-name lookup may take; a member whose name does not resolve in time has no address. */
export const MEMBER_LOOKUP_TIMEOUT_MS = 3_000;

/** Resolves a host name to its addresses (node:dns `lookup`, i.e. what the system resolver and /etc/hosts say). */
export type HostLookup = (host: string) => Promise<readonly { readonly address: string; readonly family: number }[]>;

export const systemLookup: HostLookup = (host) => dnsLookup(host, { all: true, verbatim: true });

/**
 * The members with the addresses of every member whose URL names a host, resolved with `lookup`. Never rejects: a
 * name that does not resolve (or not within MEMBER_LOOKUP_TIMEOUT_MS) leaves that member without addresses (its
 * `cluster.` names answer NODATA) and is reported through `onProblem`.
 */
export async function resolveMemberHosts(
  members: readonly ClusterMember[],
  lookup: HostLookup = systemLookup,
  onProblem: (member: string, host: string, error: string) => void = () => undefined,
): Promise<ClusterMember[]> {
  return Promise.all(
    members.map(async (m) => {
      const host = urlHost(m.url);
      if (host === undefined || isIP(host) !== 0 || m.ipv4.length + m.ipv6.length > 0) return m;
      try {
        const found = await withTimeout(lookup(host), MEMBER_LOOKUP_TIMEOUT_MS);
        const v4 = found.filter((a) => a.family === 4 && isIP(a.address) === 4).map((a) => a.address);
        const v6 = found.filter((a) => a.family === 6 && isIP(a.address) === 6).map((a) => a.address);
        return { ...m, ipv4: [...new Set(v4)], ipv6: [...new Set(v6)] };
      } catch (err) {
        onProblem(m.name, host, (err as Error).message);
        return m;
      }
    }),
  );
}

function urlHost(url: string): string | undefined {
  try {
    const host = new URL(url).hostname.replace(/^\[|\]$/g, '');
    return host === '' ? undefined : host;
  } catch {
    return undefined;
  }
}

function withTimeout<T>(p: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`no answer within ${ms} ms`)), ms);
  });
  return Promise.race([p, timeout]).finally(() => clearTimeout(timer));
}
