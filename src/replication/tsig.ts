import { Buffer } from 'node:buffer';
import { createHmac, timingSafeEqual } from 'node:crypto';
import { TSIG_ALGORITHMS } from '../config/schema.js';
import { emitName } from '../dns/records.js';
import { asBuffer, HEADER_BYTES, skipName } from '../dns/wire.js';

/**
 * TSIG (RFC 8945): HMAC signatures on DNS messages with a shared key, for zone transfers, the SOA queries a
 * secondary makes, and NOTIFY. dns-packet has no TSIG, so this is the codec and the MAC rules, written from the
 * RFC: what is digested (§4.3.3: the message without its TSIG record and with the original ID, then the TSIG
 * variables; a response first digests the request's MAC; later messages of a multi-message response digest the
 * previous MAC and only the timers, §5.3.1), the time check (§5.2.3), and the errors (§5.2: BADKEY and BADSIG
 * answered unsigned, BADTIME signed). Every message of a transfer is signed (RFC 8945 no longer allows gaps).
 */

export type TsigAlgorithm = keyof typeof TSIG_ALGORITHMS;

export interface TsigKey {
  /** The key's name (e.g. `lexa-xfr`); compared and digested in canonical form (keyNameOf), however written. */
  readonly name: string;
  readonly algorithm: TsigAlgorithm;
  readonly secret: Buffer;
}

/**
 * A key name in the one form names are compared in: ASCII letters lower-cased (RFC 4034 §6.2, the form RFC 8945
 * §4.3.3 digests; DNS names compare case-insensitively, RFC 4343) and no trailing dot (`LeXa-Key.` → `lexa-key`).
 */
export function keyNameOf(name: string): string {
  return name.replace(/[A-Z]+/g, (m) => m.toLowerCase()).replace(/\.$/, '');
}

/** The window RFC 8945 §10 recommends for clock skew between the peers. */
export const TSIG_FUDGE_SECONDS = 300;

export const TYPE_TSIG = 250;
const CLASS_ANY = 255;
export const RCODE_NOTAUTH = 9;
export const TSIG_BADSIG = 16;
export const TSIG_BADKEY = 17;
export const TSIG_BADTIME = 18;

/** A TSIG record as found at the end of a message. */
export interface TsigRecord {
  /** Offset where the TSIG record starts: the message without it is `msg.subarray(0, start)`. */
  readonly start: number;
  readonly keyName: string;
  readonly algorithm: string;
  readonly timeSigned: number;
  readonly fudge: number;
  readonly mac: Buffer;
  readonly originalId: number;
  readonly error: number;
  readonly other: Buffer;
}

/**
 * The TSIG record of `msg`, which must be the last additional record (RFC 8945 §5.1); null when the message has
 * none; 'malformed' when the message cannot be walked or a TSIG record is misplaced or broken.
 */
export function findTsig(msg: Uint8Array): TsigRecord | null | 'malformed' {
  const buf = asBuffer(msg);
  if (buf.length < HEADER_BYTES) return 'malformed';
  const counts = [buf.readUInt16BE(4), buf.readUInt16BE(6), buf.readUInt16BE(8), buf.readUInt16BE(10)] as const;
  if (counts[3] === 0) return null;
  let off = HEADER_BYTES;
  for (let i = 0; i < counts[0]; i++) {
    off = skipName(buf, off);
    if (off < 0 || off + 4 > buf.length) return 'malformed';
    off += 4;
  }
  const records = counts[1] + counts[2] + counts[3];
  for (let i = 0; i < records; i++) {
    const start = off;
    off = skipName(buf, off);
    if (off < 0 || off + 10 > buf.length) return 'malformed';
    const type = buf.readUInt16BE(off);
    const rdlen = buf.readUInt16BE(off + 8);
    const rdata = off + 10;
    off = rdata + rdlen;
    if (off > buf.length) return 'malformed';
    if (type !== TYPE_TSIG) continue;
    if (i !== records - 1 || off !== buf.length || buf.readUInt16BE(rdata - 8) !== CLASS_ANY) return 'malformed';
    const keyName = readName(buf, start);
    let p = skipName(buf, rdata);
    if (keyName === undefined || p < 0) return 'malformed';
    const algorithm = readName(buf, rdata);
    if (algorithm === undefined || p + 10 > off) return 'malformed';
    const timeSigned = buf.readUIntBE(p, 6);
    const fudge = buf.readUInt16BE(p + 6);
    const macLen = buf.readUInt16BE(p + 8);
    p += 10;
    if (p + macLen + 6 > off) return 'malformed';
    const mac = Buffer.from(buf.subarray(p, p + macLen));
    p += macLen;
    const originalId = buf.readUInt16BE(p);
    const error = buf.readUInt16BE(p + 2);
    const otherLen = buf.readUInt16BE(p + 4);
    p += 6;
    if (p + otherLen !== off) return 'malformed';
    return { start, keyName, algorithm, timeSigned, fudge, mac, originalId, error, other: Buffer.from(buf.subarray(p, off)) };
  }
  return null;
}

/** What checking a request's TSIG found. */
export type TsigCheck =
  | { readonly kind: 'unsigned' }
  /** Signed and valid: `stripped` is the message without its TSIG (ARCOUNT one less), to answer as usual. */
  | { readonly kind: 'ok'; readonly key: TsigKey; readonly mac: Buffer; readonly stripped: Buffer; readonly record: TsigRecord }
  /**
   * Signed but not acceptable: answer NOTAUTH with `reply` (RFC 8945 §5.2), already built: unsigned for BADKEY
   * and BADSIG, signed for BADTIME.
   */
  | { readonly kind: 'rejected'; readonly error: number; readonly reply: Buffer }
  | { readonly kind: 'malformed' };

/**
 * Checks the TSIG of request `msg` against `keys` at time `nowSeconds` (RFC 8945 §5.2). Never throws: a TSIG
 * record that cannot even be echoed in an error reply (a key name lexa cannot write) is `malformed`.
 */
export function checkRequest(msg: Uint8Array, keys: readonly TsigKey[], nowSeconds: number): TsigCheck {
  try {
    return check(msg, keys, nowSeconds);
  } catch {
    return { kind: 'malformed' };
  }
}

function check(msg: Uint8Array, keys: readonly TsigKey[], nowSeconds: number): TsigCheck {
  const rec = findTsig(msg);
  if (rec === null) return { kind: 'unsigned' };
  if (rec === 'malformed') return { kind: 'malformed' };
  const buf = asBuffer(msg);
  const key = keys.find((k) => keyNameOf(k.name) === rec.keyName && k.algorithm === rec.algorithm);
  if (key === undefined) return { kind: 'rejected', error: TSIG_BADKEY, reply: errorReply(buf, rec, TSIG_BADKEY) };
  const stripped = withoutTsig(buf, rec);
  const expected = mac(key, [digestMessage(stripped, rec.originalId), variables(rec.keyName, rec.algorithm, rec.timeSigned, rec.fudge, rec.error, rec.other)]);
  if (rec.mac.length !== expected.length || !timingSafeEqual(rec.mac, expected))
    return { kind: 'rejected', error: TSIG_BADSIG, reply: errorReply(buf, rec, TSIG_BADSIG) };
  if (Math.abs(nowSeconds - rec.timeSigned) > rec.fudge) {
    const head = responseHeader(stripped, RCODE_NOTAUTH);
    const time = Buffer.alloc(6);
    time.writeUIntBE(nowSeconds, 0, 6);
    const reply = signMessage(head, key, { requestMac: rec.mac, timeSigned: nowSeconds, error: TSIG_BADTIME, other: time }).message;
    return { kind: 'rejected', error: TSIG_BADTIME, reply };
  }
  return { kind: 'ok', key, mac: rec.mac, stripped, record: rec };
}

export interface SignOptions {
  /** A response: the request's MAC, digested first. */
  readonly requestMac?: Buffer;
  /** A later message of a multi-message response: the previous message's MAC; only the timers are digested. */
  readonly priorMac?: Buffer;
  readonly timeSigned: number;
  readonly fudge?: number;
  readonly error?: number;
  readonly other?: Buffer;
}

/** Appends a TSIG record signed with `key` to `msg` (which has none) and counts it in ARCOUNT; returns its MAC too. */
export function signMessage(msg: Uint8Array, key: TsigKey, opts: SignOptions): { message: Buffer; mac: Buffer } {
  const buf = asBuffer(msg);
  const fudge = opts.fudge ?? TSIG_FUDGE_SECONDS;
  const error = opts.error ?? 0;
  const other = opts.other ?? Buffer.alloc(0);
  const id = buf.readUInt16BE(0);
  const parts: Buffer[] = [];
  if (opts.priorMac !== undefined) {
    parts.push(lengthPrefixed(opts.priorMac), buf, timers(opts.timeSigned, fudge));
  } else {
    if (opts.requestMac !== undefined) parts.push(lengthPrefixed(opts.requestMac));
    parts.push(buf, variables(key.name, key.algorithm, opts.timeSigned, fudge, error, other));
  }
  const digest = mac(key, parts);
  const record = tsigRecord(key.name, key.algorithm, opts.timeSigned, fudge, digest, id, error, other);
  const out = Buffer.concat([buf, record]);
  out.writeUInt16BE(out.readUInt16BE(10) + 1, 10);
  return { message: out, mac: digest };
}

/**
 * Checks the TSIG of a response to a request we signed (a NOTIFY acknowledgement): true when it is signed by
 * `key` over `requestMac`.
 */
export function checkResponse(msg: Uint8Array, key: TsigKey, requestMac: Buffer): boolean {
  const rec = findTsig(msg);
  if (rec === null || rec === 'malformed' || rec.keyName !== keyNameOf(key.name) || rec.algorithm !== key.algorithm) return false;
  const stripped = withoutTsig(asBuffer(msg), rec);
  const expected = mac(key, [
    lengthPrefixed(requestMac),
    digestMessage(stripped, rec.originalId),
    variables(rec.keyName, rec.algorithm, rec.timeSigned, rec.fudge, rec.error, rec.other),
  ]);
  return rec.mac.length === expected.length && timingSafeEqual(rec.mac, expected);
}

/** The message without its TSIG record, ARCOUNT one less. */
function withoutTsig(buf: Buffer, rec: TsigRecord): Buffer {
  const out = Buffer.from(buf.subarray(0, rec.start));
  out.writeUInt16BE(out.readUInt16BE(10) - 1, 10);
  return out;
}

/** The stripped message with the original ID in place of its own (§4.3.3: a forwarder may have changed it). */
function digestMessage(stripped: Buffer, originalId: number): Buffer {
  if (stripped.readUInt16BE(0) === originalId) return stripped;
  const copy = Buffer.from(stripped);
  copy.writeUInt16BE(originalId, 0);
  return copy;
}

/**
 * A header-and-question reply to `request` (stripped of TSIG) with `rcode`, QR set, no records. The question is
 * echoed only when it is one uncompressed name of at most 255 bytes that ends inside the message: a name that runs
 * longer, or a compression pointer (which would point elsewhere in this shorter reply), would make the reply
 * undecodable, so such a request gets the header alone.
 */
function responseHeader(request: Buffer, rcode: number): Buffer {
  const end = request.readUInt16BE(4) === 1 ? plainQuestionEnd(request) : -1;
  const out = Buffer.from(request.subarray(0, end < 0 ? HEADER_BYTES : end));
  out.writeUInt16BE(0x8000 | (request.readUInt16BE(2) & 0x7900) | rcode, 2);
  out.writeUInt16BE(end < 0 ? 0 : 1, 4);
  out.writeUInt32BE(0, 6);
  out.writeUInt16BE(0, 10);
  return out;
}

/** The longest name on the wire, its root label included (RFC 1035 §3.1). */
const MAX_NAME_BYTES = 255;

/** The offset after the first question when its name is uncompressed and at most 255 bytes, else -1. */
function plainQuestionEnd(buf: Buffer): number {
  let off = HEADER_BYTES;
  for (;;) {
    if (off >= buf.length || off - HEADER_BYTES >= MAX_NAME_BYTES) return -1;
    const len = buf[off]!;
    if (len === 0) break;
    if (len > 63) return -1;
    off += 1 + len;
  }
  return off + 5 <= buf.length ? off + 5 : -1;
}

/** BADKEY / BADSIG: NOTAUTH with a TSIG record carrying the error and an empty MAC (unsigned, §5.2.1–2). */
function errorReply(buf: Buffer, rec: TsigRecord, error: number): Buffer {
  const head = responseHeader(withoutTsig(buf, rec), RCODE_NOTAUTH);
  const record = tsigRecord(rec.keyName, rec.algorithm, rec.timeSigned, rec.fudge, Buffer.alloc(0), rec.originalId, error, Buffer.alloc(0));
  const out = Buffer.concat([head, record]);
  out.writeUInt16BE(1, 10);
  return out;
}

function mac(key: TsigKey, parts: readonly Buffer[]): Buffer {
  const h = createHmac(TSIG_ALGORITHMS[key.algorithm], key.secret);
  for (const p of parts) h.update(p);
  return h.digest();
}

/** The TSIG variables of §4.3.3: key name and algorithm in canonical (lower-case, uncompressed) wire form. */
function variables(keyName: string, algorithm: string, timeSigned: number, fudge: number, error: number, other: Buffer): Buffer {
  const name = wireName(keyName);
  const alg = wireName(algorithm);
  const out = Buffer.alloc(name.length + 6 + alg.length + 8 + 4 + other.length);
  let p = name.copy(out, 0);
  out.writeUInt16BE(CLASS_ANY, p);
  out.writeUInt32BE(0, p + 2);
  p += 6;
  p += alg.copy(out, p);
  out.writeUIntBE(timeSigned, p, 6);
  out.writeUInt16BE(fudge, p + 6);
  out.writeUInt16BE(error, p + 8);
  out.writeUInt16BE(other.length, p + 10);
  other.copy(out, p + 12);
  return out;
}

function timers(timeSigned: number, fudge: number): Buffer {
  const out = Buffer.alloc(8);
  out.writeUIntBE(timeSigned, 0, 6);
  out.writeUInt16BE(fudge, 6);
  return out;
}

function tsigRecord(keyName: string, algorithm: string, timeSigned: number, fudge: number, digest: Buffer, id: number, error: number, other: Buffer): Buffer {
  const name = wireName(keyName);
  const alg = wireName(algorithm);
  const rdlen = alg.length + 10 + digest.length + 6 + other.length;
  const out = Buffer.alloc(name.length + 10 + rdlen);
  let p = name.copy(out, 0);
  out.writeUInt16BE(TYPE_TSIG, p);
  out.writeUInt16BE(CLASS_ANY, p + 2);
  out.writeUInt32BE(0, p + 4);
  out.writeUInt16BE(rdlen, p + 8);
  p += 10;
  p += alg.copy(out, p);
  out.writeUIntBE(timeSigned, p, 6);
  out.writeUInt16BE(fudge, p + 6);
  out.writeUInt16BE(digest.length, p + 8);
  p += 10;
  p += digest.copy(out, p);
  out.writeUInt16BE(id, p);
  out.writeUInt16BE(error, p + 2);
  out.writeUInt16BE(other.length, p + 4);
  other.copy(out, p + 6);
  return out;
}

function lengthPrefixed(b: Buffer): Buffer {
  const out = Buffer.alloc(2 + b.length);
  out.writeUInt16BE(b.length, 0);
  b.copy(out, 2);
  return out;
}

/** A name in canonical wire form (keyNameOf), uncompressed. */
function wireName(name: string): Buffer {
  const lower = keyNameOf(name);
  const out = Buffer.alloc(emitName(lower, 0, null));
  emitName(lower, 0, out);
  return out;
}

/** The name at `off` in canonical form (keyNameOf), following compression pointers, or undefined. */
function readName(buf: Buffer, off: number): string | undefined {
  const labels: string[] = [];
  for (let hops = 0; hops < 128; hops++) {
    if (off >= buf.length) return undefined;
    const len = buf[off]!;
    if (len === 0) return keyNameOf(labels.join('.'));
    if ((len & 0xc0) === 0xc0) {
      if (off + 1 >= buf.length) return undefined;
      off = ((len & 0x3f) << 8) | buf[off + 1]!;
      continue;
    }
    if (len > 63 || off + 1 + len > buf.length) return undefined;
    labels.push(buf.toString('latin1', off + 1, off + 1 + len));
    off += 1 + len;
  }
  return undefined;
}
