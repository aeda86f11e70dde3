import { Buffer } from 'node:buffer';
import t from 'tap';
import dnsPacket, { type Answer } from 'dns-packet';
import { emitName, emitRecord, type NameTable } from '../../src/dns/records.js';
import { rr, text } from '../helpers/zone.js';

// The reply record encoder: exact sizes, compression pointers dns-packet decodes, and refusals to write
// anything that would corrupt a message.

/** Encodes records after a fake 12-byte header with no question, then decodes them with dns-packet. */
function roundTrip(recs: Answer[]): { bytes: number; back: Answer[] } {
  const names: NameTable = new Map();
  let size = 12;
  for (const r of recs) size += emitRecord(r, names, size, null);
  const out = Buffer.alloc(size);
  out.writeUInt16BE(0x8000, 2);
  out.writeUInt16BE(recs.length, 6);
  const written: NameTable = new Map();
  let off = 12;
  for (const r of recs) off += emitRecord(r, written, off, out);
  if (off !== size) throw new Error(`wrote ${off}, measured ${size}`);
  return { bytes: size, back: dnsPacket.decode(out).answers ?? [] };
}

t.test('records survive dns-packet decoding, with repeated owners compressed', (t) => {
  const lines = [
    'web-*.lexa. 0 IN A 10.99.0.11',
    'web-*.lexa. 0 IN A 10.99.0.12',
    'web-*.lexa. 0 IN AAAA fd42:99::11',
    '_h._tcp.service.lexa. 30 IN SRV 1 255 443 eth0.if.web-1.lexa.',
    'eth0.if.web-1.lexa. 30 IN A 10.99.0.11',
    'cluster.web-1.lexa. 0 IN CNAME node-1.',
    'lexa. 0 IN NS ns.lexa.',
    'lexa. 5 IN SOA ns.lexa. hostmaster.lexa. 1700000000 3600 600 86400 5',
  ];
  const { bytes, back } = roundTrip(lines.map(rr));
  t.same(back.map(text), lines.map((l) => text(rr(l))));
  const uncompressed = 12 + lines.reduce((n, l) => n + dnsPacket.encodingLength({ answers: [rr(l)] }) - 12, 0);
  // pointers (2 bytes) replace: 2nd and 3rd 'web-*.lexa' (12 bytes each), 'eth0.if.web-1.lexa' (20) after the SRV
  // target, and the SOA's 'lexa' (6) after the NS record's
  t.equal(bytes, uncompressed - 10 - 10 - 18 - 4, `${bytes} bytes`);
  t.end();
});

t.test('names: exact lengths, root, trailing dot', (t) => {
  t.equal(emitName('.', 0, null), 1);
  t.equal(emitName('', 0, null), 1);
  t.equal(emitName('a.b', 0, null), 5);
  t.equal(emitName('a.b.', 0, null), 5);
  const out = Buffer.alloc(5);
  emitName('a.b', 0, out);
  t.same([...out], [1, 0x61, 1, 0x62, 0]);
  const max = Array.from({ length: 4 }, (_, i) => String.fromCharCode(0x61 + i).repeat(i < 3 ? 63 : 61)).join('.');
  t.equal(emitName(max, 0, null), 255, 'a 255-byte name');
  t.end();
});

t.test('what would corrupt a message throws instead', (t) => {
  const bad: [string, () => unknown][] = [
    ['a 64-byte label', () => emitName(`${'a'.repeat(64)}.lexa`, 0, null)],
    ['an empty label', () => emitName('a..lexa', 0, null)],
    ['a leading dot', () => emitName('.lexa', 0, null)],
    ['a 256-byte name', () => emitName(Array.from({ length: 4 }, () => 'a'.repeat(63)).join('.'), 0, null)],
    ['non-ASCII', () => emitName('wéb.lexa', 0, null)],
    ['a space', () => emitName('w b.lexa', 0, null)],
  ];
  for (const ip of ['10.0.0', '10.0.0.1.2', '10.0.0.256', '10.0.0.x', ' 10.0.0.1', '10..0.1', '1000.0.0.1', '']) {
    bad.push([`A ${JSON.stringify(ip)}`, () => roundTrip([{ name: 'x.lexa', type: 'A', data: ip }])]);
  }
  for (const ip of ['fe80::1%eth0', '10.0.0.1', 'not-an-address', 'fd42::1::2']) {
    bad.push([`AAAA ${JSON.stringify(ip)}`, () => roundTrip([{ name: 'x.lexa', type: 'AAAA', data: ip }])]);
  }
  bad.push(['a TXT record', () => roundTrip([{ name: 'x.lexa', type: 'TXT', data: 'hi' }])]);
  bad.push(['class CH', () => roundTrip([{ name: 'x.lexa', type: 'A', class: 'CH', data: '10.0.0.1' }])]);
  for (const [what, fn] of bad) t.throws(fn, `${what} throws`);
  t.end();
});
