import { Buffer } from 'node:buffer';
import dnsPacket from 'dns-packet';
import t from 'tap';
import { silentLogger } from '../../src/log/index.js';
import { zoneOptions, type ResolveOptions } from '../../src/dns/resolve.js';
import { ZoneSerials } from '../../src/replication/serial.js';
import { createTransfer } from '../../src/replication/transfer.js';
import { withTsig } from '../../src/replication/signed.js';
import { checkResponse, signMessage, type TsigKey } from '../../src/replication/tsig.js';
import { createHandler, datagramLimit } from '../../src/dns/index.js';
import { iface, instance, service, snapshotOf } from '../helpers/model.js';

// Defects `npm run fuzz` found (docs/reliability.md, "Bad input"), each reduced to the input that showed it.

const OPTS: ResolveOptions = { suffix: 'lexa', ttl: 0, soa: { minimum: 5 } };
const KEY: TsigKey = { name: 'lexa-xfr', algorithm: 'hmac-sha256', secret: Buffer.from('0123456789abcdef0123456789abcdef') };
const NOW = 1_700_000_000;
const NOTAUTH = 9;
const snap = snapshotOf([instance('web-1', { interfaces: [iface('eth0', ['10.99.0.11'])] })]);

/** A query for `type` whose question name is `labels` labels of 63 `a`s and then `lexa` (4 labels: 261 bytes). */
function longNameQuery(type: number, labels: number): Buffer {
  const parts = [Buffer.from([0x12, 0x34, 0x00, 0x00, 0, 1, 0, 0, 0, 0, 0, 0])];
  for (let i = 0; i < labels; i++) parts.push(Buffer.from([63]), Buffer.alloc(63, 0x61));
  parts.push(Buffer.from([4]), Buffer.from('lexa'), Buffer.from([0, type >> 8, type & 0xff, 0, 1]));
  return Buffer.concat(parts);
}

t.test('a transfer query whose name is longer than 255 bytes is not a transfer: no reply echoes the bad name', (t) => {
  // Found by the fuzzer (dns target, seed 1, case 5093): the reply copied a 2,000-byte question name, a message no
  // client can decode (RFC 1035 §3.1: names are at most 255 bytes). The handler answers it FORMERR instead.
  const serials = new ZoneSerials(zoneOptions(OPTS), () => NOW * 1000);
  const xfr = createTransfer({ snapshot: () => snap, resolver: OPTS, serials, allow: ['127.0.0.1'], key: null, log: silentLogger });
  for (const type of [252, 251]) {
    t.equal(xfr(longNameQuery(type, 4), '127.0.0.1'), undefined, `type ${type}: a 261-byte name is left to the handler`);
    const fits = xfr(longNameQuery(type, 3), '127.0.0.1');
    t.ok(fits !== undefined, `type ${type}: a 197-byte name is still a transfer query`);
    for (const m of fits ?? []) t.doesNotThrow(() => dnsPacket.decode(Buffer.from(m)), 'and its replies decode');
  }
  t.end();
});

t.test('a response carrying a TSIG record is dropped, never answered (two servers would answer each other)', (t) => {
  // Found by the fuzzer (dns target, seed 1, case 4549): a message with QR set and a TSIG record that fails the
  // check got a NOTAUTH reply, itself a response with a TSIG record: sent with a spoofed source to another lexa,
  // the two would answer each other's replies. Every response is dropped (wire.ts), signed or not.
  // The inner handler as wire.ts's: a response (QR) is dropped, a query gets a header back.
  const inner = withTsig((q) => ((q[2]! & 0x80) !== 0 ? null : q.subarray(0, 12)), [KEY], () => NOW * 1000);
  const query = dnsPacket.encode({ type: 'query', id: 9, questions: [{ type: 'A', name: 'web-1.lexa' }] });
  const good = signMessage(query, KEY, { timeSigned: NOW }).message;
  const response = Buffer.from(good);
  response[2] = response[2]! | 0x80;
  t.equal(inner(response, { kind: 'message' }), null, 'a signed response: dropped');
  const badMac = Buffer.from(response);
  badMac[badMac.length - 10] = badMac[badMac.length - 10]! ^ 0xff;
  t.equal(inner(badMac, { kind: 'message' }), null, 'a response whose MAC fails: dropped, not NOTAUTH');
  const wrongKey = signMessage(query, { ...KEY, name: 'other-key' }, { timeSigned: NOW }).message;
  wrongKey[2] = wrongKey[2]! | 0x80;
  t.equal(inner(wrongKey, { kind: 'message' }), null, 'a response signed with an unknown key: dropped, not BADKEY');
  t.end();
});

t.test('a rejected TSIG reply echoes only a question it can decode, and fits a datagram', (t) => {
  // Found by the fuzzer (dns target, seed 2, cases 11923, 42762, 24847): a signed query failing its check got a
  // NOTAUTH reply copying the question as it came: a name over 255 bytes or a compression pointer (which then
  // points elsewhere in the shorter reply) made the reply undecodable, and an 8 KiB question went back over UDP
  // to a client that can take 512 bytes.
  const handle = withTsig((q) => q.subarray(0, 12), [KEY], () => NOW * 1000);
  const udp = { kind: 'datagram', max: 4096 } as const;
  const signedWith = (question: Buffer, key: TsigKey = KEY): Buffer => {
    const head = Buffer.from([0xab, 0xcd, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0]);
    const signed = signMessage(Buffer.concat([head, question]), key, { timeSigned: NOW }).message;
    signed[signed.length - 10] = signed[signed.length - 10]! ^ 0xff; // inside the MAC: BADSIG
    return signed;
  };
  const label = (n: number) => Buffer.concat([Buffer.from([63]), Buffer.alloc(63, n)]);
  const long = Buffer.concat([label(0x61), label(0x62), label(0x63), label(0x64), label(0x65), Buffer.from([0, 0, 1, 0, 1])]);
  const pointer = Buffer.from([4, 0x6c, 0x65, 0x78, 0x61, 0xc0, 0x13, 0, 1, 0, 1]);
  for (const [what, question] of [['a 321-byte name', long], ['a compression pointer', pointer]] as const) {
    const reply = handle(signedWith(question), udp);
    t.ok(reply !== null && reply.length <= 512, `${what}: a reply of at most 512 bytes (${reply?.length})`);
    t.doesNotThrow(() => dnsPacket.decode(Buffer.from(reply!)), `${what}: the reply decodes`);
    t.equal(Buffer.from(reply!).readUInt16BE(4), 0, `${what}: without the question`);
  }
  // A plain question is echoed as before, and the BADSIG reply carries its TSIG record.
  const plain = handle(signedWith(Buffer.from([5, 0x77, 0x65, 0x62, 0x2d, 0x31, 4, 0x6c, 0x65, 0x78, 0x61, 0, 0, 1, 0, 1])), udp)!;
  const decoded = dnsPacket.decode(Buffer.from(plain));
  t.same([decoded.questions?.[0]?.name, plain[3]! & 0xf, decoded.additionals?.[0]?.type], ['web-1.lexa', NOTAUTH, 'TSIG']);
  // An unknown key name of 250 bytes and a 249-byte question: the BADKEY reply echoes it; over UDP past 512 bytes, it is truncated (TC)
  // to the header and question, so the client asks again over TCP, where it fits.
  const bigKey = { ...KEY, name: Array.from({ length: 5 }, () => 'k'.repeat(49)).join('.') };
  const q250 = Buffer.concat([label(0x61), label(0x62), label(0x63), Buffer.from([50]), Buffer.alloc(50, 0x64), Buffer.from([4, 0x6c, 0x65, 0x78, 0x61, 0, 0, 1, 0, 1])]);
  const badKey = signMessage(Buffer.concat([Buffer.from([0xab, 0xcd, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0]), q250]), bigKey, { timeSigned: NOW }).message;
  const overUdp = handle(badKey, udp)!;
  t.ok(overUdp.length <= 512, `BADKEY over UDP: ${overUdp.length} bytes`);
  t.ok((overUdp[2]! & 0x02) !== 0, 'with TC set');
  t.doesNotThrow(() => dnsPacket.decode(Buffer.from(overUdp)));
  t.equal(overUdp[3]! & 0xf, NOTAUTH);
  const overTcp = handle(badKey, { kind: 'message' })!;
  t.ok(overTcp.length > 512 && dnsPacket.decode(Buffer.from(overTcp)).additionals?.[0]?.type === 'TSIG', 'over TCP: the whole BADKEY reply');
  t.end();
});

t.test('a signed query over UDP gets a signed reply that still fits the client: room is kept for the TSIG record', async (t) => {
  // Found while writing the fuzzer's oracle notes (docs/reliability.md): the handler fitted the reply to the
  // client's size, then the TSIG record (~80 bytes) was appended past it: 577 bytes to a client that takes 512.
  const snap40 = snapshotOf(Array.from({ length: 40 }, (_, i) => instance(`w-${i}`, { interfaces: [iface('eth0', [`10.0.0.${i + 1}`])], services: [service('web')] })));
  const handle = withTsig(createHandler({ snapshot: () => snap40, resolver: OPTS, log: silentLogger, cache: false }), [KEY], () => NOW * 1000);
  const query = dnsPacket.encode({ type: 'query', id: 5, questions: [{ type: 'A', name: 'web.service.lexa' }] });
  const signed = signMessage(query, KEY, { timeSigned: NOW });
  for (const [what, q, bound] of [['no EDNS', query, 512], ['EDNS 600', withOpt(query, 600), 600]] as const) {
    const s = signMessage(q, KEY, { timeSigned: NOW });
    const reply = handle(s.message, datagramLimit(4096))!;
    t.ok(reply.length <= bound, `${what}: ${reply.length} bytes, at most ${bound}`);
    t.ok(checkResponse(reply, KEY, s.mac), `${what}: and its signature verifies`);
  }
  const overTcp = handle(signed.message, { kind: 'message' })!;
  t.equal(dnsPacket.decode(Buffer.from(overTcp)).answers?.length, 40, 'over TCP every answer, as before');
});

/** `q` with an EDNS OPT advertising `size`. */
function withOpt(q: Buffer, size: number): Buffer {
  const opt = Buffer.from([0, 0, 41, size >> 8, size & 0xff, 0, 0, 0, 0, 0, 0]);
  const out = Buffer.concat([q, opt]);
  out.writeUInt16BE(out.readUInt16BE(10) + 1, 10);
  return out;
}
