import type { HandleQuery } from '../dns/handler.js';
import { checkRequest, signMessage, type TsigKey } from './tsig.js';
import { HEADER_BYTES } from '../dns/wire.js';

/** QR in the flags' high byte. */
const FLAG_QR_HIGH = 0x80;

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
        return check.reply;
      case 'ok': {
        const reply = handle(check.stripped, limit);
        return reply === null ? null : signMessage(reply, check.key, { requestMac: check.mac, timeSigned: seconds }).message;
      }
    }
  };
}
