import { Buffer } from 'node:buffer';
import dnsPacket, { type Answer, type DecodedPacket } from 'dns-packet';
import t from 'tap';
import type { Outcome } from '../../src/dns/resolve.js';
import { answerQuery, datagramLimit } from '../../src/dns/wire.js';

// TC when the record that overflows a UDP reply is the LAST answer (wire.ts, encodeReply): the measuring pass
// then runs out of answers rather than out of room, so only the fitting step can say the reply was cut. Replies
// cut after an earlier answer are covered by wire.test.ts; this is the edge those cases never reach.

const UDP = datagramLimit(1232);

/** `n` A records owned by the question name, 10.0.0.1 upwards. */
function addresses(n: number): Outcome {
  const answers: Answer[] = Array.from({ length: n }, (_, i) => ({ name: 'q.lexa', type: 'A', class: 'IN', ttl: 0, data: `10.0.${i >> 8}.${(i & 255) + 1}` }));
  return { kind: 'answer', answers, additionals: [] };
}

function ask(n: number): DecodedPacket & { rcode: string } {
  // No EDNS: the reply may be 512 bytes. Header 12 + question 12 ('q.lexa' 8, type and class 4) = 24, and each
  // A record is 16 (its owner a pointer to the question): 30 fit (504 bytes), the 31st would end at 520.
  const q = dnsPacket.encode({ type: 'query', id: 1, questions: [{ name: 'q.lexa', type: 'A' }] });
  const reply = answerQuery(q, UDP, () => addresses(n));
  if (reply === null) throw new Error('no reply');
  t.ok(reply.length <= 512, `${n} answers: reply of ${reply.length} bytes fits 512`);
  return dnsPacket.decode(Buffer.from(reply)) as DecodedPacket & { rcode: string };
}

t.test('30 answers fit exactly: all sent, no TC', async (t) => {
  const r = ask(30);
  t.equal(r.answers?.length, 30);
  t.equal(r.flag_tc, false);
});

t.test('31 answers, the last one overflowing: 30 sent and TC set', async (t) => {
  const r = ask(31);
  t.equal(r.rcode, 'NOERROR');
  t.equal(r.answers?.length, 30, 'the overflowing last answer is dropped');
  t.equal(r.flag_tc, true, 'TC: the client must know an answer is missing');
});

t.test('32 answers (the overflow is not the last one): 30 sent and TC set', async (t) => {
  const r = ask(32);
  t.equal(r.answers?.length, 30);
  t.equal(r.flag_tc, true);
});
