import { isIPv4, isIPv6 } from 'node:net';
import { addressKey } from '../../streams/index.js';

/**
 * Reverse-DNS names (RFC 1035 §3.5 `in-addr.arpa`, RFC 3596 §2.5 `ip6.arpa`) and the reverse zones lexa serves:
 * pure conversions between addresses, subnets and names. Names here are lower-case without a trailing dot.
 */

export const IN_ADDR_ARPA = 'in-addr.arpa';
export const IP6_ARPA = 'ip6.arpa';

/**
 * The reverse zone that holds subnet `cidr` (`10.99.0.1/24` → `0.99.10.in-addr.arpa`, `fd42:99::1/64` →
 * `0.0.0.0.9.9.0.0.2.4.d.f.ip6.arpa`). Reverse names have a label per octet (IPv4) or nibble (IPv6), so a prefix
 * that is not on such a boundary is rounded down to one (`/20` → the `/16` zone, which holds it). Undefined for
 * anything that is not a CIDR, and for prefixes shorter than one label (`/0`..`/7`, `/0`..`/3`): lexa will not
 * claim a whole `in-addr.arpa` or `ip6.arpa`.
 */
export function reverseZoneOf(cidr: string): string | undefined {
  const m = /^([^/]+)\/(\d{1,3})$/.exec(cidr.trim());
  if (!m) return undefined;
  const [, ip, lenText] = m as unknown as [string, string, string];
  const len = Number(lenText);
  if (isIPv4(ip)) {
    if (len < 8 || len > 32) return undefined;
    const octets = ip.split('.').slice(0, Math.floor(len / 8));
    return [...octets.reverse(), IN_ADDR_ARPA].join('.');
  }
  const key = isIPv6(ip) ? addressKey(ip) : undefined;
  if (key === undefined || len < 4 || len > 128) return undefined;
  const nibbles = key.slice(0, Math.floor(len / 4)).split('');
  return [...nibbles.reverse(), IP6_ARPA].join('.');
}

/** The reverse name of an address (`10.99.0.5` → `5.0.99.10.in-addr.arpa`); undefined if it is not one. */
export function reverseNameOf(ip: string): string | undefined {
  const key = addressKey(ip);
  if (key === undefined) return undefined;
  const labels = isIPv4(ip) ? key.split('.') : key.split('');
  return [...labels.reverse(), isIPv4(ip) ? IN_ADDR_ARPA : IP6_ARPA].join('.');
}

/**
 * What the labels of a name below a reverse zone say (`labels` is the relative part, in name order, e.g.
 * `['5']` below `0.99.10.in-addr.arpa`): `address` when together with the zone they spell a whole address
 * (returned in the canonical text form), `partial` when they are a valid beginning of one (an empty non-terminal
 * at most), `none` when they cannot be part of an address (a label that is not a decimal octet or hex nibble,
 * or too many labels).
 */
export function reverseLabels(
  zone: string,
  labels: readonly string[],
): { readonly kind: 'address'; readonly ip: string } | { readonly kind: 'partial' } | { readonly kind: 'none' } {
  const v4 = zone.endsWith(IN_ADDR_ARPA);
  const zoneLabels = zone.split('.').slice(0, v4 ? -2 : -2);
  const all = [...labels, ...zoneLabels];
  const valid = v4 ? all.every((l) => /^(0|[1-9]\d{0,2})$/.test(l) && Number(l) <= 255) : all.every((l) => /^[0-9a-f]$/.test(l));
  const size = v4 ? 4 : 32;
  if (!valid || all.length > size) return { kind: 'none' };
  if (all.length < size) return { kind: 'partial' };
  const forward = [...all].reverse();
  if (v4) return { kind: 'address', ip: forward.join('.') };
  const groups: string[] = [];
  for (let i = 0; i < 32; i += 4) groups.push(forward.slice(i, i + 4).join(''));
  return { kind: 'address', ip: groups.join(':') };
}

/** Whether `name` is `zone` or below it (both lower-case, no trailing dot). */
export function isAtOrBelow(name: string, zone: string): boolean {
  return name === zone || (name.endsWith(zone) && name[name.length - zone.length - 1] === '.');
}
