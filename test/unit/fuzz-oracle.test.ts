import dnsPacket from 'dns-packet';
import t from 'tap';
import { checkDnsReply } from '../fuzz/dns-oracle.js';
import { caseRng } from '../fuzz/random.js';

// The fuzzer's DNS oracle (test/fuzz/dns-oracle.ts) must reject what it exists to catch, or a million cases would
// prove nothing: each wrong reply below is one a defect could produce.

const query = dnsPacket.encode({ type: 'query', id: 77, flags: dnsPacket.RECURSION_DESIRED, questions: [{ type: 'A', name: 'web-1.lexa' }] });
const reply = (over: Partial<dnsPacket.Packet> = {}) =>
  dnsPacket.encode({ type: 'response', id: 77, flags: dnsPacket.AUTHORITATIVE_ANSWER, questions: [{ type: 'A', name: 'web-1.lexa' }], ...over });
const udp = { kind: 'datagram', max: 4096 } as const;

t.test('a right reply passes; each kind of wrong reply is a finding', async (t) => {
  t.doesNotThrow(() => checkDnsReply(query, reply(), udp), 'the right reply');
  const big = reply({ answers: Array.from({ length: 40 }, (_, i) => ({ type: 'A' as const, name: 'web-1.lexa', data: `10.0.0.${i}` })) });
  const wrong: [string, Uint8Array | null, RegExp][] = [
    ['no reply', null, /no reply/],
    ['another ID', reply({ id: 78 }), /ID/],
    ['not a response', Buffer.from(reply()).fill(0, 2, 3), /QR/],
    ['another question', reply({ questions: [{ type: 'AAAA', name: 'web-1.lexa' }] }), /question/],
    ['SERVFAIL', Buffer.from(reply()).fill(0x82, 3, 4), /rcode 2/],
    ['over 512 bytes without EDNS', big, /over the client's 512/],
    ['cut short', Buffer.from(reply()).subarray(0, 20), /decode/],
  ];
  for (const [what, r, why] of wrong) t.throws(() => checkDnsReply(query, r, udp), why, what);
  t.throws(() => checkDnsReply(Buffer.from(query).fill(0x81, 2, 3), reply(), udp), /a response got a reply/, 'a reply to a response');
});

t.test('a case is the same bytes whatever ran before it: replays are exact', async (t) => {
  const a = caseRng(1, 'dns', 4549).bytes(64);
  caseRng(1, 'dns', 4548).bytes(10);
  t.same(caseRng(1, 'dns', 4549).bytes(64), a);
  t.not(caseRng(2, 'dns', 4549).bytes(64).toString('hex'), a.toString('hex'), 'another seed, other bytes');
});
