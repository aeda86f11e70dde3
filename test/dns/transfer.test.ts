import { Buffer } from 'node:buffer';
import dnsPacket from 'dns-packet';
import t from 'tap';
import { silentLogger } from '../../src/log/index.js';
import { resolve, zoneOptions, type ResolveOptions } from '../../src/dns/resolve.js';
import { ZoneSerials } from '../../src/replication/serial.js';
import { createTransfer } from '../../src/replication/transfer.js';
import { withTsig } from '../../src/replication/signed.js';
import { checkRequest, findTsig, signMessage, TSIG_BADKEY, TSIG_BADSIG, TSIG_BADTIME, type TsigKey } from '../../src/replication/tsig.js';
import { zoneContent } from '../../src/dns/zone.js';
import { iface, instance, service, snapshotOf } from '../helpers/model.js';
import { sortedText, zone } from '../helpers/zone.js';

const OPTS: ResolveOptions = { suffix: 'lexa', ttl: 0, soa: { minimum: 5 } };
const KEY: TsigKey = { name: 'lexa-xfr', algorithm: 'hmac-sha256', secret: Buffer.from('0123456789abcdef0123456789abcdef') };
const NOW = 1_700_000_000;

const web = instance('web-1', {
  interfaces: [iface('eth0', ['10.99.0.11'], ['fd42:99::11']), iface('eth1', ['10.100.0.11'])],
  services: [service('http', { port: 80, tags: ['Blue'] })],
});

t.test('zone content: host, interface and service names, SRV with targets; no synthesized forms', (t) => {
  const snap = snapshotOf([web, instance('off', { running: false, interfaces: [iface('eth0', ['10.99.0.99'])] })]);
  t.same(sortedText(zoneContent(snap, 'lexa', zoneOptions(OPTS))), zone(
    'lexa. 0 IN NS ns.lexa.',
    'web-1.lexa. 0 IN A 10.99.0.11',
    'web-1.lexa. 0 IN AAAA fd42:99::11',
    'eth0.if.web-1.lexa. 0 IN A 10.99.0.11',
    'eth0.if.web-1.lexa. 0 IN AAAA fd42:99::11',
    'eth1.if.web-1.lexa. 0 IN A 10.100.0.11',
    'http.service.lexa. 0 IN A 10.99.0.11',
    'http.service.lexa. 0 IN AAAA fd42:99::11',
    'blue.http.service.lexa. 0 IN A 10.99.0.11',
    'blue.http.service.lexa. 0 IN AAAA fd42:99::11',
    '_http._tcp.service.lexa. 0 IN SRV 1 255 80 eth0.if.web-1.lexa.',
    '_http._blue.service.lexa. 0 IN SRV 1 255 80 eth0.if.web-1.lexa.',
  ));
  t.same(sortedText(zoneContent(snap, '0.99.10.in-addr.arpa', zoneOptions(OPTS))), zone(
    '0.99.10.in-addr.arpa. 0 IN NS ns.lexa.',
    '11.0.99.10.in-addr.arpa. 0 IN PTR web-1.lexa.',
  ));
  t.end();
});

t.test('the serial moves exactly when the content changes, never backwards, and the resolver\'s SOA agrees', (t) => {
  let now = NOW * 1000;
  const serials = new ZoneSerials(zoneOptions(OPTS), () => now);
  const opts: ResolveOptions = { ...OPTS, serial: (z, s) => serials.serial(z, s) };
  const a = snapshotOf([web]);
  const first = serials.refresh('lexa', a).serial;
  t.equal(first, NOW, 'the first serial is the clock');
  now += 60_000;
  const b = a.withConnected(true).withConnected(false);
  t.not(b, a, 'a new snapshot');
  t.equal(serials.refresh('lexa', b).serial, first, 'a no-op update keeps the serial');
  t.equal(serials.refresh('lexa', a.withInstance(instance('x', { running: false }))).serial, first, 'a stopped instance is not zone content');
  const c = a.withInstance(instance('web-2', { interfaces: [iface('eth0', ['10.99.0.12'])] }));
  t.equal(serials.refresh('lexa', c).serial, NOW + 60, 'a change takes the clock');
  t.equal(serials.refresh('0.99.10.in-addr.arpa', a).serial, NOW + 60, 'each zone has its own serial');
  t.equal(serials.refresh('0.99.10.in-addr.arpa', a.withInstance(instance('web-1', { ...web, services: [] }))).serial, NOW + 60, 'a service change is not reverse-zone content');
  const d = c.withoutInstance('default/web-2');
  t.equal(serials.refresh('lexa', d).serial, NOW + 61, 'changes faster than the clock count up by one');
  const out = resolve(d, { name: 'nope.lexa', type: 'A', class: 'IN' }, opts);
  t.equal(out.kind === 'nxdomain' ? out.soa.data.serial : -1, NOW + 61, 'the negative answer\'s SOA has the same serial');
  const e = d.withInstance(instance('web-3', { interfaces: [iface('eth0', ['10.99.0.13'])] }));
  const lagging = resolve(e, { name: 'nope.lexa', type: 'A', class: 'IN' }, opts);
  t.equal(lagging.kind === 'nxdomain' ? lagging.soa.data.serial : -1, NOW + 61, 'queries see the latest numbered version\'s serial, not a pass of their own');
  t.end();
});

function query(name: string, type: string, extra: Partial<dnsPacket.Packet> = {}): Buffer {
  return dnsPacket.encode({ id: 4242, type: 'query', flags: 0, questions: [{ name, type: type as 'A', class: 'IN' }], ...extra });
}

t.test('AXFR: SOA first and last, split into messages of at most 16 KiB, each one signed in sequence', (t) => {
  const many = Array.from({ length: 600 }, (_, i) => instance(`host-${i}`, { interfaces: [iface('eth0', [`10.99.${i >> 8}.${i & 255}`])] }));
  const snap = snapshotOf(many);
  const serials = new ZoneSerials(zoneOptions(OPTS), () => NOW * 1000);
  const xfr = createTransfer({ snapshot: () => snap, resolver: OPTS, serials, allow: ['127.0.0.0/8'], key: KEY, log: silentLogger, now: () => NOW * 1000 });
  const signed = signMessage(query('lexa', 'AXFR'), KEY, { timeSigned: NOW });
  const replies = xfr(signed.message, '::ffff:127.0.0.1') ?? [];
  t.ok(replies.length > 1, `${replies.length} messages`);
  let prior = signed.mac;
  const records: dnsPacket.Answer[] = [];
  replies.forEach((r, i) => {
    t.ok(r.length <= 16 * 1024 + 200, `message ${i} is ${r.length} bytes`);
    const tsig = findTsig(r);
    if (tsig === null || tsig === 'malformed') return t.fail('unsigned');
    // Verify as a secondary would: recompute the MAC over the prior MAC and this message.
    const body = Buffer.from(r.subarray(0, tsig.start));
    body.writeUInt16BE(body.readUInt16BE(10) - 1, 10);
    const again = signMessage(body, KEY, i === 0 ? { requestMac: prior, timeSigned: tsig.timeSigned } : { priorMac: prior, timeSigned: tsig.timeSigned });
    t.same(again.mac, tsig.mac, `message ${i} MAC`);
    prior = tsig.mac;
    records.push(...(dnsPacket.decode(body).answers ?? []));
  });
  t.equal(records[0]?.type, 'SOA');
  t.equal(records.at(-1)?.type, 'SOA');
  t.equal(records.length, 2 + 1 + 2 * 600, 'SOA, NS, a host and an interface name per instance, SOA');
  t.end();
});

t.test('IXFR: up to date gets the SOA alone; behind gets the whole zone; UDP and other types are not transfers', (t) => {
  const snap = snapshotOf([web]);
  const serials = new ZoneSerials(zoneOptions(OPTS), () => NOW * 1000);
  const xfr = createTransfer({ snapshot: () => snap, resolver: OPTS, serials, allow: ['127.0.0.1'], key: null, log: silentLogger });
  const soa = (serial: number): dnsPacket.Answer => ({ name: 'lexa', type: 'SOA', class: 'IN', ttl: 0, data: { mname: 'a', rname: 'b', serial, refresh: 1, retry: 1, expire: 1, minimum: 1 } });
  const current = dnsPacket.decode(Buffer.from(xfr(query('lexa', 'IXFR', { authorities: [soa(NOW)] }), '127.0.0.1')![0]!));
  t.equal(current.answers?.length, 1, 'one record');
  t.equal(current.answers?.[0]?.type, 'SOA');
  const behind = dnsPacket.decode(Buffer.from(xfr(query('lexa', 'IXFR', { authorities: [soa(NOW - 5)] }), '127.0.0.1')![0]!));
  t.ok((behind.answers?.length ?? 0) > 3, 'the whole zone');
  t.equal(xfr(query('lexa', 'SOA'), '127.0.0.1'), undefined, 'a SOA query is not a transfer');
  const refused = dnsPacket.decode(Buffer.from(xfr(query('lexa', 'AXFR'), '10.0.0.1')![0]!));
  t.equal((refused as { rcode?: string }).rcode, 'REFUSED', 'outside the allow list');
  t.equal(refused.answers?.length, 0);
  t.end();
});

t.test('TSIG: round trip, and each failure named', (t) => {
  const q = query('lexa', 'SOA');
  const signed = signMessage(q, KEY, { timeSigned: NOW });
  const ok = checkRequest(signed.message, [KEY], NOW + 10);
  t.equal(ok.kind, 'ok');
  if (ok.kind === 'ok') t.same(ok.stripped, q, 'stripping gives back the message as it was');
  const again = signMessage(ok.kind === 'ok' ? ok.stripped : q, KEY, { timeSigned: NOW });
  t.same(again.message, signed.message, 'sign → strip → sign is byte-identical');
  t.equal(checkRequest(q, [KEY], NOW).kind, 'unsigned');
  const rejected = (msg: Buffer, now: number) => {
    const c = checkRequest(msg, [KEY], now);
    return c.kind === 'rejected' ? c.error : c.kind;
  };
  t.equal(rejected(signed.message, NOW + 301), TSIG_BADTIME, 'outside the fudge');
  t.equal(rejected(signMessage(q, { ...KEY, secret: Buffer.from('other') }, { timeSigned: NOW }).message, NOW), TSIG_BADSIG);
  t.equal(rejected(signMessage(q, { ...KEY, name: 'nokey' }, { timeSigned: NOW }).message, NOW), TSIG_BADKEY);
  const tampered = Buffer.from(signed.message);
  tampered[13] = tampered[13]! ^ 1;
  t.equal(rejected(tampered, NOW), TSIG_BADSIG, 'a changed byte');
  t.equal(checkRequest(signed.message.subarray(0, signed.message.length - 3), [KEY], NOW).kind, 'malformed', 'a cut message');
  t.end();
});

t.test('bad input: random and cut messages never throw through the transfer and TSIG paths', (t) => {
  const snap = snapshotOf([web]);
  const serials = new ZoneSerials(zoneOptions(OPTS), () => NOW * 1000);
  const xfr = createTransfer({ snapshot: () => snap, resolver: OPTS, serials, allow: ['127.0.0.1'], key: KEY, log: silentLogger, now: () => NOW * 1000 });
  const inner = (q: Uint8Array) => q.subarray(0, 12);
  const tsigHandle = withTsig(inner, [KEY], () => NOW * 1000);
  const signed = signMessage(query('lexa', 'AXFR'), KEY, { timeSigned: NOW }).message;
  let seed = 7;
  const rnd = () => ((seed = (Math.imul(seed, 1103515245) + 12345) >>> 0) / 2 ** 32);
  let answered = 0;
  for (let i = 0; i < 3000; i++) {
    const msg = Buffer.from(i % 2 === 0 ? signed : query('lexa', 'IXFR'));
    const cut = msg.subarray(0, Math.floor(rnd() * msg.length) + 1);
    for (let k = 0; k < 3; k++) cut[Math.floor(rnd() * cut.length)] = Math.floor(rnd() * 256);
    const out = xfr(cut, '127.0.0.1');
    if (out !== undefined) {
      answered++;
      for (const m of out) t.ok(m.length >= 12, 'every reply has a header') || t.fail(cut.toString('hex'));
    }
    tsigHandle(cut, { kind: 'message' });
  }
  t.ok(answered > 0, `${answered} of 3000 broken messages still read as transfers and got a reply`);
  t.end();
});
