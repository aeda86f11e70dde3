import { isDnsLabel } from './dns-label.js';

/** The key naming an instance's extra names: on the instance or any of its profiles (LXD expands profiles). */
export const ALIAS_KEY = 'user.lexa.alias';

/**
 * The most aliases one instance may claim. The key is tenant-writable text; a bound keeps the alias index and
 * every REST document small whatever a tenant writes (a few names per instance is the use).
 */
export const MAX_ALIASES = 16;

/** DNS's limit on a name in text without the trailing dot. */
const MAX_NAME_CHARS = 253;

/**
 * `user.lexa.alias`: comma-separated names, each either a relative name (`www`, `shop.www`: answered below the
 * suffix, and below each site's label like a host name) or an absolute one ending in a dot (`www.lexa.`: that
 * exact name, which must be inside the suffix to be answered: dns/resolve.ts). Lower-cased, deduplicated, in
 * the key's order. A name whose labels are not DNS labels (dns-label.ts), a wildcard, or one past the bound is
 * refused with a problem naming the key; the others stay.
 */
export function parseAliases(config: Readonly<Record<string, string>> | null | undefined): { aliases: string[]; errors: string[] } {
  const raw = config?.[ALIAS_KEY];
  if (raw === undefined) return { aliases: [], errors: [] };
  const aliases: string[] = [];
  const errors: string[] = [];
  for (const part of raw.split(',')) {
    const name = part.trim().toLowerCase();
    if (name === '') continue;
    const relative = name.endsWith('.') ? name.slice(0, -1) : name;
    if (relative.length > MAX_NAME_CHARS || !relative.split('.').every(isDnsLabel)) {
      errors.push(`${ALIAS_KEY}: ${JSON.stringify(part.trim().slice(0, 80))} is not a DNS name (labels of letters, digits, - and _)`);
      continue;
    }
    if (aliases.includes(name)) continue;
    if (aliases.length === MAX_ALIASES) {
      errors.push(`${ALIAS_KEY}: more than ${MAX_ALIASES} names; the rest are ignored`);
      break;
    }
    aliases.push(name);
  }
  return { aliases, errors };
}
