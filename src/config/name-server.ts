import { isIP } from 'node:net';
import { addressKey } from '../net/addresses.js';

/** The unspecified addresses (0.0.0.0 and ::) as addressKey spells them: a bind on one listens on every address. */
const UNSPECIFIED: ReadonlySet<string> = new Set(['0.0.0.0', '0'.repeat(32)]);

/**
 * The addresses of the zone's name server name (`server.dns.ns_addresses`), resolved once at load:
 *   - given: each must be a plain IPv4 or IPv6 address (no zone index, not 0.0.0.0 or ::), else a problem;
 *   - absent: the address of every DNS bind whose host is a specific address literal, in bind order. A wildcard
 *     bind (0.0.0.0, ::) or a host name gives none: lexa cannot know which of the host's addresses clients reach
 *     it by, and a guessed one (a bridge, a container network) would be published as the zone's server.
 * Duplicates (two spellings of one address, two ports on one address) are listed once.
 * `fromBinds` says the result is the default, so load.ts can warn when the binds gave nothing.
 */
export function nameServerAddresses(
  given: readonly string[] | null,
  bindHosts: readonly string[],
): { readonly addresses: readonly string[]; readonly problems: readonly string[]; readonly fromBinds: boolean } {
  const addresses: string[] = [];
  const problems: string[] = [];
  const seen = new Set<string>();
  const add = (ip: string): void => {
    const key = addressKey(ip)!;
    if (!seen.has(key)) {
      seen.add(key);
      addresses.push(ip);
    }
  };
  if (given === null) {
    for (const host of bindHosts) if (isSpecific(host)) add(host);
    return { addresses, problems, fromBinds: true };
  }
  for (const ip of given) {
    if (isSpecific(ip)) add(ip);
    else problems.push(`server.dns.ns_addresses: "${ip}" is not a specific IPv4 or IPv6 address (0.0.0.0, :: and zone indexes cannot be published)`);
  }
  return { addresses, problems, fromBinds: false };
}

/** An address literal other than the unspecified ones, without a zone index (`%eth0`, which DNS cannot carry). */
function isSpecific(host: string): boolean {
  if (isIP(host) === 0) return false;
  const key = addressKey(host);
  return key !== undefined && !UNSPECIFIED.has(key);
}
