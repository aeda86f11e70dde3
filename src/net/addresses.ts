import { isIPv4, isIPv6 } from 'node:net';

/**
 * Addresses as lexa compares them, and the reverse-DNS zone (RFC 1035 §3.5 `in-addr.arpa`, RFC 3596 §2.5
 * `ip6.arpa`) of a subnet: pure functions at the bottom of the import graph, because the config (reverse zones a
 * user names by CIDR), the model (addresses LXD reports) and the DNS answers all need the same spelling. Imports
 * nothing from lexa. Names here are lower-case without a trailing dot.
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

/**
 * One spelling per address: IPv4 as dotted quad, IPv6 as its 32 lower-case hex digits (so `fd42:99::1` and
 * `fd42:0099:0:0:0:0:0:1` meet). Undefined for anything that is not an address.
 */
export function addressKey(ip: string): string | undefined {
  if (isIPv4(ip)) return ip;
  if (!isIPv6(ip) || ip.includes('%')) return undefined;
  let text = ip.toLowerCase();
  // An embedded IPv4 tail (::ffff:1.2.3.4) becomes two hex groups.
  const v4 = /(\d+)\.(\d+)\.(\d+)\.(\d+)$/.exec(text);
  if (v4) {
    const [a, b, c, d] = v4.slice(1).map(Number) as [number, number, number, number];
    text = `${text.slice(0, v4.index)}${((a << 8) | b).toString(16)}:${((c << 8) | d).toString(16)}`;
  }
  const [head, tail] = text.includes('::') ? (text.split('::') as [string, string]) : [text, undefined];
  const left = head === '' ? [] : head.split(':');
  const right = tail === undefined || tail === '' ? [] : tail.split(':');
  const fill = tail === undefined ? [] : new Array<string>(8 - left.length - right.length).fill('0');
  return [...left, ...fill, ...right].map((g) => g.padStart(4, '0')).join('');
}
