// classifyDatagram (src/servers/doq/datagram.ts): a table of datagrams, each built field by field as RFC 9000 §17
// lays them out, with the verdict the DoQ socket acts on before any queueing.

import t from 'tap';
import { MIN_INITIAL_DATAGRAM, SERVER_CONNECTION_ID_LENGTH, classifyDatagram, type Verdict } from '../../src/servers/doq/datagram.js';

/** The one connection this fake server holds: 20 bytes of 0xaa. */
const OURS = new Uint8Array(SERVER_CONNECTION_ID_LENGTH).fill(0xaa);
const known = (id: Uint8Array) => id.byteLength === OURS.byteLength && id.every((b, i) => b === OURS[i]);

/** RFC 9000 §16: a variable-length integer in its shortest form (up to 2^30 − 1 here). */
function varint(n: number): number[] {
  if (n < 0x40) return [n];
  if (n < 0x4000) return [0x40 | (n >> 8), n & 0xff];
  return [0x80 | (n >>> 24), (n >> 16) & 0xff, (n >> 8) & 0xff, n & 0xff];
}

interface Long {
  /** The first byte (form, fixed bit, type); 0xc0 is a v1 Initial. */
  first?: number;
  version?: number;
  dcid?: Uint8Array;
  scid?: Uint8Array;
  /** Initial only: the token. */
  token?: Uint8Array;
  /** The Length field; by default what the datagram holds after it. */
  length?: number;
  /** The whole datagram's size (padded with zeros), by default MIN_INITIAL_DATAGRAM. */
  size?: number;
}

/** A long-header datagram: header fields, then zeros up to `size`. */
function long({ first = 0xc0, version = 1, dcid = new Uint8Array(8).fill(7), scid = new Uint8Array(8).fill(9), token, length, size = MIN_INITIAL_DATAGRAM }: Long): Uint8Array {
  const head = [first, version >>> 24, (version >> 16) & 0xff, (version >> 8) & 0xff, version & 0xff, dcid.byteLength, ...dcid, scid.byteLength, ...scid];
  const type = (first >> 4) & 3;
  if (type === 0) head.push(...varint(token?.byteLength ?? 0), ...(token ?? []));
  // The Length field's own size depends on its value: 2 bytes covers every case here.
  const rest = size - head.length - 2;
  const field = length ?? rest;
  head.push(0x40 | (field >> 8), field & 0xff);
  const out = new Uint8Array(Math.max(size, head.length));
  out.set(head);
  return out;
}

/** A 1-RTT datagram: first byte, destination ID, then `size` bytes in all. */
function short(dcid: Uint8Array, size = 60, first = 0x41): Uint8Array {
  const out = new Uint8Array(size);
  out[0] = first;
  out.set(dcid.subarray(0, size - 1), 1);
  return out;
}

const cases: [string, Uint8Array, Verdict][] = [
  ['empty', new Uint8Array(0), 'too-short'],
  ['one byte of long header', new Uint8Array([0xc0]), 'too-short'],
  ['a v1 Initial for no connection, padded to 1200', long({}), 'new'],
  ['a v1 Initial with a Retry token', long({ token: new Uint8Array(60).fill(1) }), 'new'],
  ['a v1 Initial to our connection ID (after a Retry)', long({ dcid: OURS, token: new Uint8Array(60).fill(1) }), 'connection'],
  ['an Initial of 1199 bytes', long({ size: MIN_INITIAL_DATAGRAM - 1 }), 'small-initial'],
  ['an Initial of 100 bytes (a Retry would be larger: amplification)', long({ size: 100 }), 'small-initial'],
  ['an Initial with the fixed bit clear', long({ first: 0x80 }), 'fixed-bit'],
  ['an Initial whose destination ID is 21 bytes', long({ dcid: new Uint8Array(21) }), 'malformed'],
  ['an Initial whose source ID is 21 bytes', long({ scid: new Uint8Array(21) }), 'malformed'],
  ['an Initial whose token runs past its end', (() => { const d = long({}); d[23] = 0x44; d[24] = 0xff; return d; })(), 'malformed'],
  ['an Initial whose Length runs past its end', long({ length: 2000 }), 'malformed'],
  ['an Initial whose Length leaves no room to decrypt', long({ length: 19 }), 'malformed'],
  ['an Initial cut inside its connection IDs', long({}).subarray(0, 10), 'too-short'],
  ['a Handshake packet to our connection', long({ first: 0xe0, dcid: OURS, size: 200 }), 'connection'],
  ['a Handshake packet to no connection', long({ first: 0xe0, size: 200 }), 'unknown-connection'],
  ['a 0-RTT packet to no connection', long({ first: 0xd0, size: 1200 }), 'unknown-connection'],
  ['a Retry from a client', long({ first: 0xf0, size: 200 }), 'unexpected-type'],
  ['a Retry to our connection', long({ first: 0xf0, dcid: OURS, size: 200 }), 'unexpected-type'],
  ['a Version Negotiation packet', long({ version: 0, size: 1200 }), 'unexpected-type'],
  ['another version, 1200 bytes: the library answers with Version Negotiation', long({ version: 0xff00001d, size: 1200 }), 'new'],
  ['another version, 1199 bytes', long({ version: 0xff00001d, size: 1199 }), 'small-initial'],
  ['another version with a 40-byte connection ID (RFC 8999 allows 255)', long({ version: 2, dcid: new Uint8Array(40), size: 1200 }), 'new'],
  ['a 1-RTT packet to our connection', short(OURS), 'connection'],
  ['a 1-RTT packet to no connection', short(new Uint8Array(20).fill(0xbb)), 'unknown-connection'],
  ['a 1-RTT packet with the fixed bit clear', short(OURS, 60, 0x01), 'fixed-bit'],
  ['a 1-RTT packet too short to decrypt', short(OURS, 40), 'too-short'],
  ['junk: zeros', new Uint8Array(1200), 'fixed-bit'],
  ['junk: 0xff (another version, type bits of a Retry)', new Uint8Array(1200).fill(0xff), 'unexpected-type'],
  ['junk: 0xc0 then 0xff (another version, an Initial)', (() => { const d = new Uint8Array(1200).fill(0xff); d[0] = 0xc0; return d; })(), 'new'],
  ['another version, a Handshake packet', long({ first: 0xe0, version: 2, size: 1200 }), 'unexpected-type'],
];

t.test('each datagram of the table gets its verdict', async (t) => {
  for (const [name, bytes, verdict] of cases) t.equal(classifyDatagram(bytes, known), verdict, name);
});

t.test('random bytes never throw, and are classified without reading past the end', async (t) => {
  // A seeded generator (xorshift32): the same 20,000 datagrams every run.
  let seed = 0x9e3779b9;
  const next = () => ((seed ^= seed << 13), (seed ^= seed >>> 17), (seed ^= seed << 5), seed >>> 0);
  const seen = new Set<Verdict>();
  for (let i = 0; i < 20_000; i++) {
    const bytes = new Uint8Array(next() % 1400);
    for (let j = 0; j < bytes.byteLength; j++) bytes[j] = next() & 0xff;
    // Half of them get a v1 header start, so the deeper checks run too.
    if (i % 2 === 0 && bytes.byteLength > 5) bytes.set([0xc0 | (bytes[0]! & 0x30), 0, 0, 0, 1, bytes[5]! % 24]);
    seen.add(classifyDatagram(bytes, () => false));
  }
  t.notOk(seen.has('connection'), 'no random datagram is taken for a connection nobody holds');
  t.ok(seen.has('malformed') && seen.has('fixed-bit') && seen.has('too-short'), 'the checks were reached');
});
