// QueryStreams (src/servers/doq/streams.ts) against a FAKE quiche: a model of quiche's stream calls as the binding
// exposes them, so each case can arrange what one datagram brought (in order, out of order, split, reset, short of
// flow-control credit) and count the costly readable() scans. test/doq/doq.test.ts and test/peers/encrypted.test.ts
// run the same code against real QUIC clients (quic-go, kdig's ngtcp2).

import t from 'tap';
import { frameMessage } from '../../src/servers/dns/index.js';
import { DoqErrorCode } from '../../src/servers/doq/framing.js';
import { QueryStreams, Shutdown, type QuicheStreams } from '../../src/servers/doq/streams.js';
import { FakeClock } from '../helpers/fake-clock.js';

/** One stream as quiche holds it: bytes not yet read, FIN, a reset, and what the server sent. */
interface FakeStream {
  incoming: number[];
  fin: boolean;
  finRead: boolean;
  reset?: number;
  sent: number[];
  sentFin: boolean;
  shutdown: Array<[Shutdown, number]>;
}

/** A fake of quiche's stream calls: what a test delivers becomes readable; sends take at most `credit` bytes. */
class FakeQuiche implements QuicheStreams {
  readonly streams = new Map<number, FakeStream>();
  scans = 0;
  credit = Infinity;

  stream(id: number): FakeStream {
    let s = this.streams.get(id);
    if (s === undefined) this.streams.set(id, (s = { incoming: [], fin: false, finRead: false, sent: [], sentFin: false, shutdown: [] }));
    return s;
  }
  deliver(id: number, bytes: Uint8Array, fin: boolean): void {
    const s = this.stream(id);
    s.incoming.push(...bytes);
    s.fin ||= fin;
  }
  #readable(s: FakeStream): boolean {
    return s.incoming.length > 0 || (s.fin && !s.finRead) || s.reset !== undefined;
  }
  readable(): Iterable<number> {
    this.scans++;
    return [...this.streams].filter(([, s]) => this.#readable(s)).map(([id]) => id);
  }
  streamReadable(id: number): boolean {
    const s = this.streams.get(id);
    return s !== undefined && this.#readable(s);
  }
  streamRecv(id: number, into: Uint8Array): [number, boolean] | null {
    const s = this.streams.get(id);
    if (s?.reset !== undefined) throw new Error(`StreamReset(${s.reset})`);
    if (s === undefined || !this.#readable(s)) return null;
    const n = Math.min(into.byteLength, s.incoming.length);
    into.set(s.incoming.splice(0, n));
    const fin = s.fin && s.incoming.length === 0;
    if (fin) s.finRead = true;
    return [n, fin];
  }
  streamSend(id: number, data: Uint8Array, fin: boolean): number | null {
    const s = this.stream(id);
    const n = Math.min(data.byteLength, this.credit);
    if (n === 0 && data.byteLength > 0) return null;
    this.credit -= n;
    s.sent.push(...data.subarray(0, n));
    if (fin && n === data.byteLength) s.sentFin = true;
    return n;
  }
  streamShutdown(id: number, direction: Shutdown, code: number): void {
    this.stream(id).shutdown.push([direction, code]);
  }
}

/** A 12-byte DNS header (ID 0, one question) and a question: what answer() echoes back, framed. */
const query = (n: number) => Uint8Array.from([0, 0, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0, 1, n, 0, 0, 1, 0, 1]);
const framed = (n: number) => new Uint8Array(frameMessage(query(n)));
const READ_TIMEOUT_MS = 10_000;

function setUp() {
  const quiche = new FakeQuiche();
  const clock = new FakeClock();
  const events = { protocolErrors: [] as string[], newStreams: 0, flushes: 0, answered: [] as number[] };
  let reply: (q: Uint8Array) => Uint8Array | DoqErrorCode = (q) => {
    events.answered.push(q[13]!);
    return frameMessage(q);
  };
  const streams = new QueryStreams(quiche, {
    answer: (q) => reply(q),
    protocolError: (why) => events.protocolErrors.push(why),
    onStream: () => events.newStreams++,
    flush: () => events.flushes++,
    clock,
    readTimeoutMs: READ_TIMEOUT_MS,
  });
  return { quiche, clock, events, streams, setReply: (r: typeof reply) => (reply = r) };
}

t.test('in-order streams are found by the probe, with no full scan until every 16th datagram', async (t) => {
  const { quiche, events, streams, clock } = setUp();
  for (let i = 0; i < 15; i++) {
    quiche.deliver(i * 4, framed(i), true);
    streams.process();
  }
  t.equal(quiche.scans, 0, "15 datagrams, each with the next stream: quiche's readable() never called");
  t.same(events.answered, [...Array(15).keys()], 'every query answered, in order');
  for (let i = 0; i < 15; i++) {
    t.same(quiche.streams.get(i * 4)!.sent, [...framed(i)], `stream ${i * 4}: the framed reply`);
    t.ok(quiche.streams.get(i * 4)!.sentFin, `stream ${i * 4}: FIN after it`);
  }
  quiche.deliver(60, framed(15), true);
  streams.process();
  t.equal(quiche.scans, 1, 'the 16th datagram also scans');
  t.equal(events.newStreams, 16);
  t.equal(clock.pending, 0, 'no read deadline left behind');
});

t.test('out-of-order and skipped stream IDs are found by the scan the missed probe triggers', async (t) => {
  const { quiche, events, streams } = setUp();
  quiche.deliver(8, framed(2), true); // 0 and 4 not yet (reordered, or skipped for good)
  streams.process();
  t.same(events.answered, [2], 'stream 8 answered although 0 and 4 have not arrived');
  quiche.deliver(0, framed(0), true);
  streams.process();
  t.same(events.answered, [2, 0], 'then stream 0');
  quiche.deliver(16, framed(4), true); // 12 skipped
  streams.process();
  t.same(events.answered, [2, 0, 4], 'and 16, past a skipped 12');
  t.same(events.protocolErrors, []);
});

t.test('a stream hidden behind a successful probe is answered on the next datagram that brings nothing new', async (t) => {
  const { quiche, events, streams } = setUp();
  quiche.deliver(0, framed(0), true);
  quiche.deliver(8, framed(2), true); // 4 skipped: the probe stops at 4
  streams.process();
  t.same(events.answered, [0], 'the in-order stream at once');
  streams.process(); // e.g. the ACK the client owes for the reply to stream 0
  t.same(events.answered, [0, 2], 'the hidden one on the next datagram');
});

t.test('a stream hidden behind a steady flow of in-order streams waits at most 16 datagrams', async (t) => {
  const { quiche, events, streams } = setUp();
  quiche.deliver(0, framed(0), true);
  quiche.deliver(400, framed(100), true); // far ahead: never reached by the probe
  let datagrams = 1;
  streams.process();
  for (let i = 1; !events.answered.includes(100); i++, datagrams++) {
    quiche.deliver(i * 4, framed(i), true);
    streams.process();
  }
  t.ok(datagrams <= 16, `found after ${datagrams} datagrams`);
});

t.test('a query split across datagrams is answered once its FIN arrives; its read deadline is then cleared', async (t) => {
  const { quiche, events, streams, clock } = setUp();
  const bytes = framed(7);
  quiche.deliver(0, bytes.subarray(0, 5), false);
  streams.process();
  t.same(events.answered, []);
  t.equal(clock.pending, 1, 'a read deadline while the query is incomplete');
  quiche.deliver(0, bytes.subarray(5), true);
  streams.process();
  t.same(events.answered, [7]);
  t.equal(clock.pending, 0);
  t.equal(events.newStreams, 1, 'one stream, counted once');
});

t.test('a query not complete by the read deadline is reset with DOQ_PROTOCOL_ERROR and flushed', async (t) => {
  const { quiche, events, streams, clock } = setUp();
  quiche.deliver(0, framed(1).subarray(0, 3), false);
  streams.process();
  await clock.advance(READ_TIMEOUT_MS - 1);
  t.same(quiche.streams.get(0)!.shutdown, [], 'a millisecond early: still waiting');
  await clock.advance(1);
  t.same(quiche.streams.get(0)!.shutdown, [[Shutdown.Read, DoqErrorCode.ProtocolError], [Shutdown.Write, DoqErrorCode.ProtocolError]]);
  t.equal(events.flushes, 1, 'the reset is sent at once, not with the next datagram');
  t.same(events.protocolErrors, [], 'a slow stream is not a connection error');
});

t.test('a stream the peer resets mid-query is forgotten with its deadline', async (t) => {
  const { quiche, events, streams, clock } = setUp();
  quiche.deliver(0, framed(1).subarray(0, 3), false);
  streams.process();
  quiche.stream(0).reset = DoqErrorCode.RequestCancelled;
  streams.process();
  t.equal(clock.pending, 0);
  t.same(events.answered, []);
  t.same(quiche.streams.get(0)!.shutdown, [], 'nothing sent back on a reset stream');
});

t.test('protocol errors: unidirectional stream, bytes after the message, non-zero ID, truncated', async (t) => {
  const cases: Array<[string, (q: FakeQuiche) => void, string]> = [
    ['uni', (q) => q.deliver(2, framed(0), true), 'client opened a unidirectional stream'],
    ['trailing', (q) => q.deliver(0, Uint8Array.from([...framed(0), 0]), true), 'more than one length-prefixed message on the stream'],
    ['nonzero-id', (q) => q.deliver(0, Uint8Array.from([0, 19, 0x12, 0x34, ...query(0).subarray(2)]), true), 'query message ID is not 0'],
    ['truncated', (q) => q.deliver(0, framed(0).subarray(0, 10), true), 'stream ended before the announced message length'],
  ];
  for (const [name, deliver, why] of cases) {
    const { quiche, events, streams, clock } = setUp();
    deliver(quiche);
    streams.process();
    t.same(events.protocolErrors, [why], `${name}: the connection is told why`);
    const id = name === 'uni' ? 2 : 0;
    t.same(quiche.streams.get(id)!.shutdown, [[Shutdown.Read, DoqErrorCode.ProtocolError], [Shutdown.Write, DoqErrorCode.ProtocolError]], `${name}: stream reset with DOQ_PROTOCOL_ERROR`);
    t.same(events.answered, [], `${name}: the handler never sees it`);
    t.equal(clock.pending, 0);
  }
});

t.test('a query the server does not answer resets its stream with the code answer() gives', async (t) => {
  const { quiche, streams, setReply } = setUp();
  setReply(() => DoqErrorCode.RequestCancelled);
  quiche.deliver(0, framed(0), true);
  streams.process();
  t.same(quiche.streams.get(0)!.shutdown, [[Shutdown.Read, DoqErrorCode.RequestCancelled], [Shutdown.Write, DoqErrorCode.RequestCancelled]]);
  t.same(quiche.streams.get(0)!.sent, []);
});

t.test('a reply larger than the flow-control credit is finished as credit arrives, FIN last', async (t) => {
  const { quiche, streams, setReply } = setUp();
  const big = new Uint8Array(3000).fill(7);
  setReply(() => big);
  quiche.credit = 1000;
  quiche.deliver(0, framed(0), true);
  streams.process();
  const s = quiche.streams.get(0)!;
  t.equal(s.sent.length, 1000);
  t.notOk(s.sentFin, 'no FIN while bytes remain');
  streams.process();
  t.equal(s.sent.length, 1000, 'no credit, no progress (and no error)');
  quiche.credit = 1500;
  streams.process();
  t.equal(s.sent.length, 2500);
  quiche.credit = Infinity;
  streams.process();
  t.same(s.sent, [...big]);
  t.ok(s.sentFin);
});

t.test('after close(), nothing is read and no deadline remains', async (t) => {
  const { quiche, events, streams, clock } = setUp();
  quiche.deliver(0, framed(0).subarray(0, 4), false);
  streams.process();
  streams.close();
  t.equal(clock.pending, 0);
  quiche.deliver(4, framed(1), true);
  streams.process();
  t.same(events.answered, []);
});
