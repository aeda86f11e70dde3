// SourceBacklog (src/servers/doq/backlog.ts): the DoQ socket's waiting datagrams, per source, under one total.

import t from 'tap';
import { BACKLOG_LIMITS, SourceBacklog } from '../../src/servers/doq/backlog.js';

type Item = { host: string; n: number };
const limits = { ...BACKLOG_LIMITS, ipv6SourcePrefix: 64 };

/** Every item the backlog hands out over turns until it is empty, a turn routing each source's items with `lean`. */
function drain(b: SourceBacklog<Item>, lean: (i: Item) => boolean = () => false): Item[][] {
  const turns: Item[][] = [];
  while (b.waiting > 0) {
    const turn: Item[] = [];
    b.turn((i) => (turn.push(i), lean(i)));
    turns.push(turn);
  }
  return turns;
}

t.test('a flooding source cannot push out, or keep out, another source', async (t) => {
  const b = new SourceBacklog<Item>(limits);
  const refusals = new Map<string, number>();
  for (let n = 0; n < 100_000; n++) {
    const why = b.push('127.0.0.2', { host: '127.0.0.2', n });
    if (why !== undefined) refusals.set(why, (refusals.get(why) ?? 0) + 1);
  }
  t.equal(b.waiting, 256, 'the flooder holds its cap');
  t.same([...refusals], [['source-backlog-full', 100_000 - 256]], 'the rest of its datagrams dropped, as its own');
  t.equal(b.push('127.0.0.1', { host: '127.0.0.1', n: 0 }), undefined, 'another source still gets in');
  t.ok(b.holds('127.0.0.1'));
  const first = drain(b)[0]!;
  t.same(first.map((i) => i.host), ['127.0.0.2', '127.0.0.1'], "the good source's datagram leaves in the first turn, one slow datagram each");
});

t.test('caps: per source, the total, and the reserve kept for sources holding less than their share', async (t) => {
  const b = new SourceBacklog<Item>(limits);
  // Three flooders at their cap fill the open three quarters (768).
  for (const host of ['10.0.0.1', '10.0.0.2', '10.0.0.3']) for (let n = 0; n < 300; n++) b.push(host, { host, n });
  t.equal(b.waiting, 768);
  t.equal(b.push('10.0.0.1', { host: '10.0.0.1', n: -1 }), 'source-backlog-full');
  // A fourth source may use the reserve up to its share of the open part: ⌊768 / 4⌋ = 192.
  let fourth = 0;
  while (b.push('10.0.0.4', { host: '10.0.0.4', n: fourth }) === undefined) fourth++;
  t.equal(fourth, 192, 'a fourth flooder stops at its share of the open part');
  t.equal(b.push('10.0.0.4', { host: '10.0.0.4', n: -1 }), 'backlog-reserved');
  // A fifth, holding nothing, still gets in: 64 of the reserve are left.
  t.equal(b.push('10.0.0.5', { host: '10.0.0.5', n: 0 }), undefined, 'a new source finds room in the reserve');
  let more = 1;
  while (b.push(`10.0.1.${more}`, { host: `10.0.1.${more}`, n: 0 }) === undefined) more++;
  t.equal(b.waiting, 1024, 'new sources may fill the reserve');
  t.equal(b.push('10.0.2.1', { host: '10.0.2.1', n: 0 }), 'backlog-full', 'and then nothing more waits');
});

t.test('order: each source keeps its own order; lean datagrams go on within a turn, a slow one ends it', async (t) => {
  const b = new SourceBacklog<Item>(limits);
  for (let n = 0; n < 4; n++) for (const host of ['a', 'b']) b.push(host, { host, n });
  // Items 0 and 1 of each source are lean (done with on return), 2 and 3 slow.
  const turns = drain(b, (i) => i.n < 2);
  t.same(
    turns.map((turn) => turn.map((i) => `${i.host}${i.n}`)),
    [['a0', 'a1', 'a2', 'b0', 'b1', 'b2'], ['a3', 'b3']],
    'a source’s turn ends after its first slow datagram; the order within each source is kept',
  );
  t.equal(b.waiting, 0);
  t.notOk(b.holds('a'), 'an emptied source holds nothing: its next lean datagram need not wait');
});

t.test('round-robin: every source waiting is served once per turn; a source that comes back joins at the back', async (t) => {
  const b = new SourceBacklog<Item>(limits);
  for (let n = 0; n < 3; n++) for (const host of ['a', 'b', 'c']) b.push(host, { host, n });
  t.same(
    drain(b).map((turn) => turn.map((i) => i.host).join('')),
    ['abc', 'abc', 'abc'],
    'every source waiting is served once per turn',
  );
  b.push('a', { host: 'a', n: 0 });
  b.push('a', { host: 'a', n: 1 });
  b.push('b', { host: 'b', n: 0 });
  b.turn(() => false);
  b.push('b', { host: 'b', n: 1 });
  const next: string[] = [];
  b.turn((i) => (next.push(i.host), false));
  t.same(next, ['a', 'b'], 'a (still waiting) is served before b, which came back after it');
});

t.test('IPv6 sources are grouped by the configured prefix; IPv4-mapped addresses are their IPv4 source', async (t) => {
  const b = new SourceBacklog<Item>({ ...limits, perSource: 2 });
  b.push('2001:db8:1:2::1', { host: 'x', n: 0 });
  b.push('2001:db8:1:2::ffff', { host: 'y', n: 0 });
  t.equal(b.push('2001:db8:1:2:abcd::9', { host: 'z', n: 0 }), 'source-backlog-full', 'one /64, one source');
  t.equal(b.push('2001:db8:1:3::1', { host: 'w', n: 0 }), undefined, 'the next /64 is another source');
  b.push('192.0.2.1', { host: 'v', n: 0 });
  b.push('::ffff:192.0.2.1', { host: 'v', n: 1 });
  t.equal(b.push('192.0.2.1', { host: 'v', n: 2 }), 'source-backlog-full', 'mapped and plain IPv4 are one source');
  const per128 = new SourceBacklog<Item>({ ...limits, perSource: 1, ipv6SourcePrefix: 128 });
  per128.push('2001:db8::1', { host: 'x', n: 0 });
  t.equal(per128.push('2001:db8::2', { host: 'y', n: 0 }), undefined, 'with /128 each address is its own source');
});

t.test('clear drops everything waiting', async (t) => {
  const b = new SourceBacklog<Item>(limits);
  b.push('a', { host: 'a', n: 0 });
  b.clear();
  t.equal(b.waiting, 0);
  t.notOk(b.holds('a'));
  t.same(drain(b), []);
});
