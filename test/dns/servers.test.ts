import { Buffer } from 'node:buffer';
import dgram from 'node:dgram';
import net from 'node:net';
import t from 'tap';
import dnsPacket, { type DecodedPacket } from 'dns-packet';
import { memoryLogger } from '../../src/log/index.js';
import { createHandler } from '../../src/dns/index.js';
import { startPlainDns, startTcp, startUdp } from '../../src/servers/dns/index.js';
import type { StreamLimits } from '../../src/servers/transport.js';
import { sortedText, zone } from '../helpers/zone.js';
import { clustered, OPTS } from '../helpers/dns-fixture.js';
import { requireIPv6Loopback } from '../helpers/net.js';
import { STREAM_LIMITS } from '../helpers/transport-stub.js';

// UDP and TCP transports on loopback, port 0, with Node's dgram/net as the client, around the one handler the
// daemon would build. The snapshot is hand-built (unit tests); the real-LXD tests with dig/kdig live elsewhere.

const log = memoryLogger();
const handle = createHandler({ snapshot: clustered, resolver: OPTS, log });
const STREAM = STREAM_LIMITS;
const UDP_LIMITS = { maxReply: 4096 };

/** The two UDP paths: batched recvmmsg/sendmmsg (native/udp_batch.c, built at install) and Node's dgram. */
type Io = 'recvmmsg' | 'dgram';
const udpOn = (host: string, port = 0, io: Io = 'recvmmsg') =>
  startUdp({ binds: [{ host, port }], handle, log, limits: { ...UDP_LIMITS, batch: io === 'recvmmsg' } });
/** The `io` the last 'dns/udp: listening' line for `port` reported. */
const ioOf = (port: number) => log.lines.filter((l) => l['msg'] === 'dns/udp: listening' && l['port'] === port).at(-1)?.['io'];
const tcpOn = (limits: Partial<StreamLimits> = {}) =>
  startTcp({ binds: [{ host: '127.0.0.1', port: 0 }], handle, log, limits: { ...STREAM, ...limits } });

function query(id: number, name: string, type: dnsPacket.RecordType = 'A'): Buffer {
  return dnsPacket.encode({ type: 'query', id, flags: dnsPacket.RECURSION_DESIRED, questions: [{ name, type }] });
}

function framed(msg: Buffer): Buffer {
  const len = Buffer.alloc(2);
  len.writeUInt16BE(msg.length);
  return Buffer.concat([len, msg]);
}

type Reply = DecodedPacket & { rcode: string };

function udpAsk(host: string, port: number, msg: Buffer): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const sock = dgram.createSocket(net.isIPv6(host) ? 'udp6' : 'udp4');
    const timer = setTimeout(() => (sock.close(), reject(new Error('udp: no reply'))), 2000);
    sock.on('message', (buf) => {
      clearTimeout(timer);
      sock.close();
      resolve(dnsPacket.decode(buf) as Reply);
    });
    sock.send(msg, port, host);
  });
}

/** A TCP client that splits the byte stream into DNS messages. */
class TcpClient {
  readonly socket: net.Socket;
  readonly replies: Reply[] = [];
  readonly closed: Promise<void>;
  #buf = Buffer.alloc(0);
  #waiters: (() => void)[] = [];

  constructor(port: number) {
    this.socket = net.connect(port, '127.0.0.1');
    this.socket.on('error', () => {});
    this.closed = new Promise((resolve) => this.socket.on('close', () => resolve()));
    this.socket.on('data', (chunk) => {
      this.#buf = Buffer.concat([this.#buf, chunk]);
      while (this.#buf.length >= 2 && this.#buf.length >= 2 + this.#buf.readUInt16BE(0)) {
        const len = this.#buf.readUInt16BE(0);
        this.replies.push(dnsPacket.decode(this.#buf.subarray(2, 2 + len)) as Reply);
        this.#buf = this.#buf.subarray(2 + len);
      }
      for (const w of this.#waiters.splice(0)) w();
    });
  }

  connected(): Promise<void> {
    return new Promise((resolve) => (this.socket.connecting ? this.socket.once('connect', () => resolve()) : resolve()));
  }

  async waitFor(n: number, ms = 2000): Promise<Reply[]> {
    const deadline = Date.now() + ms;
    while (this.replies.length < n) {
      if (Date.now() > deadline) throw new Error(`tcp: ${this.replies.length} of ${n} replies`);
      await new Promise<void>((resolve) => {
        this.#waiters.push(resolve);
        setTimeout(resolve, 50);
      });
    }
    return this.replies;
  }
}

for (const io of ['recvmmsg', 'dgram'] as const) {
  t.test(`UDP on IPv4 loopback (${io})`, async (t) => {
    const server = await udpOn('127.0.0.1', 0, io);
    const port = server.ports[0]!;
    t.teardown(() => server.close());
    t.ok(port > 0, `bound port ${port}`);
    t.equal(ioOf(port), io, `served with ${io}`);
    const r = await udpAsk('127.0.0.1', port, query(7, 'web-1.lexa'));
    t.equal(r.id, 7);
    t.equal(r.rcode, 'NOERROR');
    t.same(sortedText(r.answers ?? []), zone('web-1.lexa. 0 IN A 10.99.0.11'));
    const srv = await udpAsk('127.0.0.1', port, query(8, '_https._tcp.service.lexa', 'SRV'));
    t.equal(srv.answers?.length, 2);
    t.equal(srv.additionals?.length, 3);
    const nx = await udpAsk('127.0.0.1', port, query(9, 'nope.lexa'));
    t.equal(nx.rcode, 'NXDOMAIN');
    await t.rejects(udpOn('127.0.0.1', port, io), { code: 'EADDRINUSE' }, 'a taken port rejects the start');
  });

  t.test(`UDP on IPv6 loopback, beside IPv4 on the same port (${io})`, async (t) => {
    requireIPv6Loopback();
    const v4 = await udpOn('127.0.0.1', 0, io);
    const port = v4.ports[0]!;
    const v6 = await udpOn('::1', port, io);
    t.equal(v6.ports[0], port, 'same port, separate socket');
    t.teardown(async () => {
      await v4.close();
      await v6.close();
    });
    const r = await udpAsk('::1', port, query(11, 'web-1.lexa', 'AAAA'));
    t.same(sortedText(r.answers ?? []), zone('web-1.lexa. 0 IN AAAA fd42:99::11'));
  });

  t.test(`UDP: 2000 queries in waves, some broken, from 4 clients, each answered once to its sender (${io})`, async (t) => {
    const server = await udpOn('127.0.0.1', 0, io);
    const port = server.ports[0]!;
    t.teardown(() => server.close());
    const clients = await Promise.all(
      Array.from({ length: 4 }, () => new Promise<dgram.Socket>((resolve) => {
        const c = dgram.createSocket('udp4');
        c.bind(0, '127.0.0.1', () => resolve(c));
      })),
    );
    const got = clients.map(() => new Map<number, Reply>());
    clients.forEach((c, k) => c.on('message', (buf) => {
      const r = dnsPacket.decode(buf) as Reply;
      t.notOk(got[k]!.has(r.id ?? -1), 'no reply twice');
      got[k]!.set(r.id ?? -1, r);
    }));
    // Waves of 100 datagrams (within any socket buffer: this is about correctness, not load); every 10th is
    // shorter than a header and must go unanswered; the rest ask web-1 or web-2.
    const answered = () => got.reduce((n, m) => n + m.size, 0);
    for (let wave = 0; wave < 20; wave++) {
      for (let i = wave * 100; i < (wave + 1) * 100; i++) {
        const msg = i % 10 === 9 ? Buffer.from([1, 2, 3]) : query(i, i % 2 ? 'web-1.lexa' : 'web-2.lexa');
        clients[i % 4]!.send(msg, port, '127.0.0.1');
      }
      const deadline = Date.now() + 2000;
      while (answered() < (wave + 1) * 90 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 5));
    }
    await new Promise((r) => setTimeout(r, 100));
    for (const c of clients) c.close();
    t.equal(answered(), 1800, 'every well-formed query answered, no broken one');
    for (const [k, m] of got.entries()) {
      for (const [id, r] of m) {
        t.equal(id % 4, k, 'each reply went to the client that asked');
        if (r.answers?.[0]?.type !== 'A') t.fail(`query ${id}: no A answer`);
        else t.equal(r.answers[0].data, id % 2 ? '10.99.0.11' : '10.99.0.12');
      }
    }
  });
}

t.test('UDP without the native part falls back to dgram, says why, and answers the same', async (t) => {
  const server = await startUdp({
    binds: [{ host: '127.0.0.1', port: 0 }],
    handle,
    log,
    limits: { ...UDP_LIMITS, addonPath: '/nonexistent/udp_batch.node' },
  });
  const port = server.ports[0]!;
  t.teardown(() => server.close());
  t.equal(ioOf(port), 'dgram', 'dgram serves');
  t.ok(log.lines.some((l) => l['msg'] === 'dns/udp: batched I/O unavailable, using dgram' && String(l['reason']).includes('/nonexistent')), 'the reason is logged');
  const r = await udpAsk('127.0.0.1', port, query(3, 'web-1.lexa'));
  t.same(sortedText(r.answers ?? []), zone('web-1.lexa. 0 IN A 10.99.0.11'));
});

t.test('TCP: pipelined queries in one write, a query split across writes, replies in order', async (t) => {
  const server = await tcpOn();
  const port = server.ports[0]!;
  t.teardown(() => server.close());
  const c = new TcpClient(port);
  await c.connected();
  c.socket.write(
    Buffer.concat([
      framed(query(1, 'web-1.lexa')),
      framed(query(2, 'nope.lexa')),
      framed(query(3, '_https._tcp.service.lexa', 'SRV')),
    ]),
  );
  const three = await c.waitFor(3);
  t.same(
    three.map((r) => [r.id, r.rcode]),
    [
      [1, 'NOERROR'],
      [2, 'NXDOMAIN'],
      [3, 'NOERROR'],
    ],
    'three replies, in query order',
  );
  const split = framed(query(4, 'web-2.lexa'));
  c.socket.write(split.subarray(0, 1)); // even the length prefix split
  await new Promise((r) => setTimeout(r, 30));
  c.socket.write(split.subarray(1, 9));
  await new Promise((r) => setTimeout(r, 30));
  c.socket.write(split.subarray(9));
  const four = await c.waitFor(4);
  t.equal(four[3]!.id, 4);
  t.same(sortedText(four[3]!.answers ?? []), zone('web-2.lexa. 0 IN A 10.99.0.12'));
  // the tail of one query and the whole of the next in one write
  const a = framed(query(5, 'web-1.lexa'));
  const b = framed(query(6, 'web-2.lexa'));
  c.socket.write(a.subarray(0, 10));
  await new Promise((r) => setTimeout(r, 30));
  c.socket.write(Buffer.concat([a.subarray(10), b]));
  const six = await c.waitFor(6);
  t.same(six.slice(4).map((r) => r.id), [5, 6]);
  c.socket.destroy();
});

t.test('TCP: large answers are not truncated', async (t) => {
  const server = await tcpOn();
  const port = server.ports[0]!;
  t.teardown(() => server.close());
  const c = new TcpClient(port);
  c.socket.write(framed(query(1, '*.lexa')));
  const [r] = await c.waitFor(1);
  t.equal(r!.answers?.length, 6);
  t.equal(r!.flag_tc, false);
  c.socket.destroy();
});

t.test('TCP: idle connections are closed', async (t) => {
  const server = await tcpOn({ idleTimeoutMs: 150 });
  const port = server.ports[0]!;
  t.teardown(() => server.close());
  const c = new TcpClient(port);
  c.socket.write(framed(query(1, 'web-1.lexa')));
  await c.waitFor(1);
  const start = Date.now();
  await c.closed;
  const waited = Date.now() - start;
  t.ok(waited >= 100 && waited < 2000, `closed after ${waited} ms idle`);
});

t.test('TCP: connections beyond the cap are closed, the others keep working', async (t) => {
  // The default idle timeout (10 s) would close a refused connection too, late: the bound below tells them apart.
  // One source holds at most maxConnections less the reserved quarter (servers/fairness.ts): 2 of 3.
  const server = await tcpOn({ maxConnections: 3 });
  const port = server.ports[0]!;
  t.teardown(() => server.close());
  const a = new TcpClient(port);
  const b = new TcpClient(port);
  await Promise.all([a.connected(), b.connected()]);
  a.socket.write(framed(query(1, 'web-1.lexa')));
  b.socket.write(framed(query(2, 'web-1.lexa')));
  await Promise.all([a.waitFor(1), b.waitFor(1)]);
  const c = new TcpClient(port);
  const refusedAt = Date.now();
  c.socket.write(framed(query(3, 'web-1.lexa')));
  await c.closed;
  const refusedMs = Date.now() - refusedAt;
  t.ok(refusedMs < 1000, `the third connection was closed on accept (${refusedMs} ms), not by the idle timer`);
  t.equal(c.replies.length, 0, 'the third connection got no reply');
  t.ok(log.lines.some((l) => String(l['msg']).includes('connection refused')), 'the drop was logged');
  a.socket.write(framed(query(4, 'web-2.lexa')));
  t.equal((await a.waitFor(2))[1]!.id, 4, 'an existing connection still answers');
  a.socket.destroy();
  await a.closed;
  await new Promise((r) => setTimeout(r, 50));
  const d = new TcpClient(port);
  d.socket.write(framed(query(5, 'web-1.lexa')));
  t.equal((await d.waitFor(1))[0]!.id, 5, 'a slot freed by a close is usable again');
  b.socket.destroy();
  d.socket.destroy();
});

t.test('TCP: a partial frame over the buffer cap closes the connection', async (t) => {
  // The default idle timeout (10 s) would close the connection too, late: the bound below tells them apart.
  const server = await tcpOn({ maxBufferedBytes: 1024 });
  const port = server.ports[0]!;
  t.teardown(() => server.close());
  const c = new TcpClient(port);
  await c.connected();
  const head = Buffer.alloc(2);
  head.writeUInt16BE(60000);
  const sentAt = Date.now();
  c.socket.write(Buffer.concat([head, Buffer.alloc(2000)]));
  await c.closed;
  const ms = Date.now() - sentAt;
  t.ok(ms < 1000, `closed ${ms} ms after the oversized frame began, well before the ${STREAM.idleTimeoutMs} ms idle timeout`);
  t.ok(log.lines.some((l) => String(l['msg']).includes('over the buffer limit')), 'the reason was logged');
});

t.test('TCP: close() ends open connections and resolves', async (t) => {
  const server = await tcpOn();
  const port = server.ports[0]!;
  const c = new TcpClient(port);
  await c.connected();
  c.socket.write(framed(query(1, 'web-1.lexa')));
  await c.waitFor(1);
  await server.close();
  await c.closed;
  t.pass('server closed with a client connected');
  await server.close();
  t.pass('close() twice is fine');
});

t.test('plain DNS: UDP and TCP share each bind port; an explicit port TCP cannot have fails and releases UDP', async (t) => {
  const limits = { ...STREAM, ...UDP_LIMITS };
  const both = await startPlainDns({ binds: [{ host: '127.0.0.1', port: 0 }], handle, log, limits });
  const port = both.ports[0]!;
  t.teardown(() => both.close());
  t.equal((await udpAsk('127.0.0.1', port, query(1, 'web-1.lexa'))).id, 1, 'UDP answers on the port');
  const c = new TcpClient(port);
  c.socket.write(framed(query(2, 'web-1.lexa')));
  t.equal((await c.waitFor(1))[0]!.id, 2, 'TCP answers on the same port');
  c.socket.destroy();

  // A port free for UDP but held for TCP: the start fails and the UDP socket it bound is released.
  const holder = net.createServer();
  await new Promise<void>((resolve) => holder.listen(0, '127.0.0.1', resolve));
  const held = (holder.address() as net.AddressInfo).port;
  t.teardown(() => new Promise<void>((resolve) => holder.close(() => resolve())));
  await t.rejects(startPlainDns({ binds: [{ host: '127.0.0.1', port: held }], handle, log, limits }), { code: 'EADDRINUSE' });
  const udpAgain = await udpOn('127.0.0.1', held);
  t.equal(udpAgain.ports[0], held, 'the UDP port was released');
  await udpAgain.close();
});

t.test('plain DNS announces its UDP port only once TCP holds it too: a port given up is never logged', async (t) => {
  // TCP holds a port whose UDP side is free: startPlainDns binds UDP there, fails on TCP and gives the port up.
  const holder = net.createServer();
  await new Promise<void>((resolve) => holder.listen(0, '127.0.0.1', resolve));
  t.teardown(() => holder.close());
  const port = (holder.address() as net.AddressInfo).port;
  const own = memoryLogger();
  await t.rejects(
    startPlainDns({ binds: [{ host: '127.0.0.1', port }], handle, log: own, limits: { ...UDP_LIMITS, ...STREAM } }),
    { code: 'EADDRINUSE' },
  );
  t.same(own.lines.filter((l) => l['msg'] === 'dns/udp: listening'), [], 'no listening line for the UDP socket closed again');
  const served = await startPlainDns({ binds: [{ host: '127.0.0.1', port: 0 }], handle, log: own, limits: { ...UDP_LIMITS, ...STREAM } });
  t.teardown(() => served.close());
  const lines = own.lines.filter((l) => l['msg'] === 'dns/udp: listening');
  t.same(lines.map((l) => l['port']), [served.ports[0]], 'the port that serves is announced, once');
});
