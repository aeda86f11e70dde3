import dnsPacket from 'dns-packet';
import t from 'tap';
import { ADDRESS_BYTES, ResponseRateLimiter, writeAddress, type RateLimitSettings, type Verdict } from '../../src/servers/dns/rate-limit.js';
import { truncatedReply } from '../../src/dns/wire.js';
import { FakeClock } from '../helpers/fake-clock.js';
import { seeded } from '../helpers/model.js';

// Response rate limiting (rate-limit.ts) driven by a fake clock: BIND's accounting (one second of credit, up to
// `window` seconds of debt), slips, prefixes, exemptions, and the memory bound.

const BASE: RateLimitSettings = {
  responsesPerSecond: 10,
  slip: 2,
  windowMs: 5000,
  ipv4Prefix: 24,
  ipv6Prefix: 56,
  maxPrefixes: 1000,
  exempt: [],
};

function limiter(o: Partial<RateLimitSettings> = {}): { rrl: ResponseRateLimiter; clock: FakeClock } {
  const clock = new FakeClock();
  return { rrl: new ResponseRateLimiter({ ...BASE, ...o }, () => clock.now()), clock };
}

function addr(text: string): Uint8Array {
  const b = new Uint8Array(ADDRESS_BYTES);
  if (!writeAddress(text, b, 0)) throw new Error(`not an address: ${text}`);
  return b;
}

/** The verdicts of `n` replies to `source`, counted. */
function burst(rrl: ResponseRateLimiter, source: string, n: number): Record<Verdict, number> {
  const out = { send: 0, slip: 0, drop: 0 };
  const a = addr(source);
  for (let i = 0; i < n; i++) out[rrl.check(a)]++;
  return out;
}

t.test('a prefix gets one second of replies at once, then every second-th limited reply slips', async (t) => {
  const { rrl } = limiter();
  const verdicts = Array.from({ length: 16 }, () => rrl.check(addr('192.0.2.7')));
  t.same(verdicts.slice(0, 10), Array(10).fill('send'), 'the first 10 (one second of credit) are sent');
  t.same(verdicts.slice(10), ['drop', 'slip', 'drop', 'slip', 'drop', 'slip'], 'then drop, slip, drop, slip...');
  t.same(rrl.counts, { slipped: 3, dropped: 3 });
});

t.test('credit comes back at the rate, never more than one second of it', async (t) => {
  const { rrl, clock } = limiter();
  t.same(burst(rrl, '192.0.2.1', 10), { send: 10, slip: 0, drop: 0 });
  await clock.advance(500);
  t.equal(burst(rrl, '192.0.2.1', 20).send, 5, 'half a second earns 5');
  await clock.advance(60_000);
  t.equal(burst(rrl, '192.0.2.1', 50).send, 10, 'a long quiet earns no more than one second');
});

t.test('a flood builds up to `window` seconds of debt: limited until quiet that long', async (t) => {
  const { rrl, clock } = limiter();
  for (let s = 0; s < 20; s++) {
    burst(rrl, '198.51.100.9', 100);
    await clock.advance(1000);
  }
  // Debt is at its floor, -10 × 5 s = -50, less the 10 credits of the last second: -40.
  await clock.advance(3000); // -10
  t.equal(burst(rrl, '198.51.100.9', 1).send, 0, 'still limited 4 s after the flood (window 5 s)');
  await clock.advance(1200); // 11 × ... the failed try cost 1: -11 + 12 = +1
  t.equal(burst(rrl, '198.51.100.9', 1).send, 1, 'answered once the debt is paid');
});

t.test('sources share an account by prefix: IPv4 /24, IPv6 /56, both configurable', async (t) => {
  const { rrl } = limiter();
  t.equal(burst(rrl, '203.0.113.1', 10).send, 10);
  t.equal(burst(rrl, '203.0.113.254', 5).send, 0, 'same /24: limited');
  t.equal(burst(rrl, '203.0.114.1', 5).send, 5, 'next /24: its own account');
  t.equal(burst(rrl, '2001:db8:0:1200::1', 10).send, 10);
  t.equal(burst(rrl, '2001:db8:0:12ff:ffff::9', 5).send, 0, 'same /56: limited');
  t.equal(burst(rrl, '2001:db8:0:1300::1', 5).send, 5, 'next /56: its own account');
  t.equal(burst(rrl, '::ffff:203.0.113.9', 1).send, 0, 'an IPv4-mapped source is its IPv4 address');

  const exact = limiter({ ipv4Prefix: 32, ipv6Prefix: 128 }).rrl;
  t.equal(burst(exact, '127.0.0.5', 30).send, 10);
  t.equal(burst(exact, '127.0.0.1', 10).send, 10, '/32: the neighbour address is unaffected');
  const odd = limiter({ ipv4Prefix: 20, ipv6Prefix: 61 }).rrl;
  t.equal(burst(odd, '10.1.16.1', 10).send, 10);
  t.equal(burst(odd, '10.1.31.200', 1).send, 0, '/20 spans 10.1.16.0-10.1.31.255');
  t.equal(burst(odd, '10.1.32.1', 1).send, 1);
  t.equal(burst(odd, '2001:db8::1', 10).send, 10);
  t.equal(burst(odd, '2001:db8:0:7::1', 1).send, 0, '/61 spans :0 to :7 of the fourth group');
  t.equal(burst(odd, '2001:db8:0:8::1', 1).send, 1);
});

t.test('exempt sources are never limited', async (t) => {
  const { rrl } = limiter({ exempt: ['127.0.0.0/8', '::1', '10.99.0.1'] });
  t.same(burst(rrl, '127.0.0.5', 1000), { send: 1000, slip: 0, drop: 0 }, '127/8');
  t.same(burst(rrl, '::1', 1000), { send: 1000, slip: 0, drop: 0 }, '::1');
  t.same(burst(rrl, '10.99.0.1', 1000), { send: 1000, slip: 0, drop: 0 }, 'one address');
  t.equal(burst(rrl, '10.99.0.2', 20).send, 10, 'its neighbour is limited');
  t.equal(rrl.tracked, 1, 'exempt sources take no account');
});

t.test('slip 0 drops every limited reply, slip 1 slips every one', async (t) => {
  t.same(burst(limiter({ slip: 0 }).rrl, '192.0.2.1', 30), { send: 10, slip: 0, drop: 20 });
  t.same(burst(limiter({ slip: 1 }).rrl, '192.0.2.1', 30), { send: 10, slip: 20, drop: 0 });
  t.same(burst(limiter({ slip: 3 }).rrl, '192.0.2.1', 40), { send: 10, slip: 10, drop: 20 });
});

t.test('memory is bounded: at most maxPrefixes accounts, the oldest forgotten first', async (t) => {
  const { rrl } = limiter({ maxPrefixes: 3 });
  t.equal(burst(rrl, '10.0.1.1', 20).send, 10);
  for (const p of ['10.0.2.1', '10.0.3.1']) burst(rrl, p, 1);
  t.equal(burst(rrl, '10.0.1.1', 1).send, 0, 'three tracked: 10.0.1/24 still limited');
  for (let i = 0; i < 5000; i++) rrl.check(addr(`10.${i >> 8}.${i & 255}.1`));
  t.equal(rrl.tracked, 3, 'after 5000 prefixes: still 3 accounts');
  t.equal(burst(rrl, '10.0.1.1', 20).send, 10, 'an evicted prefix starts afresh (no more than a new one gets)');
});

t.test('agrees with a plain per-prefix model over random traffic', async (t) => {
  // The model: BIND's accounting written the obvious way, one Map entry per /24, no eviction.
  const random = seeded(15);
  const { rrl, clock } = limiter({ responsesPerSecond: 7, slip: 3, windowMs: 3000, maxPrefixes: 1_000_000 });
  const model = new Map<string, { balance: number; at: number; n: number }>();
  let mismatches = 0;
  for (let step = 0; step < 20_000; step++) {
    if (random() < 0.05) await clock.advance(Math.floor(random() * 700));
    const ip = `10.0.${Math.floor(random() * 6)}.${Math.floor(random() * 256)}`;
    const key = ip.slice(0, ip.lastIndexOf('.'));
    const now = clock.now();
    let m = model.get(key);
    if (m === undefined) model.set(key, (m = { balance: 7, at: now, n: 0 }));
    m.balance = Math.max(-21, Math.min(7, m.balance + ((now - m.at) * 7) / 1000) - 1);
    m.at = now;
    const want: Verdict = m.balance >= 0 ? 'send' : ++m.n % 3 === 0 ? 'slip' : 'drop';
    if (rrl.check(addr(ip)) !== want) mismatches++;
  }
  t.equal(mismatches, 0, '20,000 replies, same verdicts');
});

t.test('writeAddress reads every form a socket reports into 16 bytes', async (t) => {
  const hex = (b: Uint8Array) => Buffer.from(b).toString('hex');
  t.equal(hex(addr('192.0.2.33')), '00000000000000000000ffffc0000221', 'IPv4 as IPv4-mapped');
  t.equal(hex(addr('::ffff:192.0.2.33')), '00000000000000000000ffffc0000221', 'IPv4-mapped text');
  t.equal(hex(addr('::1')), '00000000000000000000000000000001');
  t.equal(hex(addr('::')), '00000000000000000000000000000000');
  t.equal(hex(addr('fe80::1%eth0')), 'fe800000000000000000000000000001', 'zone dropped');
  t.equal(writeAddress('not-an-address', new Uint8Array(16), 0), false);
  // Random addresses: the full form and Node's own compressed form (URL canonicalisation) both read back.
  const random = seeded(3);
  for (let i = 0; i < 2000; i++) {
    const groups = Array.from({ length: 8 }, () => (random() < 0.4 ? 0 : Math.floor(random() * 65536)));
    const full = groups.map((g) => g.toString(16)).join(':');
    const compressed = new URL(`http://[${full}]/`).hostname.slice(1, -1);
    const want = groups.map((g) => g.toString(16).padStart(4, '0')).join('');
    if (hex(addr(full)) !== want || hex(addr(compressed)) !== want) t.fail(`${full} / ${compressed}`);
  }
  t.pass('2000 random addresses, both forms');
});

t.test('a slip is the query\'s ID, opcode, RD and question with TC, and nothing else', async (t) => {
  const query = dnsPacket.encode({
    type: 'query',
    id: 4242,
    flags: dnsPacket.RECURSION_DESIRED,
    questions: [{ type: 'ANY' as dnsPacket.RecordType, name: '*.lexa' }],
    additionals: [{ name: '.', type: 'OPT', udpPayloadSize: 4096, flags: 0 } as dnsPacket.Answer],
  });
  const slip = truncatedReply(query)!;
  const r = dnsPacket.decode(Buffer.from(slip)) as dnsPacket.DecodedPacket & { rcode: string };
  t.equal(r.id, 4242);
  t.equal(r.type, 'response');
  t.equal(r.flag_tc, true);
  t.equal(r.flag_rd, true);
  t.equal(r.rcode, 'NOERROR');
  t.same(r.questions, [{ name: '*.lexa', type: 'ANY', class: 'IN' }]);
  t.equal((r.answers?.length ?? 0) + (r.authorities?.length ?? 0) + (r.additionals?.length ?? 0), 0, 'no records');
  t.ok(slip.length <= query.length, `no larger than the query (${slip.length} <= ${query.length})`);
  t.equal(truncatedReply(Buffer.from(slip)), null, 'a response gets nothing');
  t.equal(truncatedReply(query.subarray(0, 15)), null, 'a cut question gets nothing');
});
