/**
 * Which names from LXD may become DNS names. lexa derives names from instance and interface names
 * (`<host>.<suffix>`, `<if>.if.<host>.<suffix>`, SRV targets, PTR targets, the zone a secondary transfers), and
 * those must be labels a client can ask for and the encoder can write. Linux allows interface names such as
 * `a..b`, `eth0.100`, `*` or `a@b`, and LXD reports them as they are: a dot would split or empty a label, `*`
 * would be a wildcard in a secondary's copy of the zone, and anything else is not a name anyone types.
 *
 * The rule: 1..63 characters from letters, digits, `-` and `_` (RFC 1123 host labels, plus the underscore that
 * interface names often carry). A name that breaks it is not offered as a DNS name at all; its addresses still
 * answer wherever they need no name of their own (the instance's name when it is the primary interface, service
 * A records).
 */
export function isDnsLabel(text: string): boolean {
  if (text.length === 0 || text.length > MAX_LABEL) return false;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    const letterOrDigit = (c >= 0x30 && c <= 0x39) || (c >= 0x41 && c <= 0x5a) || (c >= 0x61 && c <= 0x7a);
    if (!letterOrDigit && c !== 0x2d && c !== 0x5f) return false;
  }
  return true;
}

/** RFC 1035 §2.3.4: a label is at most 63 octets. */
const MAX_LABEL = 63;

