import { Buffer } from 'node:buffer';
import { randomBytes } from 'node:crypto';
import http2 from 'node:http2';
import net from 'node:net';
import tls from 'node:tls';
import t from 'tap';
import { Agent, type AgentConfig } from '../../src/agent/index.js';
import { memoryLogger } from '../../src/log/index.js';
import { createMetrics } from '../../src/metrics/index.js';
import { AGENT_LIMITS, startAgentServer } from '../../src/servers/agent/index.js';
import { AgentIngest } from '../../src/streams/agents/ingest.js';
import { startPlainDns } from '../../src/servers/dns/index.js';
import { DOH_LIMITS, startDoh } from '../../src/servers/doh/index.js';
import { DOQ_LIMITS, startDoq } from '../../src/servers/doq/index.js';
import { startDot } from '../../src/servers/dot/index.js';
import { REST_LIMITS, startRest } from '../../src/servers/rest/index.js';
import { SnapshotStore, tokenDigest } from '../../src/streams/index.js';
import { waitFor } from '../helpers/lxd-cli.js';
import { fakeDevlxd } from '../helpers/fake-devlxd.js';
import { iface, instance, snapshotOf } from '../helpers/model.js';
import { query, run, sleep, STREAM_LIMITS, stubHandler, testCertificate } from '../helpers/transport-stub.js';

// FAIR SHARING of every connection listener, in process with a STUB DNS handler (transport-stub.ts) and a fixture
// snapshot: one address (127.0.0.5, the attacker) opens more idle or slow connections than the listener has
// slots, and a client at another address (127.0.0.1) must still be served, by a real client (dig, kdig, curl, the
// lexa agent) where one exists. Small limits (16 slots, 4 per source) and short deadlines keep it fast.

const ATTACKER = '127.0.0.5';
/** The limits under test: small, so a flood of FLOOD connections more than fills the listener. */
const FAIR = { maxConnections: 16, maxPerSource: 4, ipv6SourcePrefix: 64 } as const;
const FLOOD = 24;
const cert = await testCertificate();
const stub = stubHandler();
const log = memoryLogger();
const any = [{ host: '127.0.0.1', port: 0 }];
/** A running instance named `local` that holds 127.0.0.1, as the agent endpoint and the REST API see it. */
/** The `user.lexa.agent.token` of the instance "local" (which holds 127.0.0.1 here). */
const CREDENTIAL = 'the-instance-credential-of-local';
const store = new SnapshotStore(
  snapshotOf([instance('local', { interfaces: [iface('eth0', ['127.0.0.1'])], agentServices: ['*'], agentTokenDigest: tokenDigest(CREDENTIAL) })]),
);

/**
 * Opens `n` TCP connections to `port` from ATTACKER and leaves them idle (no TLS handshake, no bytes). Resolves
 * once the listener has refused every one it will refuse: at least `n - maxConnections` closed, whatever the
 * limits, and nothing else changed for a moment.
 */
async function idleFlood(t: { teardown(fn: () => void): void }, port: number, n = FLOOD): Promise<net.Socket[]> {
  const sockets = await Promise.all(
    Array.from({ length: n }, () => new Promise<net.Socket>((resolve) => {
      const s = net.connect({ host: '127.0.0.1', port, localAddress: ATTACKER });
      s.on('error', () => undefined);
      s.once('connect', () => resolve(s));
    })),
  );
  t.teardown(() => sockets.forEach((s) => s.destroy()));
  await waitFor(() => sockets.filter((s) => s.destroyed || s.readableEnded).length >= n - FAIR.maxConnections, { what: 'the flood to settle', intervalMs: 20 });
  await sleep(100); // the refusals after the cap are processed in accept order: let the last ones land
  return sockets;
}

/** A TLS connection from ATTACKER (node:tls types no localAddress, so over a net socket bound there). */
const attackerTls = (port: number, alpn?: string) =>
  tls.connect({
    socket: net.connect({ host: '127.0.0.1', port, localAddress: ATTACKER }),
    rejectUnauthorized: false,
    ...(alpn === undefined ? {} : { ALPNProtocols: [alpn] }),
  });

const held = (sockets: net.Socket[]) => sockets.filter((s) => !s.destroyed && !s.readableEnded).length;

t.test('DNS over TCP: one address holding idle connections leaves dig +tcp from another served', async (t) => {
  const server = await startPlainDns({ binds: any, handle: stub.handle, log, limits: { ...STREAM_LIMITS, ...FAIR, maxReply: 1232 } });
  t.teardown(() => server.close());
  const port = server.ports[0]!;
  const flood = await idleFlood(t, port);
  t.equal(held(flood), FAIR.maxPerSource, `${FLOOD} from ${ATTACKER}: ${FAIR.maxPerSource} kept, the rest closed on accept`);
  const dig = await run('dig', ['+tcp', '+tries=1', '+time=3', '-p', String(port), '@127.0.0.1', 'web.test', 'A']);
  t.match(dig.stdout, /status: NOERROR/, 'dig +tcp from 127.0.0.1 answered');
  t.match(dig.stdout, /192\.0\.2\.1/);
  t.ok(log.lines.some((l) => String(l['msg']).startsWith('dns/tcp: connection refused (source-limit)')), 'the refusal was logged');
  t.equal(log.lines.filter((l) => String(l['msg']).startsWith('dns/tcp: connection refused')).length, 1, 'once, not once per refusal');
  const text = await createMetrics({ version: 'test', snapshot: () => store.current, listeners: () => [] }).render();
  const counted = /^lexa_connections_refused_total\{listener="dns\/tcp",reason="source-limit"\} (\d+)$/m.exec(text);
  t.equal(Number(counted?.[1]), FLOOD - FAIR.maxPerSource, 'every refusal counted in lexa_connections_refused_total');
});

t.test('DNS over TCP: a connection trickling bytes is closed at the first-query deadline, not the idle one', async (t) => {
  const server = await startPlainDns({
    binds: any,
    handle: stub.handle,
    log,
    limits: { ...STREAM_LIMITS, ...FAIR, maxReply: 1232, firstRequestTimeoutMs: 300, idleTimeoutMs: 20_000 },
  });
  t.teardown(() => server.close());
  const frame = Buffer.concat([Buffer.from([0, 200]), Buffer.alloc(200)]); // one query announced, never finished
  const sent = await trickle(net.connect({ host: '127.0.0.1', port: server.ports[0]!, localAddress: ATTACKER }), frame);
  t.ok(sent < frame.length, `closed after ${sent} of ${frame.length} bytes trickled at one per 20 ms`);
});

/**
 * Writes `bytes` one at a time, one every 20 ms, until the peer closes the connection or all are sent; resolves
 * with how many were sent. With a 300..500 ms deadline a listener that keeps its deadline closes it long before.
 */
function trickle(socket: net.Socket, bytes: Uint8Array, ready: 'connect' | 'secureConnect' = 'connect'): Promise<number> {
  return new Promise((resolve) => {
    let sent = 0;
    let timer: NodeJS.Timeout | undefined;
    socket.on('error', () => undefined);
    socket.once('close', () => {
      clearTimeout(timer);
      resolve(sent);
    });
    const next = () => {
      if (socket.destroyed) return;
      if (sent === bytes.length) return void socket.destroy();
      socket.write(bytes.subarray(sent, ++sent));
      timer = setTimeout(next, 20);
    };
    socket.once(ready, next);
  });
}

t.test('DoT: one address holding idle connections leaves kdig +tls from another served', async (t) => {
  const server = await startDot({ binds: any, tls: cert.tls, handle: stub.handle, log, limits: { ...STREAM_LIMITS, ...FAIR } });
  t.teardown(() => server.close());
  const port = server.ports[0]!;
  const flood = await idleFlood(t, port);
  t.equal(held(flood), FAIR.maxPerSource, `${FAIR.maxPerSource} kept`);
  const kdig = await run('kdig', ['+tls', '+timeout=3', '+retry=0', '-p', String(port), '@127.0.0.1', 'web.test', 'A']);
  t.match(kdig.stdout, /status: NOERROR/, 'kdig +tls from 127.0.0.1 answered');
});

const dohUrl = (port: number) => `https://127.0.0.1:${port}/dns-query?dns=${query(0, 'web.test').toString('base64url')}`;

t.test('DoH: one address holding idle connections leaves curl (HTTP/2 and HTTP/1.1) from another served', async (t) => {
  const server = await startDoh({ binds: any, tls: cert.tls, handle: stub.handle, log, limits: { ...DOH_LIMITS, ...FAIR } });
  t.teardown(() => server.close());
  const port = server.ports[0]!;
  const flood = await idleFlood(t, port);
  t.equal(held(flood), FAIR.maxPerSource, `${FAIR.maxPerSource} kept`);
  for (const version of ['--http2', '--http1.1']) {
    const curl = await run('curl', ['-sk', version, '-o', '/dev/null', '-w', '%{http_code}', '--max-time', '3', dohUrl(port)]);
    t.equal(curl.stdout, '200', `curl ${version} from 127.0.0.1 answered`);
  }
});

/** An HTTP/1.1 request head that never ends: a slow-loris trickles it. */
const LORIS_HEAD = Buffer.from(`GET /readyz HTTP/1.1\r\nHost: localhost\r\nX-Slow: ${'a'.repeat(200)}`);

t.test('DoH: slow-loris (HTTP/1.1 head trickled, HTTP/2 session that only pings) is closed at the first-request deadline', async (t) => {
  const server = await startDoh({ binds: any, tls: cert.tls, handle: stub.handle, log, limits: { ...DOH_LIMITS, ...FAIR, firstRequestTimeoutMs: 400 } });
  t.teardown(() => server.close());
  const port = server.ports[0]!;
  const socket = attackerTls(port, 'http/1.1');
  const sent = await trickle(socket, LORIS_HEAD, 'secureConnect');
  t.ok(sent < LORIS_HEAD.length, `HTTP/1.1: closed after ${sent} of ${LORIS_HEAD.length} head bytes trickled`);

  const session = http2.connect(`https://127.0.0.1:${port}`, {
    createConnection: () => attackerTls(port, 'h2'),
  });
  session.on('error', () => undefined);
  let pings = 0;
  const closed = new Promise<void>((resolve) => session.once('close', resolve));
  const pinger = setInterval(() => {
    if (!session.closed && !session.destroyed && pings < 100) session.ping(() => undefined) && pings++;
  }, 20);
  await Promise.race([closed, sleep(5_000)]);
  clearInterval(pinger);
  t.ok(session.closed || session.destroyed, 'HTTP/2: a session that opens no stream is closed');
  t.ok(pings < 100, `HTTP/2: closed after ${pings} pings (one per 20 ms), before the client gave up`);
  session.destroy();
});

t.test('DoQ: one address holding idle QUIC connections leaves kdig +quic from another served', async (t) => {
  const { QUICClient } = await import('@matrixai/quic');
  const { silentLibraryLogger } = await import('../../src/servers/doq/quic.js');
  const server = await startDoq({ binds: any, tls: cert.tls, handle: stub.handle, log, limits: { ...DOQ_LIMITS, ...FAIR } });
  t.teardown(() => server.close());
  const port = server.ports[0]!;
  const crypto = { ops: { randomBytes: async (data: ArrayBuffer) => void randomBytes(data.byteLength).copy(Buffer.from(data)) } };
  // Idle QUIC connections from ATTACKER (real QUIC clients, @matrixai/quic): those refused never finish their handshake.
  const clients = await Promise.allSettled(
    Array.from({ length: FLOOD }, () =>
      QUICClient.createQUICClient(
        { host: '127.0.0.1', port, localHost: ATTACKER, crypto, logger: silentLibraryLogger, config: { verifyPeer: false, applicationProtos: ['doq'], maxIdleTimeout: 20_000 } },
        { timer: 1_500 },
      ),
    ),
  );
  const connected = clients.flatMap((c) => (c.status === 'fulfilled' ? [c.value] : []));
  t.teardown(() => Promise.allSettled(connected.map((c) => c.destroy({ force: true }))));
  t.equal(connected.length, FAIR.maxPerSource, `${FLOOD} from ${ATTACKER}: ${FAIR.maxPerSource} finished their handshake`);
  const kdig = await run('kdig', ['+quic', '+timeout=3', '+retry=0', '-p', String(port), '@127.0.0.1', 'web.test', 'A']);
  t.match(kdig.stdout, /status: NOERROR/, 'kdig +quic from 127.0.0.1 answered');
});


t.test('REST: one address holding idle connections leaves curl /readyz from another served', async (t) => {
  const server = await startRest({ binds: any, tls: cert.tls, log, limits: { ...REST_LIMITS, ...FAIR }, app: { suffix: 'lexa', snapshot: () => store.current } });
  t.teardown(() => server.close());
  const port = server.ports[0]!;
  const flood = await idleFlood(t, port);
  t.equal(held(flood), FAIR.maxPerSource, `${FAIR.maxPerSource} kept`);
  const curl = await run('curl', ['-sk', '-o', '/dev/null', '-w', '%{http_code}', '--max-time', '3', `https://127.0.0.1:${port}/readyz`]);
  t.equal(curl.stdout, '200', 'curl /readyz from 127.0.0.1 answered');
});

t.test('REST: Consul blocking queries hold one connection each, so one address holds at most max_per_source', async (t) => {
  const server = await startRest({ binds: any, tls: cert.tls, log, limits: { ...REST_LIMITS, ...FAIR }, app: { suffix: 'lexa', snapshot: () => store.current } });
  t.teardown(() => server.close());
  const port = server.ports[0]!;
  const first = await run('curl', ['-sk', '-D', '-', '-o', '/dev/null', '--max-time', '3', `https://127.0.0.1:${port}/v1/health/service/web`]);
  const index = /x-consul-index: (\d+)/i.exec(first.stdout)?.[1];
  t.ok(index, 'an X-Consul-Index to block on');
  const waiters = Array.from({ length: FAIR.maxPerSource + 3 }, () => {
    const s = attackerTls(port);
    s.on('error', () => undefined);
    s.once('secureConnect', () => s.write(`GET /v1/health/service/web?index=${index}&wait=5m HTTP/1.1\r\nHost: x\r\n\r\n`));
    return s;
  });
  t.teardown(() => waiters.forEach((s) => s.destroy()));
  await waitFor(() => waiters.filter((s) => s.destroyed || s.readableEnded).length >= 3, { what: 'the extra waiters to be refused', intervalMs: 20 });
  await sleep(100);
  t.equal(waiters.filter((s) => !s.destroyed && !s.readableEnded).length, FAIR.maxPerSource, `${FAIR.maxPerSource} blocking queries held, the rest closed on accept`);
  const curl = await run('curl', ['-sk', '-o', '/dev/null', '-w', '%{http_code}', '--max-time', '3', `https://127.0.0.1:${port}/v1/catalog/services`]);
  t.equal(curl.stdout, '200', 'another address is answered');
});

t.test('REST: slow-loris (a request head trickled byte by byte) is closed at the first-request deadline', async (t) => {
  const server = await startRest({
    binds: any,
    tls: cert.tls,
    log,
    limits: { ...REST_LIMITS, ...FAIR, firstRequestTimeoutMs: 400 },
    app: { suffix: 'lexa', snapshot: () => store.current },
  });
  t.teardown(() => server.close());
  const socket = attackerTls(server.ports[0]!);
  const sent = await trickle(socket, LORIS_HEAD, 'secureConnect');
  t.ok(sent < LORIS_HEAD.length, `closed after ${sent} of ${LORIS_HEAD.length} head bytes trickled`);
});

t.test('REST: a connection that never finishes its TLS handshake is closed at the handshake deadline', async (t) => {
  const server = await startRest({
    binds: any,
    tls: cert.tls,
    log,
    limits: { ...REST_LIMITS, ...FAIR, handshakeTimeoutMs: 300 },
    app: { suffix: 'lexa', snapshot: () => store.current },
  });
  t.teardown(() => server.close());
  // A ClientHello trickled a byte at a time never completes: only the handshake deadline can close it.
  const hello = Buffer.from([0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01, 0xfc, ...Array<number>(200).fill(0x03)]);
  const sent = await trickle(net.connect({ host: '127.0.0.1', port: server.ports[0]!, localAddress: ATTACKER }), hello);
  t.ok(sent < hello.length, `closed after ${sent} of ${hello.length} ClientHello bytes trickled`);
});

t.test('agent endpoint: one address holding idle connections leaves the agent of another instance connected', async (t) => {
  const token = 'a-shared-secret-of-enough-length';
  const server = await startAgentServer({
    binds: any,
    tls: cert.tls,
    log,
    limits: { ...AGENT_LIMITS, ...FAIR },
    agents: new AgentIngest({ store: { snapshot: () => store.current, dispatch: (a) => store.dispatch(a) }, policy: () => ({ token, services: [] }), graceMs: () => 1_000, log }),
  });
  t.teardown(() => server.close());
  const port = server.ports[0]!;
  const flood = await idleFlood(t, port);
  t.equal(held(flood), FAIR.maxPerSource, `${FAIR.maxPerSource} kept`);
  const devlxd = await fakeDevlxd(() => CREDENTIAL);
  t.teardown(() => devlxd.close());
  const config: AgentConfig = {
    source: 'test',
    server: { host: '127.0.0.1', port },
    token,
    devlxd: devlxd.path,
    trust: { kind: 'ca', pem: cert.tls.cert },
    services: [{ name: 'https', port: 443, proto: 'tcp', tags: [], interface: null, priority: 1, weight: 1, checks: [] }],
  };
  const agent = new Agent(config, memoryLogger());
  agent.start();
  t.teardown(() => agent.stop());
  await waitFor(() => server.connected().includes('default/local'), { what: 'the agent at 127.0.0.1 to connect', timeoutMs: 5_000 });
  t.pass('the agent at 127.0.0.1 is connected');
});
