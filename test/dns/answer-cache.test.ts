import { Buffer } from 'node:buffer';
import dnsPacket, { type Answer } from 'dns-packet';
import t from 'tap';
import { silentLogger } from '../../src/log/index.js';
import { cacheKey, cachedAnswers, VARIANTS } from '../../src/dns/answer-cache.js';
import { createHandler } from '../../src/dns/handler.js';
import { datagramLimit, DEFAULT_MAX_UDP_REPLY, MESSAGE_LIMIT, type ReplyLimit } from '../../src/dns/wire.js';
import type { Snapshot } from '../../src/streams/index.js';
import { clustered, OPTS } from '../helpers/dns-fixture.js';
import { iface, instance, seeded, snapshotOf } from '../helpers/model.js';

// The per-snapshot answer cache (answer-cache.ts) against the full path it stands in for: the same handler with
// the cache off. Answer order is fixed (random = 0) so the two must agree byte for byte.

const UDP = datagramLimit(DEFAULT_MAX_UDP_REPLY);
const fixed = { ...OPTS, random: () => 0 };

function q(name: string, type: dnsPacket.RecordType, o: { id?: number; rd?: boolean; edns?: { size?: number; do?: boolean; version?: number } } = {}): Buffer {
  const additionals: Answer[] = [];
  if (o.edns) {
    additionals.push({
      name: '.',
      type: 'OPT',
      udpPayloadSize: o.edns.size ?? 1232,
      extendedRcode: 0,
      ednsVersion: o.edns.version ?? 0,
      flags: o.edns.do ? dnsPacket.DNSSEC_OK : 0,
      flag_do: o.edns.do ?? false,
      options: [],
    });
  }
  return dnsPacket.encode({ type: 'query', id: o.id ?? 1, flags: o.rd === false ? 0 : dnsPacket.RECURSION_DESIRED, questions: [{ name, type }], additionals });
}

t.test('a cached reply is the full path reply, byte for byte, with the asker ID and RD bit', async (t) => {
  const snap = clustered(); // one snapshot object throughout, as between two changes of LXD
  const full = createHandler({ snapshot: () => snap, resolver: fixed, log: silentLogger, cache: false });
  // The cache over a full path that counts its calls: every call is a miss, every other query a hit.
  let misses = 0;
  const cached = cachedAnswers((query, limit) => (misses++, full(query, limit)), () => snap);
  const cases: [Buffer, ReplyLimit][] = [];
  for (const name of ['web-1.lexa', 'WEB-1.lexa', 'nope.lexa', '_https._tcp.service.lexa', '*.lexa', 'lexa', 'cluster.web-1.lexa', 'example.com'])
    for (const type of ['A', 'AAAA', 'SRV', 'SOA', 'MX'] as const)
      for (const edns of [undefined, { size: 512 }, { size: 1232, do: true }, { size: 4096 }])
        for (const limit of [UDP, datagramLimit(512), MESSAGE_LIMIT]) cases.push([q(name, type, edns ? { edns } : {}), limit]);
  // Asked this often, every key is past its misses (one, or one per kept order for a reply of several records)
  // and into hits; the IDs and RD bits differ between asks, so each hit is patched.
  const asks = Array.from({ length: VARIANTS + 2 }, (_, i) => [(0x1234 * (i + 1)) & 0xffff, i % 2] as const);
  let mismatches = 0;
  let multiRecordHits = 0;
  const wrongMisses: string[] = [];
  const seen = new Set<number | undefined>(); // some cases share a key (a message transport ignores the EDNS size)
  for (const [query, limit] of cases) {
    const before = misses;
    const key = cacheKey(query, limit);
    for (const [id, rd] of asks) {
      const again = Buffer.from(query);
      again.writeUInt16BE(id, 0);
      again[2] = (again[2]! & 0xfe) | rd;
      const a = cached(again, limit);
      const b = full(again, limit);
      if (a === null || b === null ? a !== b : Buffer.compare(Buffer.from(a), Buffer.from(b)) !== 0) mismatches++;
    }
    const reply = full(query, limit);
    const records = reply === null ? 0 : (reply[6]! << 8) | reply[7]!;
    const expected = seen.has(key) ? 0 : records > 1 ? VARIANTS : 1;
    if (misses - before !== expected) wrongMisses.push(`${JSON.stringify(dnsPacket.decode(query).questions)} ${records} answers: ${misses - before} misses`);
    if (records > 1) multiRecordHits += asks.length - expected;
    seen.add(key);
  }
  t.equal(mismatches, 0, `${cases.length * asks.length} queries, hits and misses alike, equal the full path`);
  t.same(wrongMisses, [], 'each key misses once per kept order (one for a reply of at most one record), then hits');
  t.ok(multiRecordHits > 0, `${multiRecordHits} hits on replies of several records`);
});

t.test('queries that are not plain go the full way every time', async (t) => {
  t.equal(cacheKey(q('web-1.lexa', 'A', { edns: { version: 1 } }), UDP), undefined, 'EDNS version 1');
  const two = Buffer.from(q('web-1.lexa', 'A'));
  two[5] = 2;
  t.equal(cacheKey(two, UDP), undefined, 'two questions');
  t.equal(cacheKey(Buffer.concat([q('web-1.lexa', 'A'), Buffer.from([0])]), UDP), undefined, 'a byte after the question');
  const response = Buffer.from(q('web-1.lexa', 'A'));
  response[2]! |= 0x80;
  t.equal(cacheKey(response, UDP), undefined, 'a response');
  t.equal(cacheKey(Buffer.alloc(5), UDP), undefined, 'shorter than a header');
  t.not(cacheKey(q('web-1.lexa', 'A'), UDP), cacheKey(q('WEB-1.lexa', 'A'), UDP), 'the case of the question is part of the key');
  t.not(cacheKey(q('web-1.lexa', 'A', { edns: { size: 1232 } }), UDP), cacheKey(q('web-1.lexa', 'A', { edns: { size: 4096 } }), UDP), 'so is the size limit');
  t.equal(cacheKey(q('web-1.lexa', 'A', { edns: { size: 1232 } }), MESSAGE_LIMIT), cacheKey(q('web-1.lexa', 'A', { edns: { size: 4096 } }), MESSAGE_LIMIT), 'which a message transport does not take from EDNS');
});

t.test('a new snapshot drops every cached answer; order still rotates', async (t) => {
  let snap: Snapshot = snapshotOf([instance('web-1', { interfaces: [iface('eth0', ['10.0.0.1'])] })]);
  const h = createHandler({ snapshot: () => snap, resolver: { ...OPTS, random: seeded(3) }, log: silentLogger });
  const a = (name: string) => dnsPacket.decode(Buffer.from(h(q(name, 'A'), UDP)!)).answers!.map((r) => String((r as { data: unknown }).data));
  t.same(a('web-1.lexa'), ['10.0.0.1']);
  t.same(a('web-1.lexa'), ['10.0.0.1'], 'a hit');
  snap = snap.withInstance(instance('web-1', { interfaces: [iface('eth0', ['10.0.0.2'])] }));
  t.same(a('web-1.lexa'), ['10.0.0.2'], 'the new address at once after the change');
  snap = snapshotOf(Array.from({ length: 6 }, (_, i) => instance(`w-${i}`, { interfaces: [iface('eth0', [`10.0.1.${i}`])] })));
  const orders = new Set(Array.from({ length: 40 }, () => a('w-*.lexa').join()));
  t.ok(orders.size > 1 && orders.size <= 4, `${orders.size} orders over 40 queries: rotation among a few kept variants`);
  for (const o of orders) t.equal(o.split(',').sort().join(), ['10.0.1.0', '10.0.1.1', '10.0.1.2', '10.0.1.3', '10.0.1.4', '10.0.1.5'].join(), 'each the whole set');
});

t.test('two questions whose keys hash alike each get their own answer (a collision costs a miss, never a wrong answer)', async (t) => {
  // Keys are found by a 32-bit hash: search scrambled names for two that collide (a birthday search, ~80,000 names
  // for even odds; the names and the hash are fixed, so the pair is the same on every run).
  const byHash = new Map<number, string>();
  let pair: [string, string] | undefined;
  for (let i = 0; pair === undefined && i < 400_000; i++) {
    const name = `w${(Math.imul(i, 0x9e3779b1) >>> 0).toString(36)}.lexa`;
    const hash = cacheKey(q(name, 'A'), UDP)!;
    const other = byHash.get(hash);
    if (other !== undefined) pair = [other, name];
    else byHash.set(hash, name);
  }
  if (pair === undefined) throw new Error('no colliding pair among 400,000 names');
  const [a, b] = pair;
  const snap = snapshotOf([instance(a.replace('.lexa', ''), { interfaces: [iface('eth0', ['10.0.0.1'])] }), instance(b.replace('.lexa', ''), { interfaces: [iface('eth0', ['10.0.0.2'])] })]);
  const full = createHandler({ snapshot: () => snap, resolver: fixed, log: silentLogger, cache: false });
  const cached = cachedAnswers(full, () => snap);
  for (const name of [a, a, b, b, a, b]) {
    const reply = dnsPacket.decode(Buffer.from(cached(q(name, 'A'), UDP)!));
    t.equal(reply.questions?.[0]?.name, name, `${name}: the reply is to its own question`);
    t.same(reply.answers?.map((r) => (r.type === 'A' ? r.data : r.type)), [name === a ? '10.0.0.1' : '10.0.0.2'], `${name}: its own address`);
  }
});
