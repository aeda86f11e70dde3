import { Buffer } from 'node:buffer';
import type { View } from '../streams/index.js';
import type { HandleQuery } from './handler.js';
import { HEADER_BYTES, replySize, type ReplyLimit } from './wire.js';

/**
 * Answers computed once per snapshot: a lever on the query path's cost. Between two changes of LXD the same
 * question always gets the same records, so the reply's bytes are kept, keyed by what they depend on (the
 * question's bytes, the reply size limit, whether the query had EDNS and its DO bit), and a repeated query only
 * copies them and patches its ID and RD bit. Everything else (decode, resolve, encode, fit) runs once per key
 * and snapshot.
 *
 * Contract (what makes a cached reply byte-for-byte what the full path would send):
 *   - only plain queries take this path: one question, no answer or authority records, at most one additional
 *     that is a version-0 OPT owned by the root with nothing after it; anything else goes to `full` every time;
 *   - the key holds the question exactly as sent (case included: owner names point at it) and the size limit as
 *     the full path computes it, so truncation is the same; entries are found by a 32-bit hash of it and
 *     compared byte for byte, so a hash collision costs a miss, never a wrong answer;
 *   - the whole cache is dropped when the snapshot changes (by identity), so no answer outlives the data it was
 *     made from; SERVFAIL before the first list is cached only until then, like everything else;
 *   - answer order is still shuffled: the first VARIANTS misses of a key each compute a fresh reply (a new random
 *     order), later hits rotate among them (a reply with at most one answer record keeps one variant).
 * Bounded: at most MAX_KEYS keys; past that the cache starts over (a flood of random names costs misses, never
 * memory).
 */

/** Orders kept per question: clients (HAProxy, forwarders) see rotation among these. */
export const VARIANTS = 4;
/** Keys per snapshot before starting over: every name of a 10,000-instance zone twice over, ~10 MB at most. */
const MAX_KEYS = 20_000;

const TYPE_OPT = 41;

/** The parts of a plain query's key, read by readKey into one object per cache (nothing allocated per query). */
interface KeyParts {
  /** FNV-1a over the question's bytes, the size limit and the EDNS state: the entries' map key. */
  hash: number;
  /** Where the question ends (after QTYPE and QCLASS). */
  end: number;
  size: number;
  /** 0: no EDNS; 1: EDNS with DO clear; 2: EDNS with DO set. */
  edns: number;
}

interface Entry {
  /** The question's bytes (from the first label to QCLASS), the size limit and EDNS state it answers. */
  readonly question: Uint8Array;
  readonly size: number;
  readonly edns: number;
  readonly variants: Buffer[];
  /** No more variants to compute: VARIANTS of them, or one when the answer has at most one record. */
  full: boolean;
  next: number;
}

export function cachedAnswers(full: HandleQuery, snapshot: () => View): HandleQuery {
  let cachedFor: View | undefined;
  let entries = new Map<number, Entry>();
  const key: KeyParts = { hash: 0, end: 0, size: 0, edns: 0 };
  return (query, limit) => {
    if (!readKey(query, limit, key)) return full(query, limit);
    const snap = snapshot();
    if (snap !== cachedFor) {
      cachedFor = snap;
      entries = new Map();
    }
    let entry = entries.get(key.hash);
    if (entry !== undefined && !sameKey(entry, query, key)) entry = undefined; // a collision: this one is new
    if (entry !== undefined && entry.full) {
      const variant = entry.variants[entry.next]!;
      entry.next = (entry.next + 1) % entry.variants.length;
      return patched(variant, query);
    }
    const reply = full(query, limit);
    if (reply === null) return null;
    const stored = Buffer.from(reply);
    if (entry === undefined) {
      if (entries.size >= MAX_KEYS) entries = new Map();
      const single = stored.length >= HEADER_BYTES && ((stored[6]! << 8) | stored[7]!) <= 1;
      const question = Uint8Array.prototype.slice.call(query, HEADER_BYTES, key.end);
      entries.set(key.hash, { question, size: key.size, edns: key.edns, variants: [stored], full: single, next: 0 });
    } else {
      entry.variants.push(stored);
      entry.full = entry.variants.length >= VARIANTS;
    }
    return reply;
  };
}

/** A copy of `reply` carrying `query`'s ID and RD bit. */
function patched(reply: Buffer, query: Uint8Array): Buffer {
  const out = Buffer.allocUnsafe(reply.length);
  reply.copy(out);
  out[0] = query[0]!;
  out[1] = query[1]!;
  out[2] = (out[2]! & 0xfe) | (query[2]! & 0x01);
  return out;
}

/** Whether `entry` answers the query whose key `key` read: the same question bytes, size limit and EDNS state. */
function sameKey(entry: Entry, q: Uint8Array, key: KeyParts): boolean {
  const question = entry.question;
  if (entry.size !== key.size || entry.edns !== key.edns || question.length !== key.end - HEADER_BYTES) return false;
  for (let i = 0; i < question.length; i++) if (question[i] !== q[HEADER_BYTES + i]) return false;
  return true;
}

/**
 * The hash of a plain query's cache key, or undefined when the query is anything else (see the contract); equal
 * keys give equal hashes. For tests: the cache reads keys with readKey.
 */
export function cacheKey(q: Uint8Array, limit: ReplyLimit): number | undefined {
  const key: KeyParts = { hash: 0, end: 0, size: 0, edns: 0 };
  return readKey(q, limit, key) ? key.hash : undefined;
}

const FNV_OFFSET = 0x811c9dc5;
const FNV_PRIME = 0x01000193;

/**
 * Reads the key of a plain query into `key` (false when the query is anything else, see the contract): the
 * question's bytes, the size limit the full path would fit the reply to, and the EDNS state (none, or present
 * with DO 0/1), hashed. Allocates nothing: the string key it replaces (the question as latin1, plus the size and
 * EDNS state) cost ~15% of the UDP path's JavaScript time in a profile under dnsperf (docs/performance.md).
 */
function readKey(q: Uint8Array, limit: ReplyLimit, key: KeyParts): boolean {
  const len = q.length;
  if (len < HEADER_BYTES) return false;
  // QR=0, opcode QUERY, one question, no answers or authorities, at most one additional.
  if ((q[2]! & 0xf8) !== 0 || q[4] !== 0 || q[5] !== 1 || q[6] !== 0 || q[7] !== 0 || q[8] !== 0 || q[9] !== 0 || q[10] !== 0) return false;
  const arcount = q[11]!;
  if (arcount > 1) return false;
  let i = HEADER_BYTES;
  for (;;) {
    if (i >= len) return false;
    const l = q[i]!;
    if (l === 0) break;
    if (l > 63) return false; // compression or reserved: the full path decides
    i += l + 1;
  }
  const qend = i + 5; // root byte, QTYPE, QCLASS
  if (qend > len) return false;
  let edns = 0;
  let advertised: number | undefined;
  if (arcount === 0) {
    if (qend !== len) return false;
  } else {
    // OPT: root owner, TYPE 41, CLASS = payload size, TTL = extended RCODE, version, flags; RDLENGTH; options.
    if (qend + 11 > len || q[qend] !== 0 || ((q[qend + 1]! << 8) | q[qend + 2]!) !== TYPE_OPT) return false;
    if (q[qend + 6] !== 0) return false; // EDNS version above 0: BADVERS, the full path's job
    const rdlen = (q[qend + 9]! << 8) | q[qend + 10]!;
    if (qend + 11 + rdlen !== len) return false;
    edns = (q[qend + 7]! & 0x80) !== 0 ? 2 : 1;
    advertised = (q[qend + 3]! << 8) | q[qend + 4]!;
  }
  const size = replySize(limit, advertised);
  let h = FNV_OFFSET;
  for (let k = HEADER_BYTES; k < qend; k++) h = Math.imul(h ^ q[k]!, FNV_PRIME);
  h = Math.imul(h ^ (size >>> 8), FNV_PRIME);
  h = Math.imul(h ^ (size & 0xff), FNV_PRIME);
  h = Math.imul(h ^ edns, FNV_PRIME);
  key.hash = h >>> 0;
  key.end = qend;
  key.size = size;
  key.edns = edns;
  return true;
}
