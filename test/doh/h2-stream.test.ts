import { Buffer } from 'node:buffer';
import http2 from 'node:http2';
import dnsPacket from 'dns-packet';
import t from 'tap';
import { DOH_LIMITS, startDoh } from '../../src/servers/doh/index.js';
import { memoryLogger } from '../../src/log/index.js';
import { FakeClock } from '../helpers/fake-clock.js';
import { query, sleep, stubHandler, testCertificate } from '../helpers/transport-stub.js';

// HTTP/2 on the stream API (src/servers/doh/h2-stream.ts) under hostile use, with node:http2 as the client against
// the real server on loopback. The handler is the transport stub (test/helpers/transport-stub.ts); lexa's own
// deadlines run on a fake clock, so every timer the stream path sets can be counted (clock.pendingFor) and seen
// cleared. test/doh/doh.test.ts covers RFC 8484 with dig, kdig and curl; this file the stream path's edges.

const cert = await testCertificate();
const stub = stubHandler();
const log = memoryLogger();
const clock = new FakeClock();
// The idle deadline apart from the body deadlines: on the native session it runs on this clock too, beside them.
const limits = { ...DOH_LIMITS, idleTimeoutMs: DOH_LIMITS.requestTimeoutMs * 6 };
const server = await startDoh({ binds: [{ host: '127.0.0.1', port: 0 }], tls: cert.tls, handle: stub.handle, log, limits, clock });
/** Body deadlines waiting on the clock. */
const bodyDeadlines = () => clock.pendingFor(limits.requestTimeoutMs);
t.teardown(() => server.close());
const port = server.ports[0]!;
const POST = { ':method': 'POST', ':path': '/dns-query', 'content-type': 'application/dns-message' };

function connect(): Promise<http2.ClientHttp2Session> {
  return new Promise((resolve, reject) => {
    const session = http2.connect(`https://127.0.0.1:${port}`, { ca: cert.tls.cert, servername: 'localhost' });
    session.once('connect', () => resolve(session));
    session.once('error', reject);
  });
}

interface Answer {
  readonly status: number;
  readonly headers: http2.IncomingHttpHeaders;
  readonly body: Buffer;
}

/**
 * One request; `body` is written in `chunks` pieces, then the stream ended unless `end` is false (a client that
 * would go on sending). Resolves when the stream closes, whatever happened to it.
 */
function request(session: http2.ClientHttp2Session, headers: http2.OutgoingHttpHeaders, body?: Uint8Array, chunks = 1, end = true): Promise<Answer> {
  return new Promise((resolve) => {
    const req = session.request(headers, { endStream: body === undefined });
    const got: Buffer[] = [];
    let status = 0;
    let responseHeaders: http2.IncomingHttpHeaders = {};
    req.on('response', (h) => {
      responseHeaders = h;
      status = Number(h[':status']);
    });
    req.on('data', (c: Buffer) => got.push(c));
    req.on('error', () => {});
    req.on('close', () => resolve({ status, headers: responseHeaders, body: Buffer.concat(got) }));
    if (body !== undefined) {
      const step = Math.ceil(body.length / chunks);
      for (let at = 0; at < body.length; at += step) req.write(body.subarray(at, at + step));
      if (end) req.end();
    }
  });
}

const idOf = (body: Buffer) => dnsPacket.decode(body).id;

t.test('many streams on one connection: 1000 POSTs, 100 in flight, each answered with its own ID', async (t) => {
  const session = await connect();
  t.teardown(() => session.close());
  const ROUNDS = 10;
  const IN_FLIGHT = DOH_LIMITS.maxConcurrentStreams;
  let wrong = 0;
  for (let round = 0; round < ROUNDS; round++) {
    const ids = Array.from({ length: IN_FLIGHT }, (_, i) => round * IN_FLIGHT + i + 1);
    // Odd IDs arrive in three DATA frames: a body in pieces is read whole.
    const answers = await Promise.all(ids.map((id) => request(session, POST, query(id, 'web.test'), id % 2 === 1 ? 3 : 1)));
    answers.forEach((a, i) => {
      if (a.status !== 200 || idOf(a.body) !== ids[i]) wrong++;
    });
  }
  t.equal(wrong, 0, `${ROUNDS * IN_FLIGHT} answers, every one 200 with its query's ID`);
  t.equal(bodyDeadlines(), 0, 'no body deadline is left behind');
});

t.test('over HTTP/2 the reply headers are the same as before the stream API: status, type, cache, length, date', async (t) => {
  const session = await connect();
  t.teardown(() => session.close());
  const a = await request(session, POST, query(7, 'ttls.test'));
  t.equal(a.status, 200);
  t.equal(a.headers['content-type'], 'application/dns-message');
  t.equal(a.headers['cache-control'], 'max-age=45', 'max-age: the smallest TTL');
  t.equal(a.headers['content-length'], String(a.body.length));
  t.match(a.headers['date'], /GMT$/, 'a date, as the compatibility layer sent');
  const head = await request(session, { ':method': 'HEAD', ':path': `/dns-query?dns=${query(8, 'web.test').toString('base64url')}` });
  t.equal(head.status, 200);
  t.equal(head.body.length, 0, 'HEAD: no body');
  t.ok(Number(head.headers['content-length']) > 12, 'HEAD: the length GET would send');
});

t.test('oversized body: 413 as soon as it passes 65535 bytes, the stream reset, the session goes on', async (t) => {
  const session = await connect();
  t.teardown(() => session.close());
  // No content-length: the size is only known as the body arrives, in 16 KiB DATA frames.
  const big = await request(session, POST, Buffer.alloc(200_000), 20);
  t.equal(big.status, 413);
  t.match(big.body.toString(), /payload too large/);
  // The client below never ends its body: the stream closes only because the server resets it after the 413
  // (RST_STREAM(NO_ERROR), RFC 9113 §8.1: stop sending).
  const announced = await request(session, { ...POST, 'content-length': '70000' }, Buffer.alloc(100), 1, false);
  t.equal(announced.status, 413, 'a content-length over the limit: 413 before any body is read, and the stream closed');
  const partial = await request(session, POST, Buffer.alloc(70_000), 5, false);
  t.equal(partial.status, 413, 'a body passing the limit, never ended: 413, and the stream closed');
  t.equal(idOf((await request(session, POST, query(9, 'web.test'))).body), 9, 'the session still answers');
  t.equal(bodyDeadlines(), 0, 'no body deadline is left behind');
});

t.test('wrong or missing content-type: 415 with the body unread; other errors as on HTTP/1.1', async (t) => {
  const session = await connect();
  t.teardown(() => session.close());
  const wrong = await request(session, { ...POST, 'content-type': 'application/json' }, query(10, 'web.test'), 1, false);
  t.equal(wrong.status, 415, 'a body never ended: 415, and the stream closed');
  t.match(wrong.body.toString(), /application\/dns-message/);
  const none = await request(session, { ':method': 'POST', ':path': '/dns-query' }, query(11, 'web.test'));
  t.equal(none.status, 415, 'no content-type');
  const empty = await request(session, POST);
  t.equal(empty.status, 400, 'a POST that ends with its headers: empty body');
  const put = await request(session, { ':method': 'PUT', ':path': '/dns-query' });
  t.equal(put.status, 405);
  t.equal(put.headers['allow'], 'GET, HEAD, POST');
  const expect = await request(session, { ...POST, expect: 'something-else' }, query(12, 'web.test'));
  t.equal(expect.status, 417, 'an expectation other than 100-continue');
  const cont = await request(session, { ...POST, expect: '100-continue' }, query(13, 'web.test'));
  t.equal(cont.status, 200, '100-continue: answered');
  t.equal(idOf(cont.body), 13);
  const drop = await request(session, POST, query(14, 'drop.test'));
  t.equal(drop.status, 400, 'a message the handler will not answer');
  const thrown = await request(session, POST, query(15, 'throw.test'));
  t.equal(thrown.status, 500, 'a handler that throws costs its request only');
  t.equal(idOf((await request(session, POST, query(16, 'web.test'))).body), 16, 'the session still answers');
});

t.test('a stream reset mid-body: its deadline is cleared, nothing is sent, the session goes on', async (t) => {
  const session = await connect();
  t.teardown(() => session.close());
  const before = log.lines.length;
  const resets = Array.from({ length: 50 }, () => {
    const req = session.request({ ...POST, 'content-length': '50' });
    req.on('error', () => {});
    req.write(Buffer.alloc(10));
    return req;
  });
  // A later stream's reply comes after the server has read the earlier streams' first bytes: a barrier.
  t.equal(idOf((await request(session, POST, query(17, 'web.test'))).body), 17);
  t.equal(bodyDeadlines(), 50, 'fifty bodies waiting, each with its deadline');
  await Promise.all(resets.map((req) => new Promise((resolve) => req.close(http2.constants.NGHTTP2_CANCEL, () => resolve(undefined)))));
  t.equal(idOf((await request(session, POST, query(18, 'web.test'))).body), 18, 'the session still answers');
  t.equal(bodyDeadlines(), 0, 'every deadline cleared with its stream');
  await clock.advance(DOH_LIMITS.requestTimeoutMs);
  await sleep(50);
  t.same(log.lines.slice(before).filter((l) => l['level'] === 'warn'), [], 'no failed request logged');
  // And a client that drops the whole connection mid-body.
  const doomed = await connect();
  doomed.on('error', () => {});
  const half = doomed.request({ ...POST, 'content-length': '50' });
  half.on('error', () => {});
  half.write(Buffer.alloc(10));
  await sleep(50);
  doomed.destroy();
  const closed = Date.now();
  while (bodyDeadlines() > 0 && Date.now() - closed < 3000) await sleep(20);
  t.equal(bodyDeadlines(), 0, 'the deadline goes with a dropped connection too');
});
