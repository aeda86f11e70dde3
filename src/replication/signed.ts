import type { HandleQuery } from '../dns/handler.js';
import { checkRequest, signMessage, type TsigKey } from './tsig.js';
import { HEADER_BYTES, MIN_UDP_PAYLOAD, skipName, type ReplyLimit } from '../dns/wire.js';

/** QR in the flags' high byte. */
const FLAG_QR_HIGH = 0x80;
/** TC in the flags (RFC 1035 §4.1.1). */
const FLAG_TC = 0x0200;

/**
 * Wraps the one-reply handler with TSIG (RFC 8945) for ordinary queries: a signed query (a secondary's SOA
 * check, a signed dig) is verified, answered from the inner handler without its TSIG, and the reply signed; a
 * bad signature gets NOTAUTH; an unsigned query passes through untouched (with no additional records, one look at
 * ARCOUNT; with some, e.g. EDNS's OPT, one walk over the message to its last record), and so does a response
 * (QR), which the handler drops. With no keys, signed queries get BADKEY. Synchronous, like the handler it wraps.
 */
export function withTsig(handle: HandleQuery, keys: readonly TsigKey[], now: () => number = Date.now): HandleQuery {
  return (query, limit) => {
    // A response (QR) goes to the handler, which drops it, signed or not: answering a response's bad signature
    // would let two servers answer each other's replies without end.
    if (query.length < HEADER_BYTES || (query[2]! & FLAG_QR_HIGH) !== 0 || (query[10] === 0 && query[11] === 0)) return handle(query, limit);
    const seconds = Math.floor(now() / 1000);
    const check = checkRequest(query, keys, seconds);
    switch (check.kind) {
      case 'unsigned':
      case 'malformed':
        return handle(query, limit);
      case 'rejected':
        return fitted(check.reply, limit);
      case 'ok': {
        // On a datagram the reply must fit the client with its TSIG record: the handler leaves room for it.
        const reply = handle(check.stripped, limit.kind === 'datagram' ? { ...limit, reserve: (limit.reserve ?? 0) + tsigBytes(check.key) } : limit);
        return reply === null ? null : signMessage(reply, check.key, { requestMac: check.mac, timeSigned: seconds }).message;
      }
    }
  };
}

/**
 * A TSIG error reply as a datagram can carry it: it echoes the question and the key and algorithm names (up to
 * 255 bytes each), so it can pass 512 bytes, the size every client takes (the query's EDNS size is not read on
 * this path). Over that on a datagram transport: the header and question alone with TC set, no TSIG record, and
 * the client asks again over TCP, where the whole reply goes.
 */
function fitted(reply: Buffer, limit: ReplyLimit): Buffer {
  if (limit.kind === 'message' || reply.length <= MIN_UDP_PAYLOAD) return reply;
  const end = reply.readUInt16BE(4) === 1 ? skipName(reply, HEADER_BYTES) + 4 : HEADER_BYTES;
  const out = Buffer.from(reply.subarray(0, end));
  out.writeUInt16BE(out.readUInt16BE(2) | FLAG_TC, 2);
  out.writeUInt16BE(0, 10);
  return out;
}

const tsigSizes = new WeakMap<TsigKey, number>();

/** The size of the TSIG record `key` signs a reply with (fixed per key: its name, algorithm and MAC length). */
function tsigBytes(key: TsigKey): number {
  let n = tsigSizes.get(key);
  if (n === undefined) {
    n = signMessage(Buffer.alloc(HEADER_BYTES), key, { requestMac: Buffer.alloc(0), timeSigned: 0 }).message.length - HEADER_BYTES;
    tsigSizes.set(key, n);
  }
  return n;
}
