import { isIPv4, isIPv6 } from 'node:net';
import { addressKey, IN_ADDR_ARPA, IP6_ARPA } from '../net/addresses.js';

/**
 * Reverse-DNS names (RFC 1035 §3.5 `in-addr.arpa`, RFC 3596 §2.5 `ip6.arpa`) and the reverse zones lexa serves:
 * pure conversions between addresses, subnets and names. Names here are lower-case without a trailing dot.
 */

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
