import net from 'node:net';
import { Buffer } from 'node:buffer';
import dnsPacket from 'dns-packet';
import type { Answer } from 'dns-packet';

/**
 * Resource-record encoder for replies, with name compression (RFC 1035 §4.1.4) where it pays: an owner name
 * already written in the message (the question name, at offset 12, owns nearly every answer) becomes a 2-byte
 * pointer, and so do additional records owned by an SRV target written earlier. SRV targets themselves are
 * written whole (RFC 2782); other rdata names (CNAME, NS, SOA) too, for simplicity.
 *
 * dns-packet encodes without compression, which fits about 17 addresses into a 512-byte reply where this fits
 * 30, and spends most of its time re-encoding the same owner name. Decoding stays with dns-packet.
 *
 * `emitRecord` both measures and writes: called with `out === null` it only returns the size, with the exact
 * decisions (pointer or not) that writing the same records in the same order, from the same offsets, makes.
 * Names must be ASCII with labels of 1..63 bytes (the snapshot offers no other: dns-label.ts); anything else
 * throws, so no corrupt message is ever sent. A record that throws leaves `names` as it was (it may have written
 * bytes into `out` past `at`), so the caller can skip that one record and go on from the same offset: wire.ts
 * and transfer.ts do, and one bad record never fails a whole reply or zone. Supported types: A, AAAA, CNAME, NS,
 * PTR, SOA, SRV (IN).
 *
 * Cost: linear in the record's size. Compression looks names up whole in `names` (a hash map), never by suffix,
 * so a message of R records costs O(R) lookups, whatever the names.
 */
export function emitRecord(rec: Answer, names: NameTable, at: number, out: Buffer | null): number {
  const known = names.has(rec.name);
  try {
    return emitUnchecked(rec, names, at, out);
  } catch (err) {
    // The owner may have been entered at `at`; nothing is written there now, so no later record may point to it.
    if (!known) names.delete(rec.name);
    throw err;
  }
}

function emitUnchecked(rec: Answer, names: NameTable, at: number, out: Buffer | null): number {
  let off = at + emitOwner(rec.name, names, at, out);
  const type = TYPE_CODES[rec.type];
  if (type === undefined || rec.type === 'OPT') throw new Error(`dns: cannot encode a ${rec.type} record`);
  if (rec.class !== undefined && rec.class !== 'IN') throw new Error(`dns: cannot encode class ${rec.class}`);
  const ttl = rec.ttl ?? 0;
  if (out !== null) {
    out.writeUInt16BE(type, off);
    out.writeUInt16BE(CLASS_IN, off + 2);
    out.writeUInt32BE(ttl, off + 4);
  }
  off += 8;
  const rdStart = off + 2;
  let rd = rdStart;
  switch (rec.type) {
    case 'A':
      if (out !== null) writeIPv4(rec.data, out, rd);
      rd += 4;
      break;
    case 'AAAA':
      if (!net.isIPv6(rec.data) || rec.data.includes('%')) throw new Error(`dns: bad IPv6 address "${rec.data}"`);
      if (out !== null) codecs.aaaa.encode(rec.data, out, off);
      rd += 16;
      break;
    case 'CNAME':
    case 'NS':
    case 'PTR':
      rd += emitName(rec.data, rd, out);
      break;
    case 'SRV': {
      const d = rec.data;
      if (out !== null) {
        out.writeUInt16BE(d.priority ?? 0, rd);
        out.writeUInt16BE(d.weight ?? 0, rd + 2);
        out.writeUInt16BE(d.port, rd + 4);
      }
      rd += 6;
      // Entered only once written whole: a target that fails to encode must not be pointed to.
      const target = emitName(d.target, rd, out);
      if (rd < MAX_POINTER && !names.has(d.target)) names.set(d.target, rd);
      rd += target;
      break;
    }
    case 'SOA': {
      const d = rec.data;
      rd += emitName(d.mname, rd, out);
      rd += emitName(d.rname, rd, out);
      if (out !== null) {
        out.writeUInt32BE(d.serial ?? 0, rd);
        out.writeUInt32BE(d.refresh ?? 0, rd + 4);
        out.writeUInt32BE(d.retry ?? 0, rd + 8);
        out.writeUInt32BE(d.expire ?? 0, rd + 12);
        out.writeUInt32BE(d.minimum ?? 0, rd + 16);
      }
      rd += 20;
      break;
    }
  }
  if (out !== null) out.writeUInt16BE(rd - rdStart, off);
  return rd - at;
}

/** Names written so far in one message, by exact spelling, and where (offsets below 0x4000 only). */
export type NameTable = Map<string, number>;

/** Pointers have 14 bits: a name can only be pointed to if it starts below this offset. */
const MAX_POINTER = 0x4000;
const CLASS_IN = 1;
const TYPE_CODES: Partial<Record<string, number>> = { A: 1, NS: 2, CNAME: 5, SOA: 6, PTR: 12, AAAA: 28, SRV: 33 };

function emitOwner(name: string, names: NameTable, at: number, out: Buffer | null): number {
  const ptr = names.get(name);
  if (ptr !== undefined) {
    if (out !== null) out.writeUInt16BE(0xc000 | ptr, at);
    return 2;
  }
  const len = emitName(name, at, out);
  if (at < MAX_POINTER) names.set(name, at);
  return len;
}

/** Writes `name` uncompressed (a trailing dot is optional; "" and "." are the root); returns its length. */
export function emitName(name: string, at: number, out: Buffer | null): number {
  let end = name.length;
  if (end > 0 && name.charCodeAt(end - 1) === 0x2e) end--;
  if (end === 0) {
    if (out !== null) out[at] = 0;
    return 1;
  }
  const total = end + 2;
  if (total > 255) throw new Error(`dns: name too long: ${name}`);
  let lenAt = at;
  let w = at + 1;
  for (let i = 0; i <= end; i++) {
    const c = i === end ? 0x2e : name.charCodeAt(i);
    if (c === 0x2e) {
      const len = w - lenAt - 1;
      if (len === 0 || len > 63) throw new Error(`dns: bad label length ${len} in ${name}`);
      if (out !== null) out[lenAt] = len;
      lenAt = w;
      w++;
    } else {
      if (c > 0x7e || c <= 0x20) throw new Error(`dns: name is not plain ASCII: ${name}`);
      if (out !== null) out[w] = c;
      w++;
    }
  }
  if (out !== null) out[lenAt] = 0;
  return total;
}

/** Strict dotted-quad parse (dns-packet would silently encode garbage as zeros). */
function writeIPv4(ip: string, out: Buffer, at: number): void {
  let part = 0;
  let digits = 0;
  let n = 0;
  for (let i = 0; i <= ip.length; i++) {
    const c = i === ip.length ? 0x2e : ip.charCodeAt(i);
    if (c === 0x2e) {
      if (digits === 0 || n > 255 || part > 3) throw new Error(`dns: bad IPv4 address "${ip}"`);
      out[at + part++] = n;
      n = 0;
      digits = 0;
    } else if (c >= 0x30 && c <= 0x39 && digits < 3) {
      n = n * 10 + (c - 0x30);
      digits++;
    } else throw new Error(`dns: bad IPv4 address "${ip}"`);
  }
  if (part !== 4) throw new Error(`dns: bad IPv4 address "${ip}"`);
}

/** dns-packet's AAAA rdata codec (writes RDLENGTH then the address): exported at runtime, missing from its types. */
const codecs = dnsPacket as unknown as { aaaa: { encode(ip: string, buf: Buffer, offset: number): Buffer } };
