import type { Rng } from './random.js';

/**
 * Mutators: each takes a seed input and returns a changed copy, never the seed itself. The byte mutators know
 * nothing of the format; the DNS ones know where the header counts, labels, pointers and EDNS option lengths sit,
 * so their cases get past the first length check into the code behind it. Text mutators do the same for HCL,
 * JSON, URLs and headers.
 */

export type Mutator = (rng: Rng, input: Buffer, corpus: readonly Buffer[]) => Buffer;

/** Values that sit on boundaries of the fields they land in (lengths, counts, pointers). */
const INTERESTING_BYTES = [0x00, 0x01, 0x3f, 0x40, 0x7f, 0x80, 0xc0, 0xff];
const INTERESTING_U16 = [0, 1, 2, 12, 0x00ff, 0x0100, 0x3fff, 0x7fff, 0x8000, 0xc00c, 0xfffe, 0xffff];

/** Bytes offset: a random position in [0, length) (0 for an empty input). */
const at = (rng: Rng, b: Buffer): number => (b.length === 0 ? 0 : rng.int(b.length));

export const bitFlip: Mutator = (rng, input) => {
  const out = Buffer.from(input);
  for (let k = 1 + rng.int(4); k > 0 && out.length > 0; k--) {
    const i = at(rng, out);
    out[i] = out[i]! ^ (1 << rng.int(8));
  }
  return out;
};

export const byteSet: Mutator = (rng, input) => {
  const out = Buffer.from(input);
  for (let k = 1 + rng.int(4); k > 0 && out.length > 0; k--) out[at(rng, out)] = rng.chance(0.5) ? rng.pick(INTERESTING_BYTES) : rng.int(256);
  return out;
};

export const truncate: Mutator = (rng, input) => Buffer.from(input.subarray(0, rng.int(input.length + 1)));

/** Appends random bytes or a copy of a stretch of the input (trailing garbage, duplicated records). */
export const extend: Mutator = (rng, input) => {
  const tail = rng.chance(0.5) || input.length === 0 ? rng.bytes(1 + rng.int(64)) : input.subarray(at(rng, input));
  return Buffer.concat([input, tail]);
};

/** The start of this input with the end of another corpus entry (or of itself). */
export const splice: Mutator = (rng, input, corpus) => {
  const other = rng.pick(corpus);
  return Buffer.concat([input.subarray(0, rng.int(input.length + 1)), other.subarray(rng.int(other.length + 1))]);
};

/** Removes or duplicates a stretch in the middle. */
export const cutOrRepeat: Mutator = (rng, input) => {
  if (input.length < 2) return extend(rng, input, []);
  const a = rng.int(input.length);
  const b = a + 1 + rng.int(Math.min(32, input.length - a));
  const piece = input.subarray(a, b);
  return rng.chance(0.5)
    ? Buffer.concat([input.subarray(0, a), input.subarray(b)])
    : Buffer.concat([input.subarray(0, b), ...Array.from({ length: 1 + rng.int(8) }, () => piece), input.subarray(b)]);
};

/** A 16-bit field anywhere set to a boundary value. */
export const u16Set: Mutator = (rng, input) => {
  const out = Buffer.from(input);
  if (out.length >= 2) out.writeUInt16BE(rng.chance(0.7) ? rng.pick(INTERESTING_U16) : rng.int(0x10000), rng.int(out.length - 1));
  return out;
};

export const BYTE_MUTATORS: readonly Mutator[] = [bitFlip, byteSet, truncate, extend, splice, cutOrRepeat, u16Set];

// --- DNS-aware ---------------------------------------------------------------------------------------------

const HEADER = 12;

/** QDCOUNT, ANCOUNT, NSCOUNT or ARCOUNT set to a boundary value (0, 1, 2, 0xffff...). */
export const dnsCount: Mutator = (rng, input) => {
  const out = Buffer.from(input);
  if (out.length >= HEADER) out.writeUInt16BE(rng.pick([0, 1, 2, 3, 255, 0x7fff, 0xffff]), 4 + 2 * rng.int(4));
  return out;
};

/** The flags: opcode (QUERY, IQUERY, STATUS, NOTIFY, UPDATE, unassigned), QR, TC, Z, rcode bits. */
export const dnsFlags: Mutator = (rng, input) => {
  const out = Buffer.from(input);
  if (out.length >= 4) {
    if (rng.chance(0.5)) out[2] = (out[2]! & 0x87) | (rng.pick([0, 1, 2, 3, 4, 5, 6, 15]) << 3);
    else out.writeUInt16BE(rng.int(0x10000), 2);
  }
  return out;
};

/** Label positions in the question's name (the first name after the header), as offsets of length bytes. */
function labelOffsets(b: Buffer): number[] {
  const out: number[] = [];
  let off = HEADER;
  while (off < b.length && out.length < 130) {
    const len = b[off]!;
    out.push(off);
    if (len === 0 || len >= 0x40) break;
    off += 1 + len;
  }
  return out;
}

/** A label length byte set to a boundary value: 0 (an early root), 63, 64 (reserved), 0x40/0x80 types, 0xff. */
export const dnsLabel: Mutator = (rng, input) => {
  const out = Buffer.from(input);
  const offs = labelOffsets(out);
  if (offs.length > 0) out[rng.pick(offs)] = rng.pick([0, 1, 2, 62, 63, 64, 0x41, 0x80, 0xbf, 0xff]);
  return out;
};

/**
 * A compression pointer where a label was: back at the header, at itself (a loop), forward, past the end, or a
 * chain of pointers to pointers.
 */
export const dnsPointer: Mutator = (rng, input) => {
  const offs = labelOffsets(input);
  if (offs.length === 0) return extend(rng, input, []);
  const where = rng.pick(offs);
  const target = rng.pick([0, HEADER, where, where + 2, input.length, 0x3fff, rng.int(Math.max(1, input.length))]);
  const ptr = Buffer.from([0xc0 | ((target >> 8) & 0x3f), target & 0xff]);
  const chain = rng.chance(0.2) ? Buffer.from([0xc0, (where + 2) & 0xff, 0xc0, where & 0xff]) : Buffer.alloc(0);
  const rest = rng.chance(0.5) ? input.subarray(where + 2) : Buffer.alloc(0);
  return Buffer.concat([input.subarray(0, where), ptr, chain, rest]);
};

/** A name made long: many labels, labels of 63, or a name past 255 bytes, in the question. */
export const dnsLongName: Mutator = (rng, input) => {
  if (input.length < HEADER) return extend(rng, input, []);
  const label = rng.chance(0.5) ? 63 : 1 + rng.int(8);
  const count = 1 + rng.int(rng.chance(0.5) ? 140 : 8);
  const parts: Buffer[] = [];
  for (let i = 0; i < count; i++) parts.push(Buffer.from([label]), Buffer.alloc(label, rng.pick([0x61, 0x2e, 0x00, 0x2a, 0xff, 0x5f])));
  return Buffer.concat([input.subarray(0, HEADER), ...parts, input.subarray(HEADER)]);
};

/** A type or class after the question's name set to a boundary value (AXFR, IXFR, ANY, OPT, TSIG, 0, CH, NONE). */
export const dnsQtype: Mutator = (rng, input) => {
  const offs = labelOffsets(input);
  const last = offs[offs.length - 1];
  const out = Buffer.from(input);
  if (last === undefined) return out;
  const end = last + (out[last]! >= 0x40 ? 2 : 1);
  if (end + 4 <= out.length) {
    const types = [0, 1, 2, 5, 6, 12, 15, 16, 28, 33, 41, 64, 65, 99, 250, 251, 252, 253, 254, 255, 256, 0xffff];
    const classes = [0, 1, 3, 4, 254, 255, 0xffff];
    if (rng.chance(0.6)) out.writeUInt16BE(rng.pick(types), end);
    else out.writeUInt16BE(rng.pick(classes), end + 2);
  }
  return out;
};

/**
 * An EDNS OPT record appended (ARCOUNT + 1): a payload size and version at boundaries, and options with wrong
 * lengths: a cookie of 1, 8, 40 or 41 bytes, ECS with a prefix longer than its address, padding, an option whose
 * length runs past the record.
 */
export const dnsOpt: Mutator = (rng, input) => {
  if (input.length < HEADER) return extend(rng, input, []);
  const options: Buffer[] = [];
  for (let k = rng.int(4); k > 0; k--) {
    const code = rng.pick([3, 8, 10, 11, 12, 14, 15, 65001, 0]);
    const data = rng.bytes(rng.pick([0, 1, 2, 4, 8, 16, 24, 40, 41, 300]));
    const head = Buffer.alloc(4);
    head.writeUInt16BE(code, 0);
    head.writeUInt16BE(rng.chance(0.8) ? data.length : rng.pick([0, data.length + 1, 0xffff]), 2);
    options.push(head, data);
  }
  const rdata = Buffer.concat(options);
  const rr = Buffer.alloc(11);
  rr[0] = 0; // root owner
  rr.writeUInt16BE(41, 1);
  rr.writeUInt16BE(rng.pick([0, 1, 511, 512, 1232, 4096, 65535]), 3);
  rr[5] = rng.pick([0, 0, 1, 16]); // extended rcode
  rr[6] = rng.pick([0, 0, 0, 1, 255]); // version
  rr.writeUInt16BE(rng.pick([0, 0x8000, 0xffff]), 7);
  rr.writeUInt16BE(rng.chance(0.9) ? rdata.length : rng.pick([0, rdata.length + 3, 0xffff]), 9);
  const out = Buffer.concat([input, rr, rdata]);
  out.writeUInt16BE((out.readUInt16BE(10) + 1) & 0xffff, 10);
  return out;
};

export const DNS_MUTATORS: readonly Mutator[] = [...BYTE_MUTATORS, dnsCount, dnsFlags, dnsLabel, dnsPointer, dnsLongName, dnsQtype, dnsOpt];

/** 1–3 mutations in a row, each picked from `mutators`. */
export function mutate(rng: Rng, input: Buffer, corpus: readonly Buffer[], mutators: readonly Mutator[]): Buffer {
  let out = input;
  for (let k = 1 + (rng.chance(0.3) ? rng.int(3) : 0); k > 0; k--) out = rng.pick(mutators)(rng, out, corpus);
  return out === input ? Buffer.from(input) : out;
}

// --- text ------------------------------------------------------------------------------------------------

/** Tokens that break or stretch parsers of HCL, JSON, URLs and headers. */
const TOKENS = [
  '{', '}', '[', ']', '"', '\\', '\\u0000', '${', '%{', '<<EOF\n', '\n', '=', ',', ':', '#', '//', '/*', '..', '%', '%00', '%ZZ', '%2F',
  '?', '&', ';', '\u0000', '\uFFFD', '\uD800', 'é', '𝕏', '-1', '0', '1e309', '9007199254740993', 'NaN', 'null', 'true', '"a"', '[]', '{}',
  'a'.repeat(300), '0x10', '1h', '-5s', '999999h', '__proto__', 'constructor', '*', '.', '"\n"',
];

/** Changes text: a token inserted or put in place of a stretch, a stretch deleted or repeated, or bytes flipped. */
export function mutateText(rng: Rng, input: string, corpus: readonly string[]): string {
  let s = input;
  for (let k = 1 + (rng.chance(0.3) ? rng.int(3) : 0); k > 0; k--) {
    const i = rng.int(s.length + 1);
    const j = Math.min(s.length, i + rng.int(16));
    switch (rng.int(6)) {
      case 0:
        s = s.slice(0, i) + rng.pick(TOKENS) + s.slice(i);
        break;
      case 1:
        s = s.slice(0, i) + rng.pick(TOKENS) + s.slice(j);
        break;
      case 2:
        s = s.slice(0, i) + s.slice(j);
        break;
      case 3:
        s = s.slice(0, j) + s.slice(i, j).repeat(1 + rng.int(6)) + s.slice(j);
        break;
      case 4: {
        const other = rng.pick(corpus);
        s = s.slice(0, i) + other.slice(rng.int(other.length + 1));
        break;
      }
      default:
        s = s.slice(0, i) + String.fromCharCode(rng.int(rng.chance(0.8) ? 128 : 0x10000)) + s.slice(i + 1);
    }
  }
  return s;
}
