import { Buffer } from 'node:buffer';
import net from 'node:net';
import tls from 'node:tls';
import dnsPacket, { type DecodedPacket } from 'dns-packet';
import t from 'tap';
import { startDot, type DotLimits } from '../../src/servers/dot/index.js';
import type { TlsListeners } from '../../src/servers/transport.js';
import { frameMessage } from '../../src/servers/dns/index.js';
import { memoryLogger } from '../../src/log/index.js';
import type { Clock } from '../../src/time/clock.js';
import { FakeClock } from '../helpers/fake-clock.js';
import { requireIPv6Loopback } from '../helpers/net.js';
import {
  BIG_ANSWERS,
  printedId,
  query,
  run,
  sleep,
  spkiPin,
  STREAM_LIMITS,
  stubHandler,
  testCertificate,
  type Run,
} from '../helpers/transport-stub.js';

// DoT TRANSPORT tests: the DNS handler is a stub (test/helpers/transport-stub.ts: A 192.0.2.1 for any name, the
// query's ID echoed), so these prove TLS, framing, pipelining and resource limits with real clients (kdig 3.2,
// dig 9.18, openssl s_client) and node:tls. Name forms through DoT are tested against the real LXD elsewhere.

const cert = await testCertificate();
const other = await testCertificate(); // a second, unrelated certificate: wrong CA, and the setTls swap
const stub = stubHandler();
const log = memoryLogger();

type Reply = DecodedPacket & { rcode: string };

/** DoT on 127.0.0.1 with the daemon's default limits, some overridden. */
async function start(limits: Partial<DotLimits> = {}, clock?: Clock): Promise<TlsListeners> {
  return startDot({ binds: [{ host: '127.0.0.1', port: 0 }], tls: cert.tls, handle: stub.handle, log, limits: { ...STREAM_LIMITS, ...limits }, clock });
}

/** A DoT client on node:tls that splits the decrypted stream into DNS messages. */
class DotClient {
  readonly socket: tls.TLSSocket;
  readonly replies: Reply[] = [];
  readonly closed: Promise<void>;
  readonly secure: Promise<void>;
  #buf = Buffer.alloc(0);

  constructor(port: number, opts: tls.ConnectionOptions = {}) {
    this.socket = tls.connect({ host: '127.0.0.1', port, ca: cert.tls.cert, servername: 'localhost', ...opts });
    this.socket.on('error', () => {});
    this.closed = new Promise((resolve) => this.socket.on('close', () => resolve()));
    this.secure = new Promise((resolve, reject) => {
      this.socket.once('secureConnect', () => {
        this.fingerprint = this.socket.getPeerX509Certificate()?.fingerprint256;
        resolve();
      });
      this.socket.once('close', () => reject(new Error('closed before the handshake finished')));
    });
    this.socket.on('data', (chunk: Buffer) => {
      this.#buf = Buffer.concat([this.#buf, chunk]);
      while (this.#buf.length >= 2 && this.#buf.length >= 2 + this.#buf.readUInt16BE(0)) {
        const len = this.#buf.readUInt16BE(0);
        this.replies.push(dnsPacket.decode(this.#buf.subarray(2, 2 + len)) as Reply);
        this.#buf = this.#buf.subarray(2 + len);
      }
    });
  }

  /** The server certificate's fingerprint, as seen during the handshake. */
  fingerprint: string | undefined;

  async waitFor(n: number, ms = 3000): Promise<Reply[]> {
    const deadline = Date.now() + ms;
    while (this.replies.length < n) {
      if (Date.now() > deadline) throw new Error(`dot: ${this.replies.length} of ${n} replies`);
      await sleep(10);
    }
    return this.replies;
  }
}

/** Resolves with how long `closed` took, or rejects after `ms`. */
async function closesWithin(closed: Promise<void>, ms: number): Promise<number> {
  const started = Date.now();
  let timer: NodeJS.Timeout | undefined;
  await Promise.race([closed, new Promise((_, reject) => (timer = setTimeout(() => reject(new Error(`still open after ${ms} ms`)), ms)))]);
  clearTimeout(timer);
  return Date.now() - started;
}

const kdig = (port: number, ...args: string[]) => run('kdig', ['@127.0.0.1', '-p', String(port), '+time=3', '+retry=0', ...args]);
const dig = (port: number, ...args: string[]) => run('dig', ['@127.0.0.1', '-p', String(port), '+time=3', '+tries=1', ...args]);
const A_LINE = /^web\.test\.\s+60\s+IN\s+A\s+192\.0\.2\.1$/m;

t.test('real clients: kdig and dig over TLS, with and without certificate verification', async (t) => {
  const server = await start();
  t.teardown(() => server.close());
  const port = server.ports[0]!;
  const cases: [string, Promise<Run>][] = [
    ['kdig +tls (opportunistic)', kdig(port, '+tls', 'web.test', 'A')],
    ['kdig +tls-ca +tls-hostname', kdig(port, `+tls-ca=${cert.caFile}`, '+tls-hostname=localhost', 'web.test', 'A')],
    ['kdig +tls-pin', kdig(port, `+tls-pin=${cert.pin}`, 'web.test', 'A')],
    ['dig +tls (no verification)', dig(port, '+tls', 'web.test', 'A')],
    ['dig +tls +tls-ca +tls-hostname', dig(port, '+tls', `+tls-ca=${cert.caFile}`, '+tls-hostname=localhost', 'web.test', 'A')],
    ['dig +tls-ca (name from the IP SAN)', dig(port, `+tls-ca=${cert.caFile}`, 'web.test', 'A')],
  ];
  for (const [name, pending] of cases) {
    const r = await pending;
    t.equal(r.code, 0, `${name}: exit 0 (${r.ms} ms)`);
    t.match(r.stdout, /status: NOERROR/, `${name}: NOERROR`);
    t.match(r.stdout, A_LINE, `${name}: the stub's answer`);
    const id = printedId(r.stdout);
    t.ok(id !== undefined && stub.calls.some((c) => c.id === id && c.name === 'web.test'), `${name}: ID ${id} echoed`);
  }
  t.ok(stub.calls.every((c) => c.limit.kind === 'message'), 'the handler is always called with the message limit');
});

t.test('real clients: verification against the wrong certificate fails', async (t) => {
  const server = await start();
  t.teardown(() => server.close());
  const port = server.ports[0]!;
  const k = await kdig(port, `+tls-ca=${other.caFile}`, '+tls-hostname=localhost', 'web.test', 'A');
  t.not(k.code, 0, 'kdig with another CA fails');
  t.notMatch(k.stdout, A_LINE);
  const pin = await kdig(port, `+tls-pin=${other.pin}`, 'web.test', 'A');
  t.not(pin.code, 0, 'kdig with another pin fails');
  const d = await dig(port, '+tls', `+tls-ca=${other.caFile}`, '+tls-hostname=localhost', 'web.test', 'A');
  t.notMatch(d.stdout, A_LINE, 'dig with another CA gets no answer');
  const wrongName = await kdig(port, `+tls-ca=${cert.caFile}`, '+tls-hostname=not-this-host.example', 'web.test', 'A');
  t.not(wrongName.code, 0, 'kdig checking a hostname the certificate lacks fails');
});

t.test('real clients: kdig +keepopen sends several queries on one connection; a large answer arrives whole', async (t) => {
  const server = await start();
  t.teardown(() => server.close());
  const port = server.ports[0]!;
  const before = stub.calls.length;
  const r = await kdig(port, '+tls', '+keepopen', 'a.test', 'A', 'b.test', 'A', 'c.test', 'AAAA');
  t.equal(r.code, 0);
  t.same(
    stub.calls.slice(before).map((c) => `${c.name} ${c.type}`),
    ['a.test A', 'b.test A', 'c.test AAAA'],
  );
  t.equal((r.stdout.match(/status: NOERROR/g) ?? []).length, 3, 'three replies');
  const big = await kdig(port, '+tls', 'big.test', 'A');
  t.equal(big.stdout.split('\n').filter((l) => /^big\.test\.\s+60\s+IN\s+A\s/.test(l)).length, BIG_ANSWERS, `all ${BIG_ANSWERS} records`);
  t.notMatch(big.stdout, /[Ff]lags:[^;]*\btc\b/, 'not truncated');
});

t.test('only TLS 1.2 and newer; ALPN dot is selected when offered', async (t) => {
  const server = await start();
  t.teardown(() => server.close());
  const port = server.ports[0]!;
  const sclient = (...args: string[]) => run('openssl', ['s_client', '-brief', '-connect', `127.0.0.1:${port}`, ...args]);
  const old = await sclient('-tls1_1');
  t.match(old.stderr, /alert protocol version/, 'TLS 1.1: the server refuses with protocol_version');
  t.match((await sclient('-tls1_2')).stderr, /Protocol version: TLSv1\.2/, 'TLS 1.2 is accepted');
  t.match((await sclient('-tls1_3')).stderr, /Protocol version: TLSv1\.3/, 'TLS 1.3 is accepted');
  const dot = new DotClient(port, { ALPNProtocols: ['h2', 'dot'] });
  await dot.secure;
  t.equal(dot.socket.alpnProtocol, 'dot', 'ALPN dot negotiated');
  dot.socket.destroy();
  const c = new DotClient(port, { ALPNProtocols: ['h2'] });
  await t.rejects(c.secure, 'a client offering only h2 fails the handshake (no_application_protocol)');
  const none = new DotClient(port);
  await none.secure;
  t.equal(none.socket.alpnProtocol, false, 'a client offering no ALPN is served');
  none.socket.destroy();
});

t.test('pipelined queries in one write: all answered, in order, IDs echoed; a query split across writes', async (t) => {
  const server = await start();
  t.teardown(() => server.close());
  const c = new DotClient(server.ports[0]!);
  await c.secure;
  const ids = Array.from({ length: 50 }, (_, i) => (i * 7919 + 1) & 0xffff);
  c.socket.write(Buffer.concat(ids.map((id, i) => frameMessage(query(id, `n${i}.test`)))));
  const replies = await c.waitFor(ids.length);
  t.same(replies.map((r) => r.id), ids, '50 replies, in query order, each with its query ID');
  t.same(replies.map((r) => r.questions?.[0]?.name), ids.map((_, i) => `n${i}.test`));
  t.ok(replies.every((r) => r.answers?.[0]?.type === 'A' && r.answers[0].data === '192.0.2.1'));
  const split = frameMessage(query(4242, 'split.test'));
  c.socket.write(split.subarray(0, 1)); // even the length prefix split
  await sleep(20);
  c.socket.write(split.subarray(1, 9));
  await sleep(20);
  c.socket.write(split.subarray(9));
  t.equal((await c.waitFor(51))[50]!.id, 4242, 'a query split over three TLS records');
  c.socket.destroy();
});

t.test('a query the handler drops gets no reply, and the connection goes on', async (t) => {
  const server = await start();
  t.teardown(() => server.close());
  const c = new DotClient(server.ports[0]!);
  c.socket.write(Buffer.concat([frameMessage(query(1, 'drop.test')), frameMessage(query(2, 'web.test'))]));
  const [r] = await c.waitFor(1);
  t.equal(r!.id, 2, 'only the second query is answered');
  await sleep(50);
  t.equal(c.replies.length, 1);
  c.socket.destroy();
});

t.test('a handler that throws closes that connection only', async (t) => {
  const server = await start();
  t.teardown(() => server.close());
  const port = server.ports[0]!;
  const c = new DotClient(port);
  await c.secure;
  c.socket.write(frameMessage(query(1, 'throw.test')));
  await closesWithin(c.closed, 2000);
  t.ok(log.lines.some((l) => String(l['msg']).includes('handler threw')), 'logged');
  const d = new DotClient(port);
  d.socket.write(frameMessage(query(2, 'web.test')));
  t.equal((await d.waitFor(1))[0]!.id, 2, 'the server still answers');
  d.socket.destroy();
});

t.test('a client that connects and never starts the TLS handshake is dropped after the handshake timeout', async (t) => {
  const server = await start({ handshakeTimeoutMs: 300 });
  t.teardown(() => server.close());
  const raw = net.connect(server.ports[0]!, '127.0.0.1');
  raw.on('error', () => {});
  const closed = new Promise<void>((resolve) => raw.on('close', () => resolve()));
  await new Promise((resolve) => raw.once('connect', resolve));
  const waited = await closesWithin(closed, 3000);
  t.ok(waited >= 250, `dropped after ${waited} ms (timeout 300 ms)`);
  // the same for a client that stops half-way: sends the start of a ClientHello, then nothing
  const half = net.connect(server.ports[0]!, '127.0.0.1');
  half.on('error', () => {});
  const halfClosed = new Promise<void>((resolve) => half.on('close', () => resolve()));
  half.write(Buffer.from([0x16, 0x03, 0x01, 0x02, 0x00, 0x01])); // record header + handshake type, no more
  t.ok((await closesWithin(halfClosed, 3000)) >= 250, 'a half-sent ClientHello is dropped too');
  const c = new DotClient(server.ports[0]!);
  c.socket.write(frameMessage(query(3, 'web.test')));
  t.equal((await c.waitFor(1))[0]!.id, 3, 'a client that finishes its handshake in time is served');
  c.socket.destroy();
});

t.test('an idle connection is really closed (real time)', async (t) => {
  const server = await start({ idleTimeoutMs: 300, firstRequestTimeoutMs: 300 });
  t.teardown(() => server.close());
  const c = new DotClient(server.ports[0]!);
  c.socket.write(frameMessage(query(1, 'web.test')));
  await c.waitFor(1);
  const waited = await closesWithin(c.closed, 3000);
  t.ok(waited >= 250, `closed after ${waited} ms idle (timeout 300 ms)`);
});

t.test('idle deadline on a fake clock: queries keep a connection, bytes that never complete a query do not', async (t) => {
  const IDLE_MS = 300;
  const clock = new FakeClock();
  const server = await start({ idleTimeoutMs: IDLE_MS, firstRequestTimeoutMs: IDLE_MS }, clock);
  t.teardown(() => server.close());
  const busy = new DotClient(server.ports[0]!);
  const trickle = new DotClient(server.ports[0]!);
  await Promise.all([busy.secure, trickle.secure]);
  const frame = frameMessage(query(9, 'slow.test'));
  for (let i = 0; i < 8; i++) {
    busy.socket.write(frameMessage(query(i, 'web.test')));
    await busy.waitFor(i + 1);
    trickle.socket.write(frame.subarray(i, i + 1)); // one byte per step, never a whole query
    await sleep(10); // the byte's real way over loopback and TLS
    await clock.advance(IDLE_MS / 3);
  }
  t.equal(busy.socket.destroyed, false, `a client asking every ${IDLE_MS / 3} ms stays connected past ${IDLE_MS} ms`);
  await closesWithin(trickle.closed, 3000);
  t.pass(`a client trickling a byte every ${IDLE_MS / 3} ms is closed`);
  busy.socket.write(frameMessage(query(8, 'web.test')));
  await busy.waitFor(9);
  await clock.advance(IDLE_MS - 1);
  await sleep(50); // time for a close to reach the client, were there one
  t.equal(busy.socket.destroyed, false, 'not a millisecond before its idle deadline');
  await clock.advance(1);
  await closesWithin(busy.closed, 3000);
  t.pass('closed at its idle deadline');
});

t.test('connections beyond the cap are closed; the others keep working', async (t) => {
  // One source holds at most maxConnections less the reserved quarter (servers/fairness.ts): 2 of 3.
  const server = await start({ maxConnections: 3 });
  t.teardown(() => server.close());
  const port = server.ports[0]!;
  const a = new DotClient(port);
  const b = new DotClient(port);
  await Promise.all([a.secure, b.secure]);
  const c = new DotClient(port);
  await t.rejects(c.secure, 'the third connection is closed before its handshake');
  t.ok(log.lines.some((l) => String(l['msg']).includes('connection refused')), 'the drop was logged');
  a.socket.write(frameMessage(query(4, 'web.test')));
  t.equal((await a.waitFor(1))[0]!.id, 4, 'an existing connection still answers');
  a.socket.destroy();
  await a.closed;
  await sleep(50);
  const d = new DotClient(port);
  d.socket.write(frameMessage(query(5, 'web.test')));
  t.equal((await d.waitFor(1))[0]!.id, 5, 'a freed slot is usable again');
  b.socket.destroy();
  d.socket.destroy();
});

t.test('a partial query that cannot fit the buffer limit closes the connection', async (t) => {
  const server = await start({ maxBufferedBytes: 1024 });
  t.teardown(() => server.close());
  const c = new DotClient(server.ports[0]!);
  await c.secure;
  const head = Buffer.alloc(2);
  head.writeUInt16BE(60000);
  c.socket.write(Buffer.concat([head, Buffer.alloc(100)]));
  await closesWithin(c.closed, 2000);
  t.pass('closed as soon as the announced length exceeded the limit');
});

t.test('setTls: new connections get the new certificate, open ones keep working', async (t) => {
  const server = await start();
  t.teardown(() => server.close());
  const port = server.ports[0]!;
  const before = new DotClient(port);
  await before.secure;
  t.equal(before.fingerprint, cert.tls.fingerprint);
  server.setTls(other.tls);
  const after = new DotClient(port, { ca: other.tls.cert });
  await after.secure;
  t.equal(after.fingerprint, other.tls.fingerprint, 'a new connection sees the new certificate');
  before.socket.write(frameMessage(query(6, 'web.test')));
  t.equal((await before.waitFor(1))[0]!.id, 6, 'the connection made before the swap still answers');
  t.equal(before.fingerprint, cert.tls.fingerprint);
  t.equal((await kdig(port, `+tls-pin=${other.pin}`, 'web.test', 'A')).code, 0, 'kdig pinning the new key succeeds');
  t.not((await kdig(port, `+tls-pin=${cert.pin}`, 'web.test', 'A')).code, 0, 'kdig pinning the old key fails');
  t.throws(() => server.setTls({ ...other.tls, key: cert.tls.key }), 'a key that does not match is refused');
  const still = new DotClient(port, { ca: other.tls.cert });
  await still.secure;
  t.equal(still.fingerprint, other.tls.fingerprint, 'and the certificate in use is unchanged');
  for (const c of [before, after, still]) c.socket.destroy();
  t.equal(spkiPin(other.tls.cert), other.pin);
});

t.test('several binds with port 0; close() ends open connections', async (t) => {
  requireIPv6Loopback();
  const server = await startDot({
    binds: [
      { host: '127.0.0.1', port: 0 },
      { host: '::1', port: 0 },
    ],
    tls: cert.tls,
    handle: stub.handle,
    log,
    limits: STREAM_LIMITS,
  });
  t.equal(server.ports.length, 2);
  t.ok(server.ports.every((p) => p > 0), `ports ${server.ports.join(', ')}`);
  const v6 = await run('kdig', ['@::1', '-p', String(server.ports[1]), '+tls', '+time=3', '+retry=0', 'web.test', 'A']);
  t.match(v6.stdout, A_LINE, 'kdig over IPv6');
  const c = new DotClient(server.ports[0]!);
  c.socket.write(frameMessage(query(7, 'web.test')));
  await c.waitFor(1);
  const took = await closesWithin(server.close(), 1000);
  await closesWithin(c.closed, 1000);
  t.pass(`close() resolved in ${took} ms and closed the open connection`);
  await server.close();
  t.pass('close() twice is fine');
});

t.test('a bind failure rejects and releases the binds already made', async (t) => {
  const first = await start();
  const taken = first.ports[0]!;
  const probe = net.createServer();
  await new Promise<void>((resolve) => probe.listen(0, '127.0.0.1', resolve));
  const free = (probe.address() as net.AddressInfo).port;
  await new Promise((resolve) => probe.close(resolve));
  await t.rejects(
    startDot({
      binds: [
        { host: '127.0.0.1', port: free },
        { host: '127.0.0.1', port: taken },
      ],
      tls: cert.tls,
      handle: stub.handle,
      log,
      limits: STREAM_LIMITS,
    }),
    { code: 'EADDRINUSE' },
  );
  const again = await startDot({ binds: [{ host: '127.0.0.1', port: free }], tls: cert.tls, handle: stub.handle, log, limits: STREAM_LIMITS });
  t.equal(again.ports[0], free, 'the first bind was released');
  await again.close();
  await first.close();
});
