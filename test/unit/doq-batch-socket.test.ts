// QuicBatchSocket's JavaScript half (src/servers/doq/batch-socket.ts) against a FAKE addon with the contract of
// native/udp_batch.c (its buffers as plain typed arrays, send() recording what it would send): the queue, its
// flush, its limits and the copies it hands out. The real addon runs in test/doq/batch.test.ts.

import t from 'tap';
import type { BatchAddon, BatchSocket } from '../../src/servers/dns/udp-batch.js';
import { QUIC_SLOT, QuicBatchSocket, formatAddress } from '../../src/servers/doq/batch-socket.js';

type Sent = { bytes: number[]; port: number; address: number[] };

/** A fake addon: `deliver` plays one recvmmsg batch; `sends` holds each send() call's datagrams. */
function fakeAddon() {
  let sock: Required<BatchSocket> | undefined;
  let onBatch: ((count: number) => void) | undefined;
  let closed = false;
  const sends: Sent[][] = [];
  const addon: BatchAddon & Required<Pick<BatchAddon, 'send'>> = {
    open(_host, _port, _ipv6, batch, slot, cb) {
      onBatch = cb;
      sock = {
        port: 853,
        receiveBuffer: 0,
        input: new Uint8Array(batch * slot),
        inputLengths: new Int32Array(batch),
        output: new Uint8Array(batch * slot),
        outputLengths: new Int32Array(batch),
        sources: new Uint8Array(batch * 16),
        sourcePorts: new Int32Array(batch),
        destinations: new Uint8Array(batch * 16),
        destinationPorts: new Int32Array(batch),
        sendLengths: new Int32Array(batch),
        handle: {},
      };
      return sock;
    },
    close() {
      closed = true;
    },
    send(_handle, count) {
      const s = sock!;
      if (closed) return 0;
      const call: Sent[] = [];
      for (let i = 0; i < count; i++) {
        const at = i * QUIC_SLOT;
        call.push({
          bytes: [...s.output.subarray(at, at + s.sendLengths[i]!)],
          port: s.destinationPorts[i]!,
          address: [...s.destinations.subarray(i * 16, i * 16 + 16)],
        });
      }
      sends.push(call);
      return count;
    },
  };
  /** Puts datagrams into the input slots, as recvmmsg would, and calls the batch callback. */
  const deliver = (datagrams: { bytes: number[]; from: number[]; port: number }[]) => {
    const s = sock!;
    datagrams.forEach((d, i) => {
      s.input.set(d.bytes, i * QUIC_SLOT);
      s.inputLengths[i] = d.bytes.length;
      s.sources.set(d.from, i * 16);
      s.sourcePorts[i] = d.port;
    });
    onBatch!(datagrams.length);
  };
  return { addon, sends, deliver, sock: () => sock! };
}

const v4 = (a: number, b: number, c: number, d: number) => [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, a, b, c, d];
const tick = () => new Promise<void>((r) => setImmediate(r));

t.test('datagrams queued in one turn leave in one send() on the next microtask', async (t) => {
  const fake = fakeAddon();
  const sock = new QuicBatchSocket(fake.addon, '127.0.0.1', 853, () => {}, (e) => t.fail(e.message));
  sock.send(Uint8Array.of(1, 2, 3), 3, 5000, '127.0.0.1');
  sock.send(Uint8Array.of(4, 5, 6, 7), 2, 5001, '10.0.0.2'); // only `length` bytes go
  t.equal(fake.sends.length, 0, 'nothing sent synchronously');
  await Promise.resolve();
  t.same(fake.sends, [
    [
      { bytes: [1, 2, 3], port: 5000, address: v4(127, 0, 0, 1) },
      { bytes: [4, 5], port: 5001, address: v4(10, 0, 0, 2) },
    ],
  ]);
  sock.send(Uint8Array.of(9), 1, 5000, '::1');
  await Promise.resolve();
  t.same(fake.sends[1], [{ bytes: [9], port: 5000, address: [...new Array<number>(15).fill(0), 1] }], 'a later turn, its own send');
});

t.test('a full queue is sent at once; nothing is lost or sent twice', async (t) => {
  const fake = fakeAddon();
  const sock = new QuicBatchSocket(fake.addon, '127.0.0.1', 853, () => {}, (e) => t.fail(e.message));
  for (let i = 0; i < 150; i++) sock.send(Uint8Array.of(i), 1, 4000 + i, '127.0.0.1');
  t.same(fake.sends.map((c) => c.length), [64, 64], 'two full batches synchronously');
  await Promise.resolve();
  t.same(fake.sends.map((c) => c.length), [64, 64, 22]);
  t.same(fake.sends.flat().map((d) => d.bytes[0]), [...Array(150).keys()], 'in order');
});

t.test('what cannot be sent is dropped and reported, never thrown', async (t) => {
  const fake = fakeAddon();
  const drops: string[] = [];
  const sock = new QuicBatchSocket(fake.addon, '127.0.0.1', 853, () => {}, (e) => drops.push(e.message));
  sock.send(new Uint8Array(QUIC_SLOT + 1), QUIC_SLOT + 1, 1, '127.0.0.1');
  sock.send(Uint8Array.of(1), 5, 1, '127.0.0.1'); // length past the data
  sock.send(Uint8Array.of(1), 1, 1, 'not-an-address');
  sock.send(Uint8Array.of(1), 1, 1, undefined as unknown as string);
  t.equal(drops.length, 4);
  sock.close();
  sock.send(Uint8Array.of(1), 1, 1, '127.0.0.1');
  t.equal(drops.length, 5, 'and after close');
  t.match(drops.at(-1), /closed socket/);
  await Promise.resolve();
  t.same(fake.sends, [], 'nothing reached the addon');
});

t.test('a send queued while the socket closes is dropped with the queue', async (t) => {
  const fake = fakeAddon();
  const sock = new QuicBatchSocket(fake.addon, '127.0.0.1', 853, () => {}, () => {});
  sock.send(Uint8Array.of(1), 1, 1, '127.0.0.1');
  sock.close();
  sock.close(); // idempotent
  await Promise.resolve();
  t.same(fake.sends, [], 'the pending flush sends nothing');
});

t.test('each received datagram is a copy of its slot, with its source named as dgram names it', async (t) => {
  const fake = fakeAddon();
  const got: { data: Buffer; host: string; port: number }[] = [];
  new QuicBatchSocket(fake.addon, '127.0.0.1', 853, (data, host, port) => got.push({ data, host, port }), () => {});
  fake.deliver([
    { bytes: [1, 2, 3], from: v4(127, 0, 0, 1), port: 40000 },
    { bytes: [4, 5], from: v4(127, 0, 0, 1), port: 40001 },
    { bytes: [6], from: v4(10, 1, 2, 3), port: 40002 },
  ]);
  // The next batch rewrites the slots: what was handed out must not change (a connection's recv may yield first).
  fake.deliver([{ bytes: [9, 9, 9], from: v4(10, 9, 9, 9), port: 1 }]);
  t.same(
    got.map((g) => [[...g.data], g.host, g.port]),
    [
      [[1, 2, 3], '127.0.0.1', 40000],
      [[4, 5], '127.0.0.1', 40001],
      [[6], '10.1.2.3', 40002],
      [[9, 9, 9], '10.9.9.9', 1],
    ],
  );
  await tick();
});

t.test('a truncated datagram (length 0: larger than its slot) is skipped', async (t) => {
  const fake = fakeAddon();
  const got: number[] = [];
  new QuicBatchSocket(fake.addon, '127.0.0.1', 853, (data) => got.push(data[0]!), () => {});
  fake.deliver([
    { bytes: [1], from: v4(127, 0, 0, 1), port: 1 },
    { bytes: [], from: v4(127, 0, 0, 1), port: 1 },
    { bytes: [3], from: v4(127, 0, 0, 1), port: 1 },
  ]);
  t.same(got, [1, 3]);
});

t.test('a throwing receiver loses its datagram, not the batch', async (t) => {
  const fake = fakeAddon();
  const got: number[] = [];
  const drops: string[] = [];
  const receive = (data: Buffer) => {
    if (data[0] === 2) throw new Error('boom');
    got.push(data[0]!);
  };
  new QuicBatchSocket(fake.addon, '127.0.0.1', 853, receive, (e) => drops.push(e.message));
  fake.deliver([1, 2, 3].map((b) => ({ bytes: [b], from: v4(127, 0, 0, 1), port: 1 })));
  t.same(got, [1, 3]);
  t.same(drops, ['boom']);
});

t.test('formatAddress: RFC 5952 text, IPv4-mapped as dgram shows it', async (t) => {
  const bytes = (groups: number[]) => Uint8Array.from(groups.flatMap((g) => [g >> 8, g & 0xff]));
  const cases: [Uint8Array, boolean, string][] = [
    [Uint8Array.from(v4(192, 0, 2, 1)), false, '192.0.2.1'],
    [Uint8Array.from(v4(192, 0, 2, 1)), true, '::ffff:192.0.2.1'],
    [bytes([0, 0, 0, 0, 0, 0, 0, 1]), true, '::1'],
    [bytes([0, 0, 0, 0, 0, 0, 0, 0]), true, '::'],
    [bytes([0x2001, 0xdb8, 0, 0, 1, 0, 0, 1]), true, '2001:db8::1:0:0:1'],
    [bytes([0x2001, 0xdb8, 0, 1, 1, 1, 1, 1]), true, '2001:db8:0:1:1:1:1:1'],
    [bytes([0xfe80, 0, 0, 0, 0x1ff, 0xfe23, 0x4567, 0x890a]), true, 'fe80::1ff:fe23:4567:890a'],
    [bytes([1, 0, 0, 2, 0, 0, 0, 3]), true, '1:0:0:2::3'],
  ];
  for (const [b, ipv6, text] of cases) t.equal(formatAddress(b, ipv6), text);
});
