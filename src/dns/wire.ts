import { Buffer } from 'node:buffer';
import dnsPacket from 'dns-packet';
import type { Answer, DecodedPacket, OptAnswer } from 'dns-packet';
import { emitRecord, type NameTable } from './records.js';
import type { Outcome, Question } from './resolve.js';

/**
 * DNS messages ↔ resolver outcomes: decodes and validates a query, asks `answerer`, and encodes the reply,
 * fitted to the transport. This is the one place outcome kinds become wire codes. It never throws: every failure
 * becomes FORMERR, SERVFAIL or a dropped message (null).
 *
 * Contract of `answerQuery`:
 *   - fewer than 12 bytes, or QR=1 (a response; answering it could loop between servers): dropped (null);
 *   - opcode other than QUERY: NOTIMP (header only);
 *   - not exactly one question, a question name that does not parse (or uses compression), records that run
 *     past the end of the message, more than one OPT, an OPT not owned by the root, or a question or OPT that
 *     dns-packet cannot decode: FORMERR (header only);
 *   - EDNS version above 0: BADVERS (extended RCODE 16) with our OPT;
 *   - a question name with bytes we never serve (outside printable ASCII, or a `.` inside a label): REFUSED;
 *     no name in the zone has them, and records.ts writes only plain names;
 *   - the answerer throwing: SERVFAIL (and `onError`);
 *   - a record that cannot be encoded (records.ts): left out, the rest of the reply sent (and `onSkip`).
 * The question section is always copied byte for byte from the query, so the client sees its question as sent.
 * A reply carries an OPT record iff the query did (RFC 6891); ours advertises `udpPayload` (the size lexa accepts
 * and recommends, DEFAULT_EDNS_UDP_SIZE unless configured, on every transport) and echoes the DO bit.
 *
 * Fitting (sizes are measured by the same code that writes, records.ts, which compresses owner names): replySize
 * says how large a reply may be. Too big: drop additional records from the end first (no TC: RFC 2181 §9, additionals are
 * optional), then answer records from the end and set TC, but never below ONE answer: HAProxy empties a backend
 * on a truncated reply with no answer, while it uses the addresses in a partial one. (If a single answer alone is
 * over the limit, which needs names near 255 bytes, it is sent anyway with TC set.)
 */
export function answerQuery(
  buf: Uint8Array,
  limit: ReplyLimit,
  answerer: (q: Question) => Outcome,
  udpPayload: number = DEFAULT_EDNS_UDP_SIZE,
  onError?: (err: unknown) => void,
  onSkip?: OnSkip,
): Uint8Array | null {
  try {
    if (buf.length < HEADER_BYTES) return null;
    const id = (buf[0]! << 8) | buf[1]!;
    const flags = (buf[2]! << 8) | buf[3]!;
    if (flags & FLAG_QR) return null;
    const rd = flags & FLAG_RD;
    const opcode = (flags >> 11) & 0xf;
    if (opcode !== 0) return headerOnly(id, flags & OPCODE_MASK, rd, RCODE_NOTIMP);
    if (((buf[4]! << 8) | buf[5]!) !== 1) return headerOnly(id, 0, rd, RCODE_FORMERR);
    const q = scanQuestion(buf);
    if (q === null) return headerOnly(id, 0, rd, RCODE_FORMERR);

    const essential = essentialQuery(buf, q.end);
    if (essential === null) return headerOnly(id, 0, rd, RCODE_FORMERR);
    let packet: DecodedPacket;
    try {
      packet = dnsPacket.decode(essential);
    } catch {
      return headerOnly(id, 0, rd, RCODE_FORMERR);
    }
    const question = packet.questions?.[0];
    if (question === undefined) return headerOnly(id, 0, rd, RCODE_FORMERR);
    let clientOpt: OptAnswer | undefined;
    for (const rr of packet.additionals ?? NONE) {
      if (rr.type !== 'OPT') continue;
      if (clientOpt !== undefined || rr.name !== '.') return headerOnly(id, 0, rd, RCODE_FORMERR);
      clientOpt = rr;
    }

    const cap = clampPayload(udpPayload);
    const opt: ReplyOpt | undefined =
      clientOpt === undefined ? undefined : { udpPayloadSize: cap, extendedRcode: 0, do: clientOpt.flag_do };
    const head: Head = {
      id,
      rd,
      question: buf.subarray(HEADER_BYTES, q.end),
      qname: q.plain && question.name !== '.' ? question.name : undefined,
      opt,
    };
    if (clientOpt !== undefined && clientOpt.ednsVersion > 0) {
      const badvers = { udpPayloadSize: cap, extendedRcode: RCODE_BADVERS >> 4, do: clientOpt.flag_do };
      return encodeReply({ ...head, opt: badvers }, RCODE_NOERROR, false, NONE, NONE, NONE, MAX_DNS_MESSAGE, onSkip);
    }
    const size = replySize(limit, clientOpt?.udpPayloadSize);

    let outcome: Outcome;
    if (!q.plain) outcome = REFUSED;
    else {
      try {
        outcome = answerer({ name: question.name, type: question.type, class: question.class ?? 'IN' });
      } catch (err) {
        onError?.(err);
        outcome = NOTREADY_FOR_ERROR;
      }
    }
    try {
      return encodeOutcome(head, outcome, size, onSkip);
    } catch (err) {
      onError?.(err);
      return encodeOutcome(head, NOTREADY_FOR_ERROR, size);
    }
  } catch (err) {
    onError?.(err);
    return null;
  }
}

/**
 * How large a reply the transport asking can carry; every transport hands one to the handler with each query.
 *   - `message`: TCP, DoT, DoH and DoQ carry any DNS message (up to 65535 bytes) whatever the client's EDNS
 *     payload size says (that size is about UDP reassembly), so replies there are never truncated.
 *   - `datagram`: UDP. A reply must fit what the client said it can receive (its EDNS payload size, 512 without
 *     EDNS), and never more than `max`, the server's own ceiling.
 */
export type ReplyLimit =
  | { readonly kind: 'message' }
  | {
      readonly kind: 'datagram';
      readonly max: number;
      /**
       * Bytes the caller appends to the reply after the handler (a TSIG record, replication/signed.ts): the reply
       * is fitted to leave room for them. Default 0.
       */
      readonly reserve?: number;
    };

/**
 * The largest reply a query may get, given the transport's limit and the client's EDNS payload size (undefined
 * without EDNS): any DNS message (65535) on a message transport; on a datagram transport the client's size
 * clamped to 512..limit.max, 512 without EDNS, less what the caller reserves. So a UDP reply (with what the
 * caller appends) is never larger than both what the client said it can reassemble and the server's own ceiling. The one rule: answerQuery fits replies to it and answer-cache.ts
 * keys cached replies by it, and the cache is correct only while both agree.
 */
export function replySize(limit: ReplyLimit, clientPayload: number | undefined): number {
  if (limit.kind === 'message') return MAX_DNS_MESSAGE;
  const fits = clientPayload === undefined ? MIN_UDP_PAYLOAD : Math.max(MIN_UDP_PAYLOAD, Math.min(clientPayload, clampPayload(limit.max)));
  return fits - (limit.reserve ?? 0);
}

/** The limit of every message transport (TCP, DoT, DoH, DoQ). */
export const MESSAGE_LIMIT: ReplyLimit = Object.freeze({ kind: 'message' });

/** The limit of a datagram transport whose replies are at most `max` bytes (clamped to 512..65535). */
export function datagramLimit(max: number): ReplyLimit {
  return Object.freeze({ kind: 'datagram', max: clampPayload(max) });
}

/** A UDP payload size clamped to what DNS allows: 512..65535 (a non-finite one gives the default). */
export function clampPayload(n: number): number {
  return Number.isFinite(n) ? Math.max(MIN_UDP_PAYLOAD, Math.min(Math.floor(n), MAX_DNS_MESSAGE)) : DEFAULT_EDNS_UDP_SIZE;
}

/**
 * The UDP payload size our OPT advertises by default: 1232, DNS Flag Day 2020's size that fits the IPv6 minimum
 * MTU (1280) without fragmentation. It tells clients what lexa accepts and recommends; it does not cap replies
 * (see DEFAULT_MAX_UDP_REPLY).
 */
export const DEFAULT_EDNS_UDP_SIZE = 1232;
/**
 * Default ceiling of a UDP reply, which is further capped by the size the client advertises (replySize). Not
 * 1232: HAProxy (`accepted_payload_size 8192`) does not retry over TCP, so an SRV set larger than 1232 bytes
 * (~30 records) capped there would leave its extra server slots empty (test/peers/haproxy-edns.test.ts). A
 * client only gets more than 1232 bytes by asking for it, and RRL (rate-limit.ts) bounds what a spoofed source
 * can reflect.
 */
export const DEFAULT_MAX_UDP_REPLY = 4096;
/** RFC 1035's UDP limit, and the floor for any client-advertised EDNS size (RFC 6891 §6.2.5). */
export const MIN_UDP_PAYLOAD = 512;
/** The largest DNS message: the range of the 2-byte length that frames it on TCP, DoT and DoQ (and DoH's cap). */
export const MAX_DNS_MESSAGE = 65535;

export const RCODE_NOERROR = 0;
export const RCODE_FORMERR = 1;
export const RCODE_SERVFAIL = 2;
export const RCODE_NXDOMAIN = 3;
export const RCODE_NOTIMP = 4;
export const RCODE_REFUSED = 5;
/** Extended RCODE 16 (RFC 6891): upper 8 bits (1) in the OPT record, lower 4 bits (0) in the header. */
export const RCODE_BADVERS = 16;

/** A DNS message's fixed header: ID, flags and the four section counts (RFC 1035 §4.1.1). */
export const HEADER_BYTES = 12;

/** The bytes of `b` as a Buffer, without copying (a Buffer is returned as it is). */
export function asBuffer(b: Uint8Array): Buffer {
  return Buffer.isBuffer(b) ? b : Buffer.from(b.buffer, b.byteOffset, b.byteLength);
}
const FLAG_QR = 0x8000;
const OPCODE_MASK = 0x7800;
const FLAG_AA = 0x0400;
const FLAG_TC = 0x0200;
const FLAG_RD = 0x0100;
const OPT_DO = 0x8000;

const NONE: readonly never[] = Object.freeze([]);
const REFUSED: Outcome = Object.freeze({ kind: 'refused' });
/** Internal failure: SERVFAIL, same wire code as "not ready". */
const NOTREADY_FOR_ERROR: Outcome = Object.freeze({ kind: 'notready' });

/** What every reply to one query shares. */
interface Head {
  readonly id: number;
  readonly rd: number;
  /** The query's question section, bytes as received. */
  readonly question: Uint8Array;
  /** The question name as decoded, when owner names may point to it (plain, not the root). */
  readonly qname: string | undefined;
  /** Our OPT record, present iff the query had one. */
  readonly opt: ReplyOpt | undefined;
}

interface ReplyOpt {
  readonly udpPayloadSize: number;
  /** Upper 8 bits of a 12-bit extended RCODE. */
  readonly extendedRcode: number;
  readonly do: boolean;
}

/** An OPT record with no options: root name (1), type, class, TTL, RDLENGTH (10). */
const OPT_BYTES = 11;
const TYPE_OPT = 41;

/** Outcome → RCODE, AA and sections: the one mapping from resolver decisions to wire codes. */
function encodeOutcome(head: Head, outcome: Outcome, limit: number, onSkip?: OnSkip): Uint8Array {
  switch (outcome.kind) {
    case 'answer':
      return encodeReply(head, RCODE_NOERROR, true, outcome.answers, NONE, outcome.additionals, limit, onSkip);
    case 'nodata':
      return encodeReply(head, RCODE_NOERROR, true, NONE, [outcome.soa], NONE, limit, onSkip);
    case 'nxdomain':
      return encodeReply(head, RCODE_NXDOMAIN, true, NONE, [outcome.soa], NONE, limit, onSkip);
    case 'refused':
      return encodeReply(head, RCODE_REFUSED, false, NONE, NONE, NONE, limit, onSkip);
    case 'notready':
      return encodeReply(head, RCODE_SERVFAIL, false, NONE, NONE, NONE, limit, onSkip);
    case 'notimp':
      return encodeReply(head, RCODE_NOTIMP, false, NONE, NONE, NONE, limit, onSkip);
  }
}

/** Told of each record left out of a reply because it cannot be encoded (see records.ts), with the reason. */
export type OnSkip = (rec: Answer, err: unknown) => void;

/**
 * Writes the header by hand (so RCODE and flags are exactly ours; dns-packet's encode ignores `rcode`), copies
 * the question, and writes the records that fit (records.ts) into one buffer of the exact size. Authority
 * records only come without answers (NXDOMAIN/NODATA), so the records kept are always a prefix of
 * answers + authorities + additionals, and a prefix encodes the same whatever follows it.
 */
function encodeReply(
  head: Head,
  rcode: number,
  aa: boolean,
  answers: readonly Answer[],
  authorities: readonly Answer[],
  additionals: readonly Answer[],
  limit: number,
  onSkip: OnSkip | undefined,
): Uint8Array {
  if (answers.length > 0 && authorities.length > 0) throw new Error('dns: answers and authority together');
  const start = HEADER_BYTES + head.question.length;
  const optLen = head.opt === undefined ? 0 : OPT_BYTES;
  // Measuring pass: ends[i] is the offset after the first i + 1 records. It stops at the first record past the
  // limit, so a reply costs what fits, not what the resolver found.
  // A record that cannot be encoded (a name that is not DNS labels, which the snapshot should never offer) is
  // left out of `kept` and reported, and the reply goes on without it: never a SERVFAIL for the whole message.
  const budget = limit - optLen;
  const ends: number[] = [];
  const kept: Answer[] = [];
  let off = start;
  let names = nameTable(head);
  const measured = (rec: Answer): boolean => {
    let size: number;
    try {
      size = emitRecord(rec, names, off, null);
    } catch (err) {
      onSkip?.(rec, err);
      return false;
    }
    kept.push(rec);
    ends.push((off += size));
    return true;
  };
  let nAns = 0;
  let i = 0;
  while (i < answers.length && (nAns === 0 || off <= budget)) if (measured(answers[i++]!)) nAns++;
  let tc = i < answers.length;
  const answersKept = nAns;
  let nAuth = 0;
  for (const rec of authorities) if (measured(rec)) nAuth++;
  let nAdd = 0;
  i = 0;
  while (!tc && i < additionals.length && off <= budget) if (measured(additionals[i++]!)) nAdd++;
  const sizeOf = (n: number) => (n === 0 ? start : ends[n - 1]!) + optLen;

  let size = sizeOf(nAns + nAuth + nAdd);
  while (size > limit && nAdd > 0) size = sizeOf(nAns + nAuth + --nAdd);
  while (size > limit && nAns > 1) {
    size = sizeOf(--nAns);
    tc = true;
  }
  if (size > limit) tc = true;

  const out = Buffer.allocUnsafe(size);
  let flags = FLAG_QR | head.rd | (rcode & 0xf);
  if (aa) flags |= FLAG_AA;
  if (tc) flags |= FLAG_TC;
  out.writeUInt16BE(head.id, 0);
  out.writeUInt16BE(flags, 2);
  out.writeUInt16BE(1, 4);
  out.writeUInt16BE(nAns, 6);
  out.writeUInt16BE(nAuth, 8);
  out.writeUInt16BE(nAdd + (head.opt === undefined ? 0 : 1), 10);
  out.set(head.question, HEADER_BYTES);
  off = start;
  names = nameTable(head);
  // The kept records, in the order measured: answers, then authorities, then additionals.
  const written = (from: number, n: number) => {
    for (let k = from; k < from + n; k++) off += emitRecord(kept[k]!, names, off, out);
  };
  written(0, nAns);
  written(answersKept, nAuth);
  written(answersKept + nAuth, nAdd);
  if (head.opt !== undefined) {
    out[off] = 0;
    out.writeUInt16BE(TYPE_OPT, off + 1);
    out.writeUInt16BE(head.opt.udpPayloadSize, off + 3);
    out[off + 5] = head.opt.extendedRcode;
    out[off + 6] = 0; // EDNS version 0
    out.writeUInt16BE(head.opt.do ? OPT_DO : 0, off + 7);
    out.writeUInt16BE(0, off + 9);
    off += OPT_BYTES;
  }
  if (off !== size) throw new Error(`dns: wrote ${off} bytes, measured ${size}`);
  return out;
}

/** Names a reply may point to from the start: the question name, at offset 12. */
function nameTable(head: Head): NameTable {
  const names: NameTable = new Map();
  if (head.qname !== undefined) names.set(head.qname, HEADER_BYTES);
  return names;
}

/**
 * The reply a rate-limited UDP query "slips" (RRL): the query's ID, opcode, RD and question, with TC set and no
 * records, so a real client retries over TCP (which is not rate-limited) while a spoofed victim receives no
 * more bytes than the query had. Null (send nothing) for a response or a query without one valid question.
 */
export function truncatedReply(query: Uint8Array): Uint8Array | null {
  if (query.length < HEADER_BYTES) return null;
  const flags = (query[2]! << 8) | query[3]!;
  if (flags & FLAG_QR || ((query[4]! << 8) | query[5]!) !== 1) return null;
  const q = scanQuestion(query);
  if (q === null) return null;
  const out = Buffer.alloc(q.end);
  out.set(query.subarray(0, 2), 0);
  out.writeUInt16BE(FLAG_QR | (flags & (OPCODE_MASK | FLAG_RD)) | FLAG_TC, 2);
  out.writeUInt16BE(1, 4);
  out.set(query.subarray(HEADER_BYTES, q.end), HEADER_BYTES);
  return out;
}

/** A reply with no question and no OPT, for queries too broken (or too foreign) to echo. */
function headerOnly(id: number, opcodeBits: number, rd: number, rcode: number): Uint8Array {
  const out = Buffer.alloc(HEADER_BYTES);
  out.writeUInt16BE(id, 0);
  out.writeUInt16BE(FLAG_QR | opcodeBits | rd | rcode, 2);
  return out;
}

/**
 * Walks the question name by hand: its end (after QTYPE and QCLASS), and whether it is "plain" (every label
 * printable ASCII without `.`), the only names records.ts writes and answers may point to. Null when it is not
 * a valid uncompressed name followed by 4 bytes.
 */
function scanQuestion(buf: Uint8Array): { end: number; plain: boolean } | null {
  let i = HEADER_BYTES;
  let plain = true;
  let total = 0;
  for (;;) {
    if (i >= buf.length) return null;
    const len = buf[i++]!;
    if (len === 0) break;
    if (len > 63) return null;
    total += len + 1;
    if (total > 254 || i + len > buf.length) return null;
    for (let j = i; j < i + len; j++) {
      const c = buf[j]!;
      if (c <= 0x20 || c >= 0x7f || c === 0x2e) plain = false;
    }
    i += len;
  }
  if (i + 4 > buf.length) return null;
  return { end: i + 4, plain };
}

/**
 * The query cut down to what answering reads, for dns-packet to decode: the header, the question and the OPT
 * record if any (with the section counts to match). The records of every section are walked in place, owner
 * names skipped without following compression pointers, so this costs O(message bytes) whatever the message
 * holds. Null when a record runs past the end, or the additional section has two OPTs or an OPT not owned by
 * the root.
 *
 * Why not decode the whole query: dns-packet follows compression pointers without a hop limit, and pointers to
 * pointers make a chain; one 64 KiB TCP message with a 16 KiB chain and thousands of records naming its end
 * cost it ~0.8 s of CPU here (2026-12-03), an event-loop stall per message.
 */
function essentialQuery(buf: Uint8Array, questionEnd: number): Buffer | null {
  const an = (buf[6]! << 8) | buf[7]!;
  const ns = (buf[8]! << 8) | buf[9]!;
  const ar = (buf[10]! << 8) | buf[11]!;
  let p = questionEnd;
  let opt: Uint8Array | undefined;
  for (let i = 0; i < an + ns + ar; i++) {
    const start = p;
    p = skipName(buf, p);
    if (p < 0 || p + RR_FIXED_BYTES > buf.length) return null;
    const type = (buf[p]! << 8) | buf[p + 1]!;
    p += RR_FIXED_BYTES + ((buf[p + 8]! << 8) | buf[p + 9]!);
    if (p > buf.length) return null;
    if (i >= an + ns && type === TYPE_OPT) {
      if (opt !== undefined || buf[start] !== 0) return null;
      opt = buf.subarray(start, p);
    }
  }
  const out = Buffer.alloc(questionEnd + (opt?.length ?? 0));
  out.set(buf.subarray(0, questionEnd));
  out.writeUInt32BE(0, 6); // ANCOUNT, NSCOUNT
  out.writeUInt16BE(opt === undefined ? 0 : 1, 10);
  if (opt !== undefined) out.set(opt, questionEnd);
  return out;
}

/** A record's TYPE, CLASS, TTL and RDLENGTH. */
const RR_FIXED_BYTES = 10;

/**
 * The offset just past the name at `off` (labels up to the root, or up to a compression pointer, which ends a name
 * and is not followed), or -1 when it runs off the end or uses an obsolete label type (0x40, 0x80). Linear in the
 * bytes walked: every step moves forward. The one name skipper for every reader of wire bytes (TSIG, transfers,
 * DoH's max-age).
 */
export function skipName(buf: Uint8Array, off: number): number {
  for (;;) {
    if (off >= buf.length) return -1;
    const len = buf[off]!;
    if (len === 0) return off + 1;
    if ((len & 0xc0) === 0xc0) return off + 2 <= buf.length ? off + 2 : -1;
    if ((len & 0xc0) !== 0) return -1;
    off += 1 + len;
  }
}

