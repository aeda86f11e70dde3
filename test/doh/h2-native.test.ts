import { Buffer } from 'node:buffer';
import dnsPacket from 'dns-packet';
import t from 'tap';
import { memoryLogger } from '../../src/log/index.js';
import { DOH_LIMITS, startDoh } from '../../src/servers/doh/index.js';
import { loadH2Addon } from '../../src/servers/doh/native-h2.js';
import { FakeClock } from '../helpers/fake-clock.js';
import { doh, ERROR, FLAG, FRAME, frame, headerBlock, RawH2, request, rstStream, SETTING, settings, windowUpdate } from '../helpers/h2-frames.js';
import { query, sleep, stubHandler, testCertificate } from '../helpers/transport-stub.js';

// DoH's native HTTP/2 session (src/servers/doh/h2-session.ts on native/h2_session.c) under raw HTTP/2 frames over
// TLS (test/helpers/h2-frames.ts): what no well-behaved client sends. node:http2 as a client cannot send most of
// it; test/doh/h2-stream.test.ts and doh.test.ts run the ordinary requests over both stacks.

const addon = loadH2Addon();
if (addon instanceof Error) {
  t.fail(`the native HTTP/2 addon did not load: ${addon.message} (node scripts/build-native.mjs)`);
  process.exit(1);
}
const cert = await testCertificate();
const ca = cert.tls.cert;
const stub = stubHandler();
const log = memoryLogger();
const server = await startDoh({ binds: [{ host: '127.0.0.1', port: 0 }], tls: cert.tls, handle: stub.handle, log, limits: DOH_LIMITS });
t.teardown(() => server.close());
const port = server.ports[0]!;
const POST = doh('POST', '/dns-query');
const idOf = (body: Buffer | undefined) => (body === undefined ? undefined : dnsPacket.decode(body).id);

async function connect(firstSettings?: Buffer): Promise<RawH2> {
  const c = new RawH2(port, ca, firstSettings);
  await c.ready;
  return c;
}

t.test('the listening line names the HTTP/2 stack, and why not the native one', async (t) => {
  t.match(log.lines.find((l) => l['msg'] === 'doh: listening'), { http2: 'native (nghttp2)' });
  const own = memoryLogger();
  const forced = await startDoh({ binds: [{ host: '127.0.0.1', port: 0 }], tls: cert.tls, handle: stub.handle, log: own, limits: DOH_LIMITS, http2: new Error('LEXA_DOH_HTTP2=node') });
  await forced.close();
  t.match(own.lines.find((l) => l['msg'] === 'doh: listening'), { http2: 'node:http2', nativeUnavailable: 'LEXA_DOH_HTTP2=node' });
  t.match(loadH2Addon(undefined, { LEXA_DOH_HTTP2: 'node' }), Error, 'LEXA_DOH_HTTP2=node refuses the addon');
  t.match(loadH2Addon(undefined, {}, '1.58.0'), /nghttp2 is 1\.58\.0; the native session needs 1\.61/, 'an older nghttp2 refuses it');
  t.match(loadH2Addon('/nonexistent/h2_session.node', {}), Error, 'a missing addon refuses it');
});

t.test('100 concurrent streams in one write, each answered with its own ID', async (t) => {
  const c = await connect();
  t.teardown(() => c.close());
  const frames: Buffer[] = [];
  for (let i = 0; i < DOH_LIMITS.maxConcurrentStreams; i++) {
    const stream = 2 * i + 1;
    frames.push(request(stream, POST, false), frame(FRAME.DATA, FLAG.END_STREAM, stream, query(1000 + i, 'web.test')));
  }
  c.write(...frames);
  const ids = Array.from({ length: DOH_LIMITS.maxConcurrentStreams }, (_, i) => 2 * i + 1);
  t.ok(await c.until(() => ids.every((s) => c.body(s) !== undefined)), 'every stream answered');
  t.same(ids.map((s) => idOf(c.body(s))), ids.map((_, i) => 1000 + i), 'each with its query ID');
});

t.test('a body split across DATA frames, and a request ended by trailers', async (t) => {
  const c = await connect();
  t.teardown(() => c.close());
  const q = query(41, 'web.test');
  c.write(request(1, POST, false), frame(FRAME.DATA, 0, 1, q.subarray(0, 5)));
  await sleep(20);
  c.write(frame(FRAME.DATA, 0, 1, q.subarray(5, 9)));
  await sleep(20);
  c.write(frame(FRAME.DATA, FLAG.END_STREAM, 1, q.subarray(9)));
  t.ok(await c.until(() => c.body(1) !== undefined));
  t.equal(idOf(c.body(1)), 41, 'three DATA frames in three reads: read whole');
  c.write(request(3, POST, false), frame(FRAME.DATA, 0, 3, query(42, 'web.test')));
  c.write(frame(FRAME.HEADERS, FLAG.END_HEADERS | FLAG.END_STREAM, 3, headerBlock([['x-trailer', 'yes']])));
  t.ok(await c.until(() => c.body(3) !== undefined));
  t.equal(idOf(c.body(3)), 42, 'trailers end the request');
});

t.test('rapid reset: streams opened and reset in bulk get a GOAWAY and the connection closed', async (t) => {
  const c = await connect();
  t.teardown(() => c.close());
  const frames: Buffer[] = [];
  // nghttp2's budget is a burst of 1000, then 33 a second: 2000 in one go exceeds it.
  for (let i = 0; i < 2000; i++) frames.push(request(2 * i + 1, POST, false), rstStream(2 * i + 1, ERROR.CANCEL));
  c.write(...frames);
  t.ok(await c.until(() => c.goaway() !== undefined), 'GOAWAY');
  await Promise.race([c.closed, sleep(3000)]);
  t.ok(c.socket.destroyed, 'and the connection closed');
});

t.test('a header list over 96 KiB resets its stream; the session goes on', async (t) => {
  const c = await connect();
  t.teardown(() => c.close());
  // 7 fields of 15 KiB (one field over 64 KiB is an HPACK error, which ends the whole connection).
  const block = headerBlock([...POST, ...Array.from({ length: 7 }, (_, i): [string, string] => [`x-big-${i}`, 'a'.repeat(15 * 1024)])]);
  // HEADERS then CONTINUATIONs of 16 KiB (the default frame size): 7 frames in all.
  const parts: Buffer[] = [];
  for (let at = 0; at < block.length; at += 16_384) parts.push(block.subarray(at, at + 16_384));
  c.write(
    ...parts.map((p, i) =>
      frame(i === 0 ? FRAME.HEADERS : FRAME.CONTINUATION, (i === 0 ? FLAG.END_STREAM : 0) | (i === parts.length - 1 ? FLAG.END_HEADERS : 0), 1, p),
    ),
  );
  t.ok(await c.until(() => c.reset(1) !== undefined), 'RST_STREAM on the oversized stream');
  t.equal(c.body(1), undefined, 'not answered');
  c.write(request(3, doh('GET', `/dns-query?dns=${query(43, 'web.test').toString('base64url')}`), true));
  t.ok(await c.until(() => c.body(3) !== undefined));
  t.equal(idOf(c.body(3)), 43, 'the next stream is answered');
});

t.test('CONTINUATION frames beyond 8 end the session', async (t) => {
  const c = await connect();
  t.teardown(() => c.close());
  const frames = [frame(FRAME.HEADERS, 0, 1, headerBlock(POST))];
  for (let i = 0; i < 20; i++) frames.push(frame(FRAME.CONTINUATION, 0, 1, headerBlock([[`x-${i}`, 'v']])));
  c.write(...frames);
  await Promise.race([c.closed, sleep(3000)]);
  t.ok(c.socket.destroyed, 'the connection is closed');
});

t.test('streams beyond SETTINGS_MAX_CONCURRENT_STREAMS: REFUSED_STREAM before the SETTINGS ack, GOAWAY after', async (t) => {
  const over = DOH_LIMITS.maxConcurrentStreams + 5;
  // Bodies never sent: every stream stays open.
  const opens = Array.from({ length: over }, (_, i) => request(2 * i + 1, POST, false));
  const beyond = Array.from({ length: 5 }, (_, i) => 2 * (DOH_LIMITS.maxConcurrentStreams + i) + 1);
  // A client that has not acknowledged the server's SETTINGS yet (it may not have seen them): refused streams,
  // which it may retry (RFC 9113 §5.1.2, §8.7).
  const racing = await connect();
  t.teardown(() => racing.close());
  racing.write(...opens);
  t.ok(await racing.until(() => beyond.every((s) => racing.reset(s) !== undefined)), 'each stream beyond the limit is reset');
  t.same(beyond.map((s) => racing.reset(s)), beyond.map(() => ERROR.REFUSED_STREAM), 'with REFUSED_STREAM');
  t.equal(racing.reset(1), undefined, 'streams within the limit are not');
  t.equal(racing.goaway(), undefined, 'the session goes on');
  // A client that acknowledged the limit and ignores it: a connection error (nghttp2's choice, RFC 9113 §5.4.1).
  const ignoring = await connect();
  t.teardown(() => ignoring.close());
  await ignoring.until((fs) => fs.some((f) => f.type === FRAME.SETTINGS && !(f.flags & FLAG.ACK)));
  ignoring.write(frame(FRAME.SETTINGS, FLAG.ACK, 0));
  await sleep(50);
  ignoring.write(...opens);
  t.ok(await ignoring.until(() => ignoring.goaway() !== undefined), 'GOAWAY');
  t.equal(ignoring.goaway(), ERROR.PROTOCOL_ERROR, 'PROTOCOL_ERROR');
});

t.test('junk instead of frames ends the session; a PING flood from a client that does not read is not read either', async (t) => {
  const junk = await connect();
  t.teardown(() => junk.close());
  junk.socket.write(Buffer.from('\xff'.repeat(64)));
  await Promise.race([junk.closed, sleep(3000)]);
  t.ok(junk.socket.destroyed, 'junk: closed');
  const flood = await connect();
  t.teardown(() => flood.close());
  flood.socket.pause(); // never reads the PING acks
  const ping = frame(FRAME.PING, 0, 0, Buffer.alloc(8));
  const batch = Buffer.concat(Array.from({ length: 2000 }, () => ping));
  // 40 MB of PINGs (2.4 million): the acks would be 40 MB too, were they all read and answered.
  for (let i = 0; i < 1200 && !flood.socket.destroyed; i++) flood.socket.write(batch);
  await sleep(2000);
  const unsent = flood.socket.writableLength;
  t.ok(flood.socket.destroyed || unsent > 20_000_000, `the server stopped reading: ${(unsent / 1e6).toFixed(1)} MB of PINGs left unsent`);
});

t.test('a client that does not read: the session stops reading its requests (backpressure)', async (t) => {
  // Flow control opened wide (a 2^31−1 window): only the session's own bound holds the replies back.
  const c = await connect(settings([[SETTING.INITIAL_WINDOW_SIZE, 0x7fffffff]]));
  t.teardown(() => c.close());
  c.write(windowUpdate(0, 0x7fffffff - 65_535));
  c.socket.pause();
  const before = stub.calls.length;
  const get = doh('GET', `/dns-query?dns=${query(44, 'big.test').toString('base64url')}`);
  const SENT = 10_000;
  for (let batch = 0; batch < SENT / 50; batch++) {
    c.socket.write(Buffer.concat(Array.from({ length: 50 }, (_, i) => request(2 * (batch * 50 + i) + 1, get, true))));
  }
  await sleep(2000);
  const answered = stub.calls.length - before;
  // Each reply is ~5 KB: the kernel's socket buffers hold a few MB of them (~600 here); the session then stops
  // reading. Without the bound it went on reading and answering (8,700 of 40,000 in the same 2 s).
  t.ok(answered < 2_000, `${answered} of ${SENT} requests read while the client read nothing`);
  c.socket.resume();
  t.ok(await c.until(() => c.body(2 * (SENT - 1) + 1) !== undefined, 20_000), 'once it reads, every request is answered');
});

t.test('the session\'s deadlines run on the server\'s clock: first request, idle (not while a stream is open), a body', async (t) => {
  const clock = new FakeClock();
  const own = await startDoh({ binds: [{ host: '127.0.0.1', port: 0 }], tls: cert.tls, handle: stub.handle, log, limits: DOH_LIMITS, clock });
  t.teardown(() => own.close());
  const open = async () => {
    const c = new RawH2(own.ports[0]!, ca);
    await c.ready;
    // The server's SETTINGS: the session is open and its timers set.
    await c.until((fs) => fs.some((f) => f.type === FRAME.SETTINGS));
    return c;
  };
  const get = (stream: number, id: number) => request(stream, doh('GET', `/dns-query?dns=${query(id, 'web.test').toString('base64url')}`), true);
  const { firstRequestTimeoutMs: firstMs, idleTimeoutMs: idleMs, requestTimeoutMs: requestMs } = DOH_LIMITS;

  // No request: closed at the first-request deadline, not a millisecond before.
  const silent = await open();
  t.teardown(() => silent.close());
  await clock.advance(firstMs - 1);
  t.notOk(await silent.until(() => silent.socket.destroyed, 100), 'open a millisecond before the first-request deadline');
  await clock.advance(1);
  await Promise.race([silent.closed, sleep(3000)]);
  t.ok(silent.socket.destroyed, 'closed at the first-request deadline, by the clock');

  // Answered, then quiet: GOAWAY at the idle deadline counted from the last request, and the connection ends.
  const quiet = await open();
  t.teardown(() => quiet.close());
  await clock.advance(firstMs - 1);
  quiet.write(get(1, 51));
  t.ok(await quiet.until(() => quiet.body(1) !== undefined), 'a request before the first-request deadline is answered');
  await clock.advance(idleMs - 1);
  t.notOk(await quiet.until(() => quiet.goaway() !== undefined, 100), 'no GOAWAY a millisecond before the idle deadline');
  await clock.advance(1);
  t.ok(await quiet.until(() => quiet.goaway() !== undefined), 'GOAWAY at the idle deadline');
  t.equal(quiet.goaway(), ERROR.NO_ERROR, 'with NO_ERROR');
  await Promise.race([quiet.closed, sleep(3000)]);
  t.ok(quiet.socket.destroyed, 'then the connection ends');

  // A stream waiting for its body is activity: no GOAWAY past the idle deadline; the body's deadline answers 408.
  const waiting = await open();
  t.teardown(() => waiting.close());
  waiting.write(request(1, POST, false), frame(FRAME.DATA, 0, 1, query(52, 'web.test').subarray(0, 4)));
  t.ok(await waiting.until(() => clock.pendingFor(requestMs) === 1), 'the body\'s deadline is set');
  await clock.advance(requestMs - 1);
  t.equal(waiting.goaway(), undefined, 'no GOAWAY while a stream is open, past the idle deadline');
  t.notOk(await waiting.until(() => waiting.frames.some((f) => f.stream === 1 && f.type === FRAME.HEADERS), 100), 'no reply before the body deadline');
  await clock.advance(1);
  t.ok(await waiting.until(() => waiting.body(1) !== undefined), 'a reply at the body deadline');
  t.match(waiting.body(1)?.toString(), /^request timeout/, 'the 408\'s text');
  waiting.write(get(3, 53));
  t.ok(await waiting.until(() => waiting.body(3) !== undefined), 'and the session goes on');
});
