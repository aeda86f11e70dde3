// The DoQ transport against two independent clients: quic-go + miekg/dns (built
// by scripts/doq-client.sh) and kdig +quic (Knot 3.2: ngtcp2 + GnuTLS). The DNS handler here is a stub that answers
// A 192.0.2.1 for every name: these tests are about the transport (RFC 9250
// framing, ALPN, stream handling, connection errors), not lexa's resolver.

import { execFile, execFileSync, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { createSocket } from 'node:dgram';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import t from 'tap';
import { memoryLogger } from '../../src/log/index.js';
import { DOQ_LIMITS, startDoq, type DoqLimits } from '../../src/servers/doq/index.js';
import type { Listeners } from '../../src/servers/transport.js';
import type { Clock } from '../../src/time/clock.js';
import { kdigQuic } from '../helpers/dig.js';
import { FakeClock } from '../helpers/fake-clock.js';
import { waitFor } from '../helpers/lxd-cli.js';
import { localhostCert } from '../helpers/test-cert.js';
import { stubHandler } from '../helpers/transport-stub.js';

const root = resolve(fileURLToPath(import.meta.url), '../../..');
const { certFile, tls } = localhostCert('lexa-doq-');

// The stub handler shared by the transport tests (A 192.0.2.1 TTL 60 for any name; drop.test gets null, do
// not answer; throw.test makes it throw), logging into memory.
const stub = stubHandler();
const log = memoryLogger();
/** DoQ on 127.0.0.1:0 with the daemon's limits, some overridden, lexa's own deadlines on `clock`. */
const startOn = (limits: Partial<DoqLimits> = {}, clock?: Clock) =>
  startDoq({ binds: [{ host: '127.0.0.1', port: 0 }], tls, handle: stub.handle, log, limits: { ...DOQ_LIMITS, ...limits }, clock });

type Run = { code: number; stdout: string; stderr: string; ms: number };
let client = '';
let server: Listeners;
let port = 0;

function runClient(...args: string[]): Promise<Run> {
  const started = performance.now();
  return new Promise((done) => {
    execFile(client, ['-server', `127.0.0.1:${port}`, '-name', 'web.test', '-timeout', '3s', ...args], { maxBuffer: 16 << 20 }, (error, stdout, stderr) => {
      const code = error === null ? 0 : typeof error.code === 'number' ? error.code : -1;
      done({ code, stdout, stderr, ms: Math.round(performance.now() - started) });
    });
  });
}

const summary = (run: Run) => run.stdout.trim().split('\n').at(-1);
const answers = (run: Run) => run.stdout.split('\n').filter((l) => /^web\.test\.\s+60\s+IN\s+A\s+192\.0\.2\.1$/.test(l)).length;

t.before(async () => {
  try {
    client = execFileSync('sh', [join(root, 'scripts/doq-client.sh')], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] }).trim();
  } catch (error) {
    const e = error as { stderr?: string; message: string };
    throw new Error(`scripts/doq-client.sh could not build the Go DoQ client (needs Debian bookworm-backports: golang-1.23-go, quic-go, miekg/dns):\n${e.stderr ?? e.message}`);
  }
  server = await startOn();
  port = server.ports[0]!;
});
// close() waits for connections to finish closing; those whose handshake failed above
// (wrong ALPN, rejected certificate) drain for about 3 s (RFC 9000 §10.2, no RTT sample yet).
t.teardown(() => server?.close());

t.test('50 consecutive queries on one connection are all answered', async (t) => {
  const run = await runClient('-insecure', '-count', '50');
  t.equal(run.code, 0, 'client exits 0', { stdout: run.stdout.slice(-2000) });
  t.equal(summary(run), 'queries=50 ok=50 failed=0');
  t.equal(answers(run), 50, 'each reply carries the stub A record, printed in presentation format');
  t.match(run.stdout, /rcode NOERROR, 1 answers/);
  t.comment(`50 queries on one connection: ${run.ms} ms wall (client process included), client says ${run.stdout.match(/elapsed (\d+ms)/)?.[1]}`);
});

t.test('300 queries on one connection: beyond the initial 100-stream credit', async (t) => {
  const run = await runClient('-insecure', '-q', '-count', '300');
  t.equal(run.code, 0, 'client exits 0', { stdout: run.stdout.slice(-2000) });
  t.equal(summary(run), 'queries=300 ok=300 failed=0');
  t.comment(`300 queries on one connection: ${run.ms} ms wall`);
});

t.test('20 new connections with 3 queries each are all answered', async (t) => {
  const run = await runClient('-insecure', '-count', '3', '-conns', '20');
  t.equal(run.code, 0, 'client exits 0', { stdout: run.stdout.slice(-2000) });
  t.equal(summary(run), 'queries=60 ok=60 failed=0');
  t.equal(answers(run), 60);
  t.comment(`20 connections × 3 queries: ${run.ms} ms wall, client says ${run.stdout.match(/elapsed (\d+ms)/)?.[1]}`);
});

t.test('10 connections at once, 50 queries each: all answered', async (t) => {
  const run = await runClient('-insecure', '-parallel', '-conns', '10', '-count', '50');
  t.equal(summary(run), 'queries=500 ok=500 failed=0', 'streams of concurrent connections interleave on one socket');
});

t.test('kdig +quic (ngtcp2 + GnuTLS), certificate verified: the stub answer', async (t) => {
  const ask = kdigQuic(port, [`+tls-ca=${certFile}`, '+tls-hostname=localhost']);
  for (const name of ['web.test', 'second.web.test']) {
    const reply = await ask(name, 'A');
    t.equal(reply.status, 'NOERROR', name);
    t.same(reply.answer, [`${name}. 60 IN A 192.0.2.1`], `${name}: the answer`);
  }
  await t.rejects(kdigQuic(port, ['+tls-ca=/etc/ssl/certs/ca-certificates.crt', '+tls-hostname=localhost'])('web.test', 'A'), 'CAs that did not sign the certificate: no answer');
});

t.test('the certificate verifies against its CA file, by IP and by name', async (t) => {
  const byIp = await runClient('-ca', certFile, '-count', '2');
  t.equal(byIp.code, 0, 'client exits 0', { stdout: byIp.stdout });
  t.equal(summary(byIp), 'queries=2 ok=2 failed=0');
  const byName = await runClient('-ca', certFile, '-servername', 'localhost');
  t.equal(summary(byName), 'queries=1 ok=1 failed=0');
  const untrusted = await runClient();
  t.not(untrusted.code, 0, 'without -ca or -insecure the self-signed certificate is rejected');
  t.match(untrusted.stdout, /connect failed: .*certificate/);
  const wrongName = await runClient('-ca', certFile, '-servername', 'other.example');
  t.not(wrongName.code, 0, 'a name the certificate does not cover is rejected');
});

t.test('setTls: new connections get the new certificate, open ones keep working', async (t) => {
  const { certFile: otherCert, tls: other } = localhostCert('lexa-doq-other-');
  const swapped = await startOn();
  t.teardown(() => swapped.close());
  const run = (...args: string[]) => runClient('-server', `127.0.0.1:${swapped.ports[0]}`, ...args);
  t.equal(summary(await run('-ca', otherCert)), 'queries=1 ok=0 failed=1', 'before the swap the other certificate does not verify');

  // A connection verified against the first certificate, its second query sent after the swap.
  const calls = stub.calls.length;
  const held = run('-ca', certFile, '-count', '2', '-pause', '1s');
  await waitFor(() => stub.calls.length > calls, { what: 'the held connection\'s first query' });
  swapped.setTls(other);
  t.equal(summary(await held), 'queries=2 ok=2 failed=0', 'the connection opened before the swap keeps working');

  t.equal(summary(await run('-ca', otherCert)), 'queries=1 ok=1 failed=0', 'a new connection verifies against the new certificate');
  t.equal(summary(await run('-ca', certFile)), 'queries=1 ok=0 failed=1', 'and no longer against the old one');
  t.throws(() => swapped.setTls({ ...other, key: tls.key }), 'a key that does not match is refused');
  t.equal(summary(await run('-ca', otherCert)), 'queries=1 ok=1 failed=0', 'and the certificate in use is unchanged');
});

t.test('a client offering another ALPN is refused, and the server lives on', async (t) => {
  const run = await runClient('-insecure', '-alpn', 'dot');
  t.not(run.code, 0);
  t.match(run.stdout, /connect failed: .*(no_application_protocol|ALPN|0x178)/i);
  t.equal(summary(run), 'queries=1 ok=0 failed=1');
  const after = await runClient('-insecure');
  t.equal(summary(after), 'queries=1 ok=1 failed=0');
});

t.test('a query with a non-zero message ID closes the connection with DOQ_PROTOCOL_ERROR', async (t) => {
  const before = stub.calls.length;
  const run = await runClient('-insecure', '-id', '4660', '-count', '2');
  t.not(run.code, 0);
  t.match(run.stdout, /conn 0 query 0: server (reset the stream|closed the connection) with DoQ error 0x2\n/, 'the query is refused with DOQ_PROTOCOL_ERROR');
  t.match(run.stdout, /conn 0 query 1: server closed the connection with DoQ error 0x2\n/, 'and the connection is closed with it');
  t.equal(summary(run), 'queries=2 ok=0 failed=2');
  t.equal(stub.calls.length, before, 'the handler never saw the query');
  t.ok(log.lines.some((l) => String(l['msg']).includes('protocol error') && l['why'] === 'query message ID is not 0'));
  const after = await runClient('-insecure', '-count', '3');
  t.equal(summary(after), 'queries=3 ok=3 failed=0', 'the server answers afterwards');
});

t.test('a client-initiated unidirectional stream closes the connection with DOQ_PROTOCOL_ERROR', async (t) => {
  const run = await runClient('-insecure', '-uni');
  t.not(run.code, 0);
  t.match(run.stdout, /server closed the connection with DoQ error 0x2/);
  const after = await runClient('-insecure');
  t.equal(summary(after), 'queries=1 ok=1 failed=0');
});

t.test('a query the handler drops or fails on resets only its stream', async (t) => {
  const dropped = await runClient('-insecure', '-name', 'drop.test', '-count', '2');
  t.match(dropped.stdout, /query 0: server reset the stream with DoQ error 0x3\n.*query 1: server reset the stream with DoQ error 0x3\n/s, 'null: DOQ_REQUEST_CANCELLED, connection kept');
  const failed = await runClient('-insecure', '-name', 'throw.test');
  t.match(failed.stdout, /query 0: server reset the stream with DoQ error 0x1\n/, 'a throwing handler: DOQ_INTERNAL_ERROR');
  const after = await runClient('-insecure');
  t.equal(summary(after), 'queries=1 ok=1 failed=0');
});

t.test('broken framing closes the connection with DOQ_PROTOCOL_ERROR, and the server lives on', async (t) => {
  for (const bad of ['truncated', 'trailing', 'short']) {
    const run = await runClient('-insecure', '-bad', bad);
    t.not(run.code, 0, `${bad}: client fails`);
    t.match(run.stdout, /server (reset the stream|closed the connection) with DoQ error 0x2\n/, `${bad}: DOQ_PROTOCOL_ERROR`);
  }
  const after = await runClient('-insecure', '-count', '3');
  t.equal(summary(after), 'queries=3 ok=3 failed=0');
});

t.test('garbage datagrams are ignored', async (t) => {
  const socket = createSocket('udp4');
  t.teardown(() => socket.close());
  const send = (b: Uint8Array) => new Promise<void>((done, fail) => socket.send(b, port, '127.0.0.1', (e) => (e ? fail(e) : done())));
  for (let i = 0; i < 300; i++) {
    const datagram = randomBytes(1 + (i % 40) * 30);
    if (i % 3 === 0) datagram[0] = 0xc0 | (datagram[0]! & 0x0f); // a QUIC long header (Initial) with junk after it
    if (i % 3 === 1 && datagram.length >= 5) {
      datagram[0] = 0xc0; // ... claiming QUIC version 1
      datagram.writeUInt32BE(1, 1);
    }
    await send(datagram);
  }
  const after = await runClient('-insecure', '-count', '3');
  t.equal(summary(after), 'queries=3 ok=3 failed=0');
});

t.test('maxConnections: a full server lets new handshakes time out', async (t) => {
  const full = await startOn({ maxConnections: 0 });
  const fullPort = full.ports[0]!;
  t.teardown(() => full.close());
  const run = await runClient('-insecure', '-server', `127.0.0.1:${fullPort}`, '-timeout', '500ms');
  t.match(run.stdout, /connect failed: (timeout|context deadline exceeded)/);
});

t.test('idleTimeoutMs: the server forgets a connection idle for longer', async (t) => {
  // quic-go never takes a peer's idle timeout below 5 s, so it does not notice: its
  // query after the pause goes to a server that has dropped the connection.
  const brief = await startOn({ idleTimeoutMs: 1000 });
  const briefPort = brief.ports[0]!;
  t.teardown(() => brief.close());
  const quick = await runClient('-insecure', '-server', `127.0.0.1:${briefPort}`, '-count', '2', '-pause', '300ms', '-timeout', '1s');
  t.equal(summary(quick), 'queries=2 ok=2 failed=0', 'a pause shorter than the idle timeout keeps the connection');
  const slow = await runClient('-insecure', '-server', `127.0.0.1:${briefPort}`, '-count', '2', '-pause', '2s', '-timeout', '1500ms');
  t.equal(summary(slow), 'queries=2 ok=1 failed=1', 'a longer one loses it');
  // Forgotten silently by QUIC's idle timeout, or closed (DOQ_NO_ERROR) by the idle deadline: whichever fires first.
  t.match(slow.stdout, /query 1: (deadline exceeded|server closed the connection)/);
});

t.test('idle deadline on a fake clock: a connection that opens no query stream for idleTimeoutMs is closed', async (t) => {
  // QUIC's own idle timeout (the library's, real: min(30 s, the client's 10 s)) is not reached during the client's
  // 1 s pause; lexa's idle deadline, on the fake clock, is moved past (or just short of) while the client pauses.
  const clock = new FakeClock();
  const s = await startOn({}, clock);
  t.teardown(() => s.close());
  const sPort = s.ports[0]!;
  /** The client asks twice, pausing 1 s between; once its first reply is in, the clock moves `advanceMs`. */
  const pausedAfterOne = (advanceMs: number) =>
    new Promise<string>((done) => {
      const child = spawn(client, ['-insecure', '-server', `127.0.0.1:${sPort}`, '-name', 'web.test', '-count', '2', '-pause', '1s']);
      let stdout = '';
      let advanced: Promise<void> | undefined;
      child.stdout.on('data', (d: Buffer) => {
        stdout += d.toString();
        if (advanced === undefined && /query 0: rcode/.test(stdout)) advanced = clock.advance(advanceMs);
      });
      child.once('close', () => void Promise.resolve(advanced).then(() => done(stdout)));
    });
  const kept = await pausedAfterOne(DOQ_LIMITS.idleTimeoutMs - 1);
  t.match(kept, /queries=2 ok=2 failed=0\n$/, 'a millisecond short of the idle deadline, the connection is kept');
  const dropped = await pausedAfterOne(DOQ_LIMITS.idleTimeoutMs);
  t.match(dropped, /queries=2 ok=1 failed=1\n$/, 'at the idle deadline it is closed');
  t.match(dropped, /query 1: server closed the connection with DoQ error 0x0\b/, 'quietly: DOQ_NO_ERROR');
});

t.test('idleTimeoutMs must be positive (the library reads 0 as "never")', async (t) => {
  await t.rejects(startOn({ idleTimeoutMs: 0 }), /idleTimeoutMs/);
});

t.test('nothing reached the process-level error paths', async (t) => {
  t.same(
    log.lines.filter((l) => l['level'] === 'error' || l['level'] === 'warn').map((l) => l['msg']),
    ['doq: handler threw'],
    'the only warning is the stub handler\'s deliberate throw',
  );
  t.same(log.lines.filter((l) => l['msg'] === 'doq: library error'), [], 'no library error surfaced');
});
