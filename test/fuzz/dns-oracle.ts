import dnsPacket from 'dns-packet';
import { check, Finding } from './harness.js';

/**
 * The DNS oracle, written apart from src/dns/wire.ts (it walks the query itself) so a defect there cannot hide
 * here. A reply to a query must:
 *   - exist, unless the query is under 12 bytes or is itself a response (QR=1): those are dropped;
 *   - be a response (QR) that dns-packet decodes in full, with the query's ID and opcode;
 *   - fit the client: at most 512 bytes on a datagram without EDNS, its EDNS size (clamped to 512..the server's
 *     ceiling) with it, 65535 on a stream;
 *   - carry the query's question byte for byte when it carries one, and carry it for every rcode but
 *     FORMERR, NOTIMP and NOTAUTH (where the query may have had no usable question);
 *   - have a sensible rcode: NOERROR, FORMERR, SERVFAIL (only where the snapshot is not synced: never here),
 *     NXDOMAIN, NOTIMP, REFUSED, NOTAUTH (TSIG), or BADVERS through the OPT.
 */

export type ClientLimit = { readonly kind: 'datagram'; readonly max: number } | { readonly kind: 'message' };

const HEADER = 12;
const QR = 0x8000;
const RCODES = new Set([0, 1, 3, 4, 5, 9]);
const NO_QUESTION_OK = new Set([1, 4, 9]);
const MIN_UDP = 512;
const MAX_MESSAGE = 65535;

/** The question's bytes (name + type + class), when the query has exactly one plain, uncompressed question. */
function questionBytes(q: Uint8Array): Uint8Array | undefined {
  if (q.length < HEADER || ((q[4]! << 8) | q[5]!) !== 1) return undefined;
  let i = HEADER;
  for (let total = 0; ; ) {
    if (i >= q.length) return undefined;
    const len = q[i++]!;
    if (len === 0) break;
    if (len > 63 || (total += len + 1) > 254) return undefined;
    i += len;
  }
  return i + 4 <= q.length ? q.subarray(HEADER, i + 4) : undefined;
}

/** The EDNS payload size of the first OPT in the additional section, walking every record by hand. */
function clientPayload(q: Uint8Array, questionEnd: number): number | undefined {
  const an = (q[6]! << 8) | q[7]!;
  const ns = (q[8]! << 8) | q[9]!;
  const ar = (q[10]! << 8) | q[11]!;
  let p = questionEnd;
  for (let i = 0; i < an + ns + ar; i++) {
    const owner = p;
    for (;;) {
      if (p >= q.length) return undefined;
      const len = q[p]!;
      if (len === 0) {
        p++;
        break;
      }
      if ((len & 0xc0) === 0xc0) {
        p += 2;
        break;
      }
      p += 1 + len;
    }
    if (p + 10 > q.length) return undefined;
    const type = (q[p]! << 8) | q[p + 1]!;
    if (i >= an + ns && type === 41 && q[owner] === 0) return (q[p + 2]! << 8) | q[p + 3]!;
    p += 10 + ((q[p + 8]! << 8) | q[p + 9]!);
  }
  return undefined;
}

/** The largest reply the client can take for `query` under `limit`. */
export function replyBound(query: Uint8Array, limit: ClientLimit): number {
  if (limit.kind === 'message') return MAX_MESSAGE;
  const question = questionBytes(query);
  const payload = question === undefined ? undefined : clientPayload(query, HEADER + question.length);
  if (payload === undefined) return MIN_UDP;
  return Math.max(MIN_UDP, Math.min(payload, limit.max));
}

/** Throws a Finding when `reply` is not an acceptable answer to `query` (see above). */
export function checkDnsReply(query: Uint8Array, reply: Uint8Array | null, limit: ClientLimit): void {
  const dropped = query.length < HEADER || (((query[2]! << 8) | query[3]!) & QR) !== 0;
  if (dropped) {
    check(reply === null, `a ${query.length < HEADER ? 'short message' : 'response'} got a reply`);
    return;
  }
  check(reply !== null, 'a query with a header got no reply');
  checkReplyMessage(query, reply, replyBound(query, limit));
}

/** The checks on one reply message (also each message of a zone transfer, with the stream bound). */
export function checkReplyMessage(query: Uint8Array, reply: Uint8Array, bound: number): void {
  check(reply.length >= HEADER, `reply of ${reply.length} bytes`);
  check(reply.length <= bound, `reply of ${reply.length} bytes over the client's ${bound}`);
  check(reply[0] === query[0] && reply[1] === query[1], 'reply ID differs from the query ID');
  const flags = (reply[2]! << 8) | reply[3]!;
  check((flags & QR) !== 0, 'reply without QR');
  check(((flags >> 11) & 0xf) === ((((query[2]! << 8) | query[3]!) >> 11) & 0xf), 'reply opcode differs from the query');
  const rcode = flags & 0xf;
  check(RCODES.has(rcode), `rcode ${rcode}`);
  let decoded: dnsPacket.DecodedPacket;
  try {
    decoded = dnsPacket.decode(Buffer.from(reply.buffer, reply.byteOffset, reply.length));
  } catch (err) {
    throw new Finding(`reply does not decode: ${(err as Error).message}`);
  }
  check((decoded.questions?.length ?? 0) <= 1, 'reply with several questions');
  const qd = (reply[4]! << 8) | reply[5]!;
  const asked = questionBytes(query);
  if (qd === 1) {
    const got = questionBytes(reply);
    check(got !== undefined && asked !== undefined && Buffer.compare(got, asked) === 0, 'reply question differs from the query');
  } else {
    check(NO_QUESTION_OK.has(rcode), `rcode ${rcode} without the question`);
  }
}
