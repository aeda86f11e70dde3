import { HEADER_BYTES, skipName } from '../../dns/wire.js';

/**
 * How long an HTTP cache may keep a DoH reply (RFC 8484 §5.1): the smallest TTL among the answer and authority
 * records; for a negative answer, whose authority carries an SOA, the SOA's TTL and its MINIMUM field both count
 * (RFC 2308 §5). An SOA asked for (in the answer section) is an ordinary record: its MINIMUM does not count.
 * 0 when the reply has no such records, or cannot be walked (it is our own encoder's output, so that would be a
 * bug, and 0 is the harmless answer).
 *
 * Reads the wire format directly rather than decoding the message: only the record headers are looked at.
 */
export function cacheMaxAge(reply: Uint8Array): number {
  if (reply.length < HEADER_BYTES) return 0;
  const u16 = (at: number) => (reply[at]! << 8) | reply[at + 1]!;
  const u32 = (at: number) => ((u16(at) << 16) | u16(at + 2)) >>> 0;
  const questions = u16(4);
  const answers = u16(6);
  const records = answers + u16(8); // answer + authority; additional (OPT, glue) does not count
  let off = HEADER_BYTES;
  for (let i = 0; i < questions; i++) {
    off = skipName(reply, off);
    if (off < 0) return 0;
    off += 4; // QTYPE, QCLASS
  }
  let min = Infinity;
  for (let i = 0; i < records; i++) {
    off = skipName(reply, off);
    if (off < 0 || off + RR_FIXED_BYTES > reply.length) return 0;
    const type = u16(off);
    const ttl = ttlSeconds(u32(off + 4));
    const rdlength = u16(off + 8);
    off += RR_FIXED_BYTES;
    if (off + rdlength > reply.length) return 0;
    min = Math.min(min, ttl);
    // An SOA in the authority section makes the answer negative (RFC 2308 §3). Its RDATA ends with five 32-bit
    // fields, MINIMUM last; the two names before them need no parsing.
    if (i >= answers && type === TYPE_SOA && rdlength >= SOA_MIN_RDATA) {
      min = Math.min(min, ttlSeconds(u32(off + rdlength - 4)));
    }
    off += rdlength;
  }
  return min === Infinity ? 0 : min;
}

/** TYPE, CLASS, TTL, RDLENGTH. */
const RR_FIXED_BYTES = 10;
const TYPE_SOA = 6;
/** Two root names (1 byte each) and SERIAL, REFRESH, RETRY, EXPIRE, MINIMUM. */
const SOA_MIN_RDATA = 2 + 20;
/** RFC 2181 §8: a TTL with the top bit set is to be treated as zero. */
const MAX_TTL = 0x7fffffff;

function ttlSeconds(ttl: number): number {
  return ttl > MAX_TTL ? 0 : ttl;
}

