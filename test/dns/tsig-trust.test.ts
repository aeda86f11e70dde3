import { Buffer } from 'node:buffer';
import dnsPacket from 'dns-packet';
import t from 'tap';
import { memoryLogger, silentLogger } from '../../src/log/index.js';
import { zoneOptions, type ResolveOptions } from '../../src/dns/resolve.js';
import { ZoneSerials } from '../../src/replication/serial.js';
import { withTsig } from '../../src/replication/signed.js';
import { createTransfer } from '../../src/replication/transfer.js';
import { checkRequest, checkResponse, findTsig, signMessage, TSIG_BADKEY, TSIG_BADSIG, TSIG_BADTIME, type TsigKey } from '../../src/replication/tsig.js';
import { iface, instance, snapshotOf } from '../helpers/model.js';

// Every trust check of TSIG and zone transfers, one test each, hermetic: each of these fails when its check is
// removed from tsig.ts / transfer.ts (the MAC length, the time window in both directions, the allow list with a
// key, the refusal of unsigned transfers with a key, canonical key names).

const OPTS: ResolveOptions = { suffix: 'lexa', ttl: 0, soa: { minimum: 5 } };
const KEY: TsigKey = { name: 'lexa-xfr', algorithm: 'hmac-sha256', secret: Buffer.from('0123456789abcdef0123456789abcdef') };
const NOW = 1_700_000_000;
const FUDGE = 300;

function query(name: string, type: string): Buffer {
  return dnsPacket.encode({ id: 4242, type: 'query', flags: 0, questions: [{ name, type: type as 'A', class: 'IN' }] });
}

/** The error a check found (BADSIG, BADKEY, BADTIME), or its kind when it found none. */
function verdict(msg: Uint8Array, keys: readonly TsigKey[] = [KEY], now = NOW): number | string {
  const c = checkRequest(msg, keys, now);
  return c.kind === 'rejected' ? c.error : c.kind;
}

/** `signed` with its TSIG MAC replaced by `mac` (the record's length fields adjusted), as a forger would send it. */
function withMac(signed: Buffer, mac: Buffer): Buffer {
  const rec = findTsig(signed);
  if (rec === null || rec === 'malformed') throw new Error('not signed');
  // The record: owner, type, class, ttl, rdlength, then algorithm name, time (6), fudge (2), MAC size (2), MAC, ...
  const macSizeAt = signed.indexOf(Buffer.from(rec.mac)) - 2;
  const before = Buffer.from(signed.subarray(0, macSizeAt + 2));
  const after = signed.subarray(macSizeAt + 2 + rec.mac.length);
  before.writeUInt16BE(mac.length, macSizeAt);
  const rdlengthAt = signed.indexOf(Buffer.from([0, 250, 0, 255]), rec.start) + 8;
  before.writeUInt16BE(before.readUInt16BE(rdlengthAt) - rec.mac.length + mac.length, rdlengthAt);
  return Buffer.concat([before, mac, after]);
}

t.test('the MAC length: an empty, cut or extended MAC is BADSIG, never accepted and never a crash', (t) => {
  const signed = signMessage(query('lexa', 'SOA'), KEY, { timeSigned: NOW });
  t.equal(verdict(signed.message), 'ok', 'the untouched message is accepted (the helper below is sound)');
  t.equal(verdict(withMac(signed.message, signed.mac)), 'ok', 'rewriting the MAC with itself changes nothing');
  t.equal(verdict(withMac(signed.message, Buffer.alloc(0))), TSIG_BADSIG, 'an empty MAC');
  t.equal(verdict(withMac(signed.message, signed.mac.subarray(0, 16))), TSIG_BADSIG, 'the first half of the right MAC');
  t.equal(verdict(withMac(signed.message, signed.mac.subarray(0, 1))), TSIG_BADSIG, 'one byte of it');
  t.equal(verdict(withMac(signed.message, Buffer.concat([signed.mac, Buffer.alloc(1)]))), TSIG_BADSIG, 'the right MAC and a byte more');
  // The query path answers NOTAUTH with BADSIG, not an answer: an empty MAC must not pass for "unsigned".
  const inner = () => {
    throw new Error('a forged query reached the resolver');
  };
  const reply = withTsig(inner, [KEY], () => NOW * 1000)(withMac(signed.message, Buffer.alloc(0)), { kind: 'message' });
  const rec = reply === null ? null : findTsig(reply);
  t.equal(rec !== null && rec !== 'malformed' ? rec.error : rec, TSIG_BADSIG, 'the signed-query path says BADSIG');
  // A NOTIFY acknowledgement with a cut MAC does not count as acknowledged.
  const ack = signMessage(query('lexa', 'SOA'), KEY, { requestMac: signed.mac, timeSigned: NOW });
  t.ok(checkResponse(ack.message, KEY, signed.mac), 'a genuine acknowledgement');
  t.notOk(checkResponse(withMac(ack.message, ack.mac.subarray(0, 10)), KEY, signed.mac), 'a cut one');
  t.notOk(checkResponse(withMac(ack.message, Buffer.alloc(0)), KEY, signed.mac), 'an empty one');
  t.end();
});

t.test('BADTIME: a signature dated outside the fudge in the future, as in the past', (t) => {
  const q = query('lexa', 'SOA');
  const at = (timeSigned: number) => signMessage(q, KEY, { timeSigned }).message;
  t.equal(verdict(at(NOW - FUDGE)), 'ok', 'the fudge itself, in the past');
  t.equal(verdict(at(NOW + FUDGE)), 'ok', 'the fudge itself, in the future');
  t.equal(verdict(at(NOW - FUDGE - 1)), TSIG_BADTIME, 'a second too old');
  t.equal(verdict(at(NOW + FUDGE + 1)), TSIG_BADTIME, 'a second too far in the future');
  t.equal(verdict(at(NOW + 86_400)), TSIG_BADTIME, 'a day ahead: a captured-then-replayed "future" request');
  t.end();
});

t.test('key names compare canonically: capitals and a trailing dot on either side still match', (t) => {
  const q = query('lexa', 'SOA');
  const declared: TsigKey = { ...KEY, name: 'LeXa-Xfr.' };
  for (const [mine, theirs] of [
    ['LeXa-Xfr.', 'lexa-xfr'],
    ['LeXa-Xfr.', 'LEXA-XFR'],
    ['lexa-xfr', 'LeXa-Xfr.'],
  ] as const) {
    const signed = signMessage(q, { ...KEY, name: theirs }, { timeSigned: NOW });
    t.equal(verdict(signed.message, [{ ...KEY, name: mine }]), 'ok', `declared ${mine}, signed as ${theirs}`);
  }
  // The wire may carry capitals (RFC 8945 digests the canonical form): write them over the lower-case owner.
  const signed = signMessage(q, KEY, { timeSigned: NOW }).message;
  const rec = findTsig(signed);
  if (rec === null || rec === 'malformed') return t.fail('not signed');
  const shouting = Buffer.from(signed);
  shouting.write('LEXA-XFR', rec.start + 1, 'latin1');
  t.equal(verdict(shouting, [declared]), 'ok', 'a capitalized owner name on the wire');
  t.equal(verdict(signMessage(q, { ...KEY, name: 'lexa-xfr2' }, { timeSigned: NOW }).message, [declared]), TSIG_BADKEY, 'another name is still another key');
  t.end();
});

t.test('transfers with a key: the allow list still applies to signed requests, and unsigned ones are refused', (t) => {
  const snap = snapshotOf([instance('web-1', { interfaces: [iface('eth0', ['10.99.0.11'])] })]);
  const serials = new ZoneSerials(zoneOptions(OPTS), () => NOW * 1000);
  const log = memoryLogger();
  const xfr = createTransfer({ snapshot: () => snap, resolver: OPTS, serials, allow: ['127.0.0.1'], key: KEY, log, now: () => NOW * 1000 });
  const rcodeOf = (replies: readonly Uint8Array[] | undefined) => (replies?.[0] === undefined ? 'none' : (replies[0][3]! & 0xf));
  const signed = signMessage(query('lexa', 'AXFR'), KEY, { timeSigned: NOW }).message;
  const inside = xfr(signed, '127.0.0.1');
  t.equal(rcodeOf(inside), 0, 'signed, from an allowed address: the zone');
  t.ok((inside?.length ?? 0) >= 1 && (dnsPacket.decode(Buffer.from(inside![0]!)).answers?.length ?? 0) > 2, 'with its records');
  t.equal(rcodeOf(xfr(signed, '10.0.0.9')), 5, 'signed with the right key, from outside the allow list: REFUSED');
  t.equal(rcodeOf(xfr(signed, '::ffff:10.0.0.9')), 5, 'the same, IPv4-mapped');
  const outside = xfr(signed, '10.0.0.9')!;
  t.equal((dnsPacket.decode(Buffer.from(outside[0]!)).answers ?? []).length, 0, 'no records');
  t.equal(rcodeOf(xfr(query('lexa', 'AXFR'), '127.0.0.1')), 5, 'unsigned, from an allowed address: REFUSED');
  t.equal(rcodeOf(xfr(query('lexa', 'IXFR'), '127.0.0.1')), 5, 'unsigned IXFR too');
  t.match(log.lines.map((l) => l['msg']), ['dns: zone transfer', /not in transfer\.allow/, /not in transfer\.allow/, /not in transfer\.allow/, /unsigned zone transfer refused/, /unsigned zone transfer refused/]);
  // Without a key the allow list alone decides (the case the key must not weaken).
  const open = createTransfer({ snapshot: () => snap, resolver: OPTS, serials, allow: ['127.0.0.1'], key: null, log: silentLogger });
  t.equal(rcodeOf(open(query('lexa', 'AXFR'), '127.0.0.1')), 0, 'no key: unsigned from an allowed address is served');
  t.end();
});
