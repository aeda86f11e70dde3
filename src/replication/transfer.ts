import { Buffer } from 'node:buffer';
import { BlockList, isIPv6 } from 'node:net';
import type { Answer } from 'dns-packet';
import type { View } from '../streams/index.js';
import type { Logger } from '../log/index.js';
import { emitRecord, type NameTable } from '../dns/records.js';
import { skippedRecords } from '../dns/skipped.js';
import { reverseZones, type ResolveOptions } from '../dns/resolve.js';
import type { ZoneSerials } from './serial.js';
import { checkRequest, RCODE_NOTAUTH, signMessage, type TsigKey } from './tsig.js';
import { asBuffer, HEADER_BYTES, RCODE_FORMERR, RCODE_REFUSED, RCODE_SERVFAIL, skipName } from '../dns/wire.js';

/**
 * Zone transfers (AXFR, RFC 5936; IXFR, RFC 1995) over a stream transport. A transfer answers one query with a
 * sequence of messages, so it sits beside the one-reply handler: the stream transport asks this first and falls
 * back to the handler when it returns undefined (not a transfer). Undefined is also what every non-transfer query
 * costs: a look at the question type.
 *
 * Policy, in order: a TSIG that fails is NOTAUTH (RFC 8945 §5.2); with a key configured, an unsigned transfer is
 * REFUSED; a peer outside `allow` is REFUSED; a zone lexa does not serve is NOTAUTH; before the first list of
 * LXD, SERVFAIL. IXFR: when the secondary's serial (in the query's authority SOA) is the current one, the reply
 * is that SOA alone (up to date); otherwise the whole zone in AXFR form, which RFC 1995 §4 allows: lexa keeps no
 * history of differences.
 */
export type HandleTransfer = (query: Uint8Array, peer: string) => readonly Uint8Array[] | undefined;

export interface TransferOptions {
  readonly snapshot: () => View;
  readonly resolver: ResolveOptions;
  readonly serials: ZoneSerials;
  /** Addresses or CIDR prefixes allowed to transfer. Empty: nobody. */
  readonly allow: readonly string[];
  /** With a key, transfers must be signed with it. */
  readonly key: TsigKey | null;
  readonly log: Logger;
  readonly now?: () => number;
}

/**
 * Records per message at most, and bytes: a message must stay under 64 KiB with its TSIG; smaller messages let
 * the first bytes go out sooner and cost a secondary less memory per read.
 */
const MAX_MESSAGE_BYTES = 16 * 1024;
const TYPE_AXFR = 252;
const TYPE_IXFR = 251;
const TYPE_SOA = 6;
/** The longest name on the wire, its root label included (RFC 1035 §3.1). */
const MAX_NAME_BYTES = 255;

export function createTransfer(opts: TransferOptions): HandleTransfer {
  const allow = new BlockList();
  for (const a of opts.allow) addRule(allow, a);
  const keys = opts.key === null ? [] : [opts.key];
  const now = opts.now ?? Date.now;
  const { log } = opts;
  const onSkip = skippedRecords(log, 'a zone transfer');
  return (query, peer) => {
    const q = transferQuestion(query);
    if (q === undefined) return undefined;
    try {
      return transfer(query, peer, q);
    } catch (err) {
      log.error('dns: zone transfer failed', { error: err instanceof Error ? err.message : String(err) });
      return [status(asBuffer(query), q.end, RCODE_SERVFAIL)];
    }
  };

  function transfer(query: Uint8Array, peer: string, q: TransferQuestion): Uint8Array[] {
    const seconds = Math.floor(now() / 1000);
    const tsig = checkRequest(query, keys, seconds);
    if (tsig.kind === 'malformed') return [status(asBuffer(query), q.end, RCODE_FORMERR)];
    if (tsig.kind === 'rejected') {
      log.warn('dns: zone transfer TSIG rejected', { peer, zone: q.name, error: tsig.error });
      return [tsig.reply];
    }
    const msg = tsig.kind === 'ok' ? tsig.stripped : asBuffer(query);
    const sign = (replies: Buffer[]): Buffer[] => {
      if (tsig.kind !== 'ok') return replies;
      let prior: Buffer | undefined;
      return replies.map((r, i) => {
        const s = signMessage(r, tsig.key, i === 0 ? { requestMac: tsig.mac, timeSigned: seconds } : { priorMac: prior!, timeSigned: seconds });
        prior = s.mac;
        return s.message;
      });
    };
    if (keys.length > 0 && tsig.kind !== 'ok') {
      log.warn('dns: unsigned zone transfer refused', { peer, zone: q.name });
      return [status(msg, q.end, RCODE_REFUSED)];
    }
    if (!allowed(allow, peer)) {
      log.warn('dns: zone transfer refused (not in transfer.allow)', { peer, zone: q.name });
      return sign([status(msg, q.end, RCODE_REFUSED)]);
    }
    const snapshot = opts.snapshot();
    const zone = q.name;
    const suffix = opts.serials.suffix;
    if (zone !== suffix && !reverseZones(snapshot, opts.resolver).includes(zone)) return sign([status(msg, q.end, RCODE_NOTAUTH)]);
    if (!snapshot.synced) return sign([status(msg, q.end, RCODE_SERVFAIL)]);
    const version = opts.serials.refresh(zone, snapshot);
    const soa = opts.serials.soa(zone, version.serial);
    if (q.type === TYPE_IXFR && q.clientSerial !== undefined && q.clientSerial === version.serial) {
      return sign(messages(msg, q.end, [soa], onSkip));
    }
    log.info('dns: zone transfer', { peer, zone, type: q.type === TYPE_AXFR ? 'AXFR' : 'IXFR', serial: version.serial, records: version.records.length + 2 });
    return sign(messages(msg, q.end, [soa, ...version.records, soa], onSkip));
  }
}

/** Whether `peer` (as a socket reports it, IPv4-mapped IPv6 included) is in the allow list. */
function allowed(list: BlockList, peer: string): boolean {
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(peer);
  if (mapped) return list.check(mapped[1]!, 'ipv4');
  return list.check(peer, isIPv6(peer) ? 'ipv6' : 'ipv4');
}

/** Adds `a.b.c.d`, `a.b.c.d/n`, `x::y` or `x::y/n` to `list`; the config loader has checked the syntax. */
export function addRule(list: BlockList, rule: string): void {
  const [ip, len] = rule.split('/') as [string, string | undefined];
  const type = isIPv6(ip) ? 'ipv6' : 'ipv4';
  if (len === undefined) list.addAddress(ip, type);
  else list.addSubnet(ip, Number(len), type);
}

interface TransferQuestion {
  /** The zone asked for, lower-case without trailing dot. */
  readonly name: string;
  readonly type: number;
  /** Offset after the question. */
  readonly end: number;
  /** IXFR: the serial of the SOA in the authority section (the secondary's version). */
  readonly clientSerial?: number;
}

/** The question of an AXFR or IXFR query (opcode QUERY, one question); undefined for anything else. */
function transferQuestion(query: Uint8Array): TransferQuestion | undefined {
  const buf = asBuffer(query);
  if (buf.length < HEADER_BYTES + 5 || buf[2]! & 0x80 || ((buf[2]! >> 3) & 0xf) !== 0 || buf.readUInt16BE(4) !== 1) return undefined;
  const labels: string[] = [];
  let off = HEADER_BYTES;
  for (;;) {
    const len = buf[off];
    if (len === undefined || len > 63) return undefined;
    off++;
    if (len === 0) break;
    // A name is at most 255 bytes (RFC 1035 §3.1): a longer one is no zone, and a reply echoing it would not decode.
    if (off + len > buf.length || off + len - HEADER_BYTES > MAX_NAME_BYTES - 1) return undefined;
    labels.push(buf.toString('latin1', off, off + len).toLowerCase());
    off += len;
  }
  if (off + 4 > buf.length) return undefined;
  const type = buf.readUInt16BE(off);
  if (type !== TYPE_AXFR && type !== TYPE_IXFR) return undefined;
  const end = off + 4;
  const name = labels.join('.');
  if (type === TYPE_AXFR || buf.readUInt16BE(8) < 1) return { name, type, end };
  // IXFR: the authority section's SOA (owner, type, class, ttl, rdlength, mname, rname, serial ...).
  let p = skipName(buf, end);
  if (p < 0 || p + 10 > buf.length || buf.readUInt16BE(p) !== TYPE_SOA) return { name, type, end };
  p += 10;
  p = skipName(buf, p);
  p = p < 0 ? -1 : skipName(buf, p);
  if (p < 0 || p + 4 > buf.length) return { name, type, end };
  return { name, type, end, clientSerial: buf.readUInt32BE(p) };
}

/** A reply with only the header and the question, and `rcode`. */
function status(query: Buffer, qend: number, rcode: number): Buffer {
  const out = Buffer.from(query.subarray(0, Math.min(qend, query.length)));
  out.writeUInt16BE(0x8000 | (rcode === 0 ? 0x0400 : 0) | rcode, 2);
  out.writeUInt16BE(qend <= query.length ? 1 : 0, 4);
  out.writeUInt32BE(0, 6);
  out.writeUInt16BE(0, 10);
  return out;
}

/**
 * The records as a sequence of AA replies, each with the question and as many records as fit MAX_MESSAGE_BYTES.
 * A record that cannot be encoded is left out (and `onSkip` told), never the whole transfer: the zone content
 * holds no such record (zone.ts), so this only guards. Linear: each record is written once, plus once more when
 * it overflows a message and starts the next.
 */
function messages(query: Buffer, qend: number, records: readonly Answer[], onSkip: (rec: Answer, err: unknown) => void): Buffer[] {
  const head = status(query, qend, 0);
  const out: Buffer[] = [];
  let i = 0;
  while (i < records.length) {
    // Room for any one record past the soft limit: a record that overflows it is written, then dropped from this
    // message (with the names it added to this message's table, which ends here) and starts the next.
    const buf = Buffer.alloc(MAX_MESSAGE_BYTES + MAX_RECORD_BYTES);
    head.copy(buf, 0);
    const names: NameTable = new Map();
    let off = head.length;
    let n = 0;
    while (i < records.length) {
      let size: number;
      try {
        size = emitRecord(records[i]!, names, off, buf);
      } catch (err) {
        // Whatever it wrote past `off` is overwritten by the next record or cut off below.
        onSkip(records[i++]!, err);
        continue;
      }
      if (off + size > MAX_MESSAGE_BYTES && n > 0) break;
      off += size;
      i++;
      n++;
    }
    buf.writeUInt16BE(n, 6);
    out.push(buf.subarray(0, off));
  }
  return out;
}

/** The largest record lexa writes: an owner and an rdata name of 255 bytes each, with SOA's fixed fields. */
const MAX_RECORD_BYTES = 2 * 255 + 10 + 255 + 20;

