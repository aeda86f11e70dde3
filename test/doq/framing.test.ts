import t from 'tap';
import { frameMessage } from '../../src/servers/dns/index.js';
import { MAX_DNS_MESSAGE } from '../../src/dns/index.js';
import { QueryAccumulator, checkQuery } from '../../src/servers/doq/framing.js';

/** DoQ frames its messages exactly as TCP does (RFC 9250 §4.2): the one shared framer. */
const frame = (msg: Uint8Array) => frameMessage(msg);

// A 12-byte DNS header with ID 0 and one question count, plus a few bytes of body.
const query = Uint8Array.from([0, 0, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0, 3, 0x66, 0x6f, 0x6f, 0, 0, 1, 0, 1]);

function feed(chunks: Uint8Array[]) {
  const acc = new QueryAccumulator();
  for (const chunk of chunks) {
    const error = acc.push(chunk);
    if (error !== undefined) return error;
  }
  return acc.finish();
}

t.test('frame → accumulate round-trips, whole or byte by byte', async (t) => {
  const framed = frame(query);
  t.equal(framed.byteLength, query.byteLength + 2);
  t.same([...feed([framed]) as Uint8Array], [...query]);
  const bytes = [...framed].map((b) => Uint8Array.of(b));
  const again = feed(bytes) as Uint8Array;
  t.same([...again], [...query]);
  t.same([...frame(again)], [...framed], 'encode → decode → encode is stable');
});

t.test('framing errors', async (t) => {
  const framed = frame(query);
  t.equal(feed([framed.subarray(0, 10)]), 'truncated', 'FIN before the announced length');
  t.equal(feed([framed.subarray(0, 1)]), 'truncated', 'FIN inside the length prefix');
  t.equal(feed([]), 'truncated', 'FIN with no data');
  t.equal(feed([framed, Uint8Array.of(0)]), 'too-long', 'a byte after the message');
  t.equal(feed([framed, framed]), 'too-long', 'two messages on one stream');
  t.equal(feed([frame(query.subarray(0, 5))]), 'too-short');
  const withId = Uint8Array.from(query);
  withId[1] = 7;
  t.equal(feed([frame(withId)]), 'nonzero-id');
  t.equal(checkQuery(query), undefined);
});

t.test('memory is bounded to one framed DNS message', async (t) => {
  const acc = new QueryAccumulator();
  t.equal(acc.push(Uint8Array.of(0xff, 0xff)), undefined, 'a 65535-byte message is announced');
  t.equal(acc.push(new Uint8Array(MAX_DNS_MESSAGE)), undefined, 'and accepted in full');
  t.equal(acc.push(Uint8Array.of(0)), 'too-long', 'one byte more is refused');
});
