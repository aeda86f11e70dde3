import { Buffer } from 'node:buffer';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import http2 from 'node:http2';
import net from 'node:net';
import os from 'node:os';
import { join } from 'node:path';
import tls from 'node:tls';
import dnsPacket, { type DecodedPacket } from 'dns-packet';
import t from 'tap';
import { DOH_LIMITS, LINGER_MS, startDoh, type DohLimits } from '../../src/servers/doh/index.js';
import type { TlsListeners } from '../../src/servers/transport.js';
import type { Clock } from '../../src/time/clock.js';
import { FakeClock } from '../helpers/fake-clock.js';
import { requireIPv6Loopback } from '../helpers/net.js';
import { memoryLogger } from '../../src/log/index.js';
import { BIG_ANSWERS, printedId, query, run, sleep, stubHandler, testCertificate, type Run } from '../helpers/transport-stub.js';

// DoH TRANSPORT tests: the DNS handler is a stub (test/helpers/transport-stub.ts: A 192.0.2.1 for any name, the
// query's ID echoed, a few names with chosen TTLs and rcodes), so these prove RFC 8484 over HTTP/2 and HTTP/1.1,
// the error statuses and the resource limits with real clients (dig 9.18, kdig 3.2, curl 7.88) and node:http2.
// Name forms through DoH are tested against the real LXD elsewhere.

const cert = await testCertificate();
const other = await testCertificate(); // a second, unrelated certificate: wrong CA, and the setTls swap
const stub = stubHandler();
const log = memoryLogger();
const dir = mkdtempSync(join(os.tmpdir(), 'lexa-doh-'));

type Reply = DecodedPacket & { rcode: string };

/** DoH on 127.0.0.1 with the daemon's limits, some overridden, on the default path or `path`, lexa's deadlines on `clock`. */
function start(limits: Partial<DohLimits> = {}, path?: string, clock?: Clock): Promise<TlsListeners> {
  const binds = [{ host: '127.0.0.1', port: 0 }];
  return startDoh({ binds, tls: cert.tls, handle: stub.handle, log, limits: { ...DOH_LIMITS, ...limits }, ...(path ? { path } : {}), clock });
}

const b64url = (buf: Uint8Array) => Buffer.from(buf).toString('base64url');
const b64padded = (buf: Uint8Array) => Buffer.from(buf).toString('base64').replace(/\+/g, '-').replace(/\//g, '_');

let files = 0;
/** A file holding `data`, for curl's --data-binary @file. */
function file(data: Uint8Array): string {
  const path = join(dir, `body-${files++}.bin`);
  writeFileSync(path, data);
  return path;
}

interface CurlResult {
  readonly status: number;
  readonly version: string;
  readonly headers: ReadonlyMap<string, string>;
  readonly body: Buffer;
  readonly uploaded: number;
  readonly run: Run;
}

/** curl against our server, verifying its certificate; the final response's status, headers and body. */
async function curl(...args: string[]): Promise<CurlResult> {
  const out = join(dir, `out-${files++}`);
  writeFileSync(out, '');
  const r = await run('curl', ['-sS', '--max-time', '10', '--cacert', cert.caFile, '-D', '-', '-o', out, '-w', '\n%{http_version} %{size_upload}', ...args]);
  const blocks = r.stdout.split(/\r\n\r\n/);
  const trailer = blocks.pop()!.trim().split(' ');
  const head = blocks.filter((b) => /^HTTP\//.test(b.trim())).at(-1) ?? '';
  const [statusLine = '', ...lines] = head.trim().split('\r\n');
  const headers = new Map(lines.map((l) => [l.slice(0, l.indexOf(':')).toLowerCase(), l.slice(l.indexOf(':') + 1).trim()]));
  return {
    status: Number(statusLine.split(' ')[1] ?? 0),
    version: trailer[0] ?? '',
    headers,
    body: readFileSync(out),
    uploaded: Number(trailer[1] ?? -1),
    run: r,
  };
}

const decode = (body: Uint8Array) => dnsPacket.decode(Buffer.from(body)) as Reply;
const kdig = (port: number, ...args: string[]) => run('kdig', ['@127.0.0.1', '-p', String(port), '+time=3', '+retry=0', ...args]);
const dig = (port: number, ...args: string[]) => run('dig', ['@127.0.0.1', '-p', String(port), '+time=3', '+tries=1', ...args]);
const A_LINE = /^web\.test\.\s+60\s+IN\s+A\s+192\.0\.2\.1$/m;
const VERSIONS = [
  ['--http1.1', '1.1'],
  ['--http2', '2'],
] as const;

/** An HTTP/2 client session that trusts our test certificate (or another). */
function h2connect(port: number, ca = cert.tls.cert): Promise<http2.ClientHttp2Session> {
  return new Promise((resolve, reject) => {
    const session = http2.connect(`https://127.0.0.1:${port}`, { ca, servername: 'localhost' });
    session.once('connect', () => resolve(session));
    session.once('error', reject);
  });
}

/** One request on an HTTP/2 session; resolves with the response, or rejects if the stream fails. */
function h2request(
  session: http2.ClientHttp2Session,
  headers: http2.OutgoingHttpHeaders,
  body?: Uint8Array,
): Promise<{ status: number; headers: http2.IncomingHttpHeaders; body: Buffer }> {
  return new Promise((resolve, reject) => {
    const req = session.request(headers, { endStream: body === undefined });
    const chunks: Buffer[] = [];
    let responseHeaders: http2.IncomingHttpHeaders = {};
    req.on('response', (h) => (responseHeaders = h));
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => resolve({ status: Number(responseHeaders[':status']), headers: responseHeaders, body: Buffer.concat(chunks) }));
    req.on('error', reject);
    if (body !== undefined) req.end(body);
  });
}

/** Resolves with how long `closed` took, or rejects after `ms`. */
async function closesWithin(closed: Promise<unknown>, ms: number): Promise<number> {
  const started = Date.now();
  let timer: NodeJS.Timeout | undefined;
  await Promise.race([closed, new Promise((_, reject) => (timer = setTimeout(() => reject(new Error(`still open after ${ms} ms`)), ms)))]);
  clearTimeout(timer);
  return Date.now() - started;
}

/** A raw TLS connection (for byte-level HTTP/1.1 and protocol abuse); collects everything the server sends. */
function rawTls(port: number, alpn: string[] = ['http/1.1']) {
  const socket = tls.connect({ host: '127.0.0.1', port, ca: cert.tls.cert, servername: 'localhost', ALPNProtocols: alpn });
  socket.on('error', () => {});
  let received = '';
  socket.on('data', (c: Buffer) => (received += c.toString('latin1')));
  const closed = new Promise<void>((resolve) => socket.on('close', () => resolve()));
  const secure = new Promise<void>((resolve) => socket.once('secureConnect', () => resolve()));
  return { socket, closed, secure, received: () => received };
}

let server: TlsListeners;
let port = 0;
t.before(async () => {
  server = await start();
  port = server.ports[0]!;
});
t.teardown(() => server.close());

t.test('real clients: dig +https (POST), +https-get, kdig +https (POST and GET), verified and not', async (t) => {
  const cases: [string, Promise<Run>][] = [
    ['dig +https', dig(port, '+https', `+tls-ca=${cert.caFile}`, '+tls-hostname=localhost', 'web.test', 'A')],
    ['dig +https-get', dig(port, '+https-get', `+tls-ca=${cert.caFile}`, '+tls-hostname=localhost', 'web.test', 'A')],
    ['dig +https (no verification)', dig(port, '+https', 'web.test', 'A')],
    ['dig +https=/dns-query', dig(port, '+https=/dns-query', `+tls-ca=${cert.caFile}`, 'web.test', 'A')],
    ['kdig +https', kdig(port, '+https', `+tls-ca=${cert.caFile}`, '+tls-hostname=localhost', 'web.test', 'A')],
    ['kdig +https +https-get', kdig(port, '+https', '+https-get', `+tls-ca=${cert.caFile}`, '+tls-hostname=localhost', 'web.test', 'A')],
    ['kdig +https (no verification)', kdig(port, '+https', 'web.test', 'A')],
  ];
  for (const [name, pending] of cases) {
    const r = await pending;
    t.equal(r.code, 0, `${name}: exit 0 (${r.ms} ms)`);
    t.match(r.stdout, /status: NOERROR/, `${name}: NOERROR`);
    t.match(r.stdout, A_LINE, `${name}: the stub's answer`);
    const id = printedId(r.stdout);
    t.ok(id !== undefined && stub.calls.some((c) => c.id === id && c.name === 'web.test'), `${name}: ID ${id} echoed`);
  }
  t.ok(stub.calls.some((c) => c.id !== 0), 'dig sends non-zero IDs over DoH, and they come back');
  t.ok(stub.calls.every((c) => c.limit.kind === 'message'), 'the handler is always called with the message limit (never truncated)');
});

t.test('real clients: verification against another certificate fails', async (t) => {
  const k = await kdig(port, '+https', `+tls-ca=${other.caFile}`, '+tls-hostname=localhost', 'web.test', 'A');
  t.not(k.code, 0, 'kdig');
  t.notMatch(k.stdout, A_LINE);
  const d = await dig(port, '+https', `+tls-ca=${other.caFile}`, '+tls-hostname=localhost', 'web.test', 'A');
  t.notMatch(d.stdout, A_LINE, 'dig');
  const c = await run('curl', ['-sS', '--cacert', other.caFile, `https://127.0.0.1:${port}/dns-query?dns=${b64url(query(1, 'web.test'))}`]);
  t.equal(c.code, 60, 'curl: certificate problem (60)');
});

t.test('curl --doh-url resolves a name through lexa (HTTP/2 POST, ID 0, A and AAAA) and fetches from it', async (t) => {
  const web = http.createServer((_req, res) => res.end('hello from here.test\n'));
  await new Promise<void>((resolve) => web.listen(0, '127.0.0.1', resolve));
  t.teardown(() => new Promise((resolve) => web.close(resolve)));
  const webPort = (web.address() as net.AddressInfo).port;
  const before = stub.calls.length;
  const target = `http://here.test:${webPort}/`;
  const insecure = await run('curl', ['-sS', '--max-time', '10', '--doh-url', `https://127.0.0.1:${port}/dns-query`, '--doh-insecure', target]);
  t.equal(insecure.stdout, 'hello from here.test\n', `--doh-insecure: fetched through the DoH answer (${insecure.ms} ms)`);
  const calls = stub.calls.slice(before);
  t.same(new Set(calls.map((c) => `${c.name} ${c.type} id=${c.id}`)), new Set(['here.test A id=0', 'here.test AAAA id=0']));
  const verified = await run('curl', ['-sS', '--max-time', '10', '--doh-url', `https://127.0.0.1:${port}/dns-query`, '--cacert', cert.caFile, target]);
  t.equal(verified.stdout, 'hello from here.test\n', '--cacert: the DoH server verified too');
  const unverified = await run('curl', ['-sS', '--max-time', '10', '--doh-url', `https://127.0.0.1:${port}/dns-query`, target]);
  t.equal(unverified.code, 6, 'without the CA, the DoH lookup fails (could not resolve host)');
  const verbose = await run('curl', ['-sv', '--max-time', '10', '--doh-url', `https://127.0.0.1:${port}/dns-query`, '--doh-insecure', `http://web.test:${webPort}/`]);
  t.match(verbose.stderr, /DoH A: 192\.0\.2\.1/, 'curl -v shows the address DoH returned for another name');
});

t.test('curl GET and POST over HTTP/1.1 and HTTP/2: the ID echoed, content-type, cache-control', async (t) => {
  const q = query(0xbeef, 'web.test');
  for (const [flag, version] of VERSIONS) {
    const url = `https://127.0.0.1:${port}/dns-query`;
    const forms: [string, Promise<CurlResult>][] = [
      ['GET unpadded', curl(flag, `${url}?dns=${b64url(q)}`)],
      ['GET padded', curl(flag, `${url}?dns=${b64padded(q)}`)],
      ['GET padding percent-encoded', curl(flag, `${url}?dns=${b64padded(q).replace(/=/g, '%3D')}`)],
      ['GET with another parameter first', curl(flag, `${url}?ct=x&dns=${b64url(q)}`)],
      ['POST', curl(flag, '--data-binary', `@${file(q)}`, '-H', 'content-type: application/dns-message', url)],
      ['POST with media type parameters', curl(flag, '--data-binary', `@${file(q)}`, '-H', 'content-type: Application/DNS-Message; charset=x', url)],
    ];
    t.ok(b64padded(q).endsWith('='), 'the query has padding to tolerate');
    for (const [name, pending] of forms) {
      const r = await pending;
      const what = `HTTP/${version} ${name}`;
      t.equal(r.status, 200, `${what}: 200 (${r.run.ms} ms)`);
      t.equal(r.version, version, `${what}: spoke HTTP/${version}`);
      t.equal(r.headers.get('content-type'), 'application/dns-message', `${what}: content-type`);
      t.equal(r.headers.get('cache-control'), 'max-age=60', `${what}: cache-control`);
      t.equal(r.headers.get('content-length'), String(r.body.length), `${what}: content-length`);
      const reply = decode(r.body);
      t.equal(reply.id, 0xbeef, `${what}: ID echoed`);
      t.same(reply.answers?.map((a) => (a.type === 'A' ? a.data : '')), ['192.0.2.1'], `${what}: the answer`);
    }
  }
});

t.test('cache-control: the smallest TTL; for negative answers the SOA TTL or MINIMUM; else 0', async (t) => {
  const cases: [string, dnsPacket.RecordType, string, number][] = [
    ['web.test', 'A', 'NOERROR', 60],
    ['ttls.test', 'A', 'NOERROR', 45], // answers 90, 45, 120; authority NS 3600
    ['zero.test', 'A', 'NOERROR', 0],
    ['nx.test', 'A', 'NXDOMAIN', 15], // SOA TTL 300, MINIMUM 15
    ['web.test', 'AAAA', 'NOERROR', 10], // NODATA: SOA TTL 30, MINIMUM 10
    ['test', 'SOA', 'NOERROR', 300], // the SOA as the answer: TTL 300 (its MINIMUM, 15, is for negative answers)
    ['servfail.test', 'A', 'SERVFAIL', 0], // no records
  ];
  for (const [name, type, rcode, maxAge] of cases) {
    const r = await curl('--http2', `https://127.0.0.1:${port}/dns-query?dns=${b64url(query(7, name, type))}`);
    t.equal(r.status, 200, `${name} ${type}: 200 (DNS errors travel in the DNS message)`);
    t.equal(decode(r.body).rcode, rcode, `${name} ${type}: ${rcode}`);
    t.equal(r.headers.get('cache-control'), `max-age=${maxAge}`, `${name} ${type}: max-age=${maxAge}`);
  }
});

t.test('a large answer arrives whole', async (t) => {
  for (const [flag] of VERSIONS) {
    const r = await curl(flag, `https://127.0.0.1:${port}/dns-query?dns=${b64url(query(8, 'big.test'))}`);
    const reply = decode(r.body);
    t.equal(reply.answers?.length, BIG_ANSWERS, `${flag}: ${BIG_ANSWERS} records, ${r.body.length} bytes`);
    t.equal(reply.flag_tc, false, `${flag}: not truncated`);
  }
});

t.test('HEAD is GET without the body', async (t) => {
  const target = `/dns-query?dns=${b64url(query(9, 'web.test'))}`;
  for (const [flag, version] of VERSIONS) {
    const r = await curl(flag, '-I', `https://127.0.0.1:${port}${target}`);
    t.equal(r.status, 200, `curl -I over HTTP/${version}: 200`);
    t.equal(r.headers.get('content-type'), 'application/dns-message');
    t.equal(r.headers.get('cache-control'), 'max-age=60');
    t.equal(r.headers.get('content-length'), '50', 'the length GET would send');
  }
  const session = await h2connect(port);
  const h2 = await h2request(session, { ':method': 'HEAD', ':path': target });
  session.close();
  t.equal(h2.status, 200);
  t.equal(h2.body.length, 0, 'HTTP/2: no body');
  const h1 = rawTls(port);
  await h1.secure;
  h1.socket.write(`HEAD ${target} HTTP/1.1\r\nhost: localhost\r\n\r\nGET ${target} HTTP/1.1\r\nhost: localhost\r\n\r\n`);
  await sleep(200);
  h1.socket.destroy();
  const [head = '', rest = ''] = h1.received().split(/\r\n\r\n(?=HTTP\/1\.1)/);
  t.match(head, /^HTTP\/1\.1 200 [^]*content-length: 50\r\n/i, 'HTTP/1.1: HEAD answered');
  t.notMatch(head, /\r\n\r\n./, 'HTTP/1.1: no body after the HEAD reply');
  t.match(rest, /^HTTP\/1\.1 200 /, 'HTTP/1.1: the next response follows at once');
});

t.test('errors: a clear 4xx with a short text body, on HTTP/1.1 and HTTP/2', async (t) => {
  const url = `https://127.0.0.1:${port}/dns-query`;
  const q = query(10, 'web.test');
  const dnsMessage = ['-H', 'content-type: application/dns-message'];
  const cases: [string, string[], number, RegExp][] = [
    ['PUT', ['-X', 'PUT', '--data-binary', `@${file(q)}`, ...dnsMessage, url], 405, /method not allowed/],
    ['DELETE', ['-X', 'DELETE', url], 405, /method not allowed/],
    ['OPTIONS', ['-X', 'OPTIONS', url], 405, /method not allowed/],
    ['POST text/plain', ['--data-binary', `@${file(q)}`, '-H', 'content-type: text/plain', url], 415, /application\/dns-message/],
    ['POST form (curl default type)', ['--data-binary', `@${file(q)}`, url], 415, /unsupported media type/],
    ['POST, empty body', ['--data-binary', `@${file(new Uint8Array(0))}`, ...dnsMessage, url], 400, /empty body/],
    ['POST, not a query (5 bytes)', ['--data-binary', `@${file(q.subarray(0, 5))}`, ...dnsMessage, url], 400, /not a DNS query/],
    ['GET without dns', [url], 400, /missing "dns"/],
    ['GET with other parameters only', [`${url}?name=web.test&type=A`], 400, /missing "dns"/],
    ['GET dns=', [`${url}?dns=`], 400, /empty "dns"/],
    ['GET dns=@@@', [`${url}?dns=@@@`], 400, /not base64url/],
    ['GET dns in standard base64 (+ /)', [`${url}?dns=${encodeURIComponent('ab+/cd==')}`], 400, /not base64url/],
    ['GET dns with a dangling character', [`${url}?dns=AAAAA`], 400, /not base64url/],
    ['GET dns with wrong padding', [`${url}?dns=${b64url(q)}A=`], 400, /not base64url/],
    ['GET dns with padding in the middle', [`${url}?dns=QQ==QQ`], 400, /not base64url/],
    ['GET, not a query (3 bytes)', [`${url}?dns=AAAA`], 400, /not a DNS query/],
    ['GET, a query the handler drops', [`${url}?dns=${b64url(query(11, 'drop.test'))}`], 400, /not a DNS query/],
    ['GET another path', [`https://127.0.0.1:${port}/other?dns=${b64url(q)}`], 404, /not found.*\/dns-query/],
    ['GET the path with a trailing slash', [`${url}/?dns=${b64url(q)}`], 404, /not found/],
    ['GET the root', [`https://127.0.0.1:${port}/`], 404, /not found/],
    ['GET, a handler that throws', [`${url}?dns=${b64url(query(12, 'throw.test'))}`], 500, /internal server error/],
  ];
  for (const [flag, version] of VERSIONS) {
    for (const [name, args, status, message] of cases) {
      const r = await curl(flag, ...args);
      const what = `HTTP/${version} ${name}`;
      t.equal(r.status, status, `${what}: ${status}`);
      t.equal(r.headers.get('content-type'), 'text/plain; charset=utf-8', `${what}: text/plain`);
      t.match(r.body.toString(), message, `${what}: says why`);
      if (status === 405) t.equal(r.headers.get('allow'), 'GET, HEAD, POST', `${what}: allow`);
    }
  }
  t.ok(log.lines.some((l) => l['level'] === 'warn' && l['status'] === 500), 'the 500 was logged as a warning');
  const after = await curl('--http2', `${url}?dns=${b64url(q)}`);
  t.equal(after.status, 200, 'the server still answers');
});

t.test('413: a body over 65535 bytes is refused without being read whole; 65535 bytes is fine', async (t) => {
  const url = `https://127.0.0.1:${port}/dns-query`;
  const dnsMessage = ['-H', 'content-type: application/dns-message'];
  const q = query(13, 'web.test');
  const exact = Buffer.concat([q, Buffer.alloc(65_535 - q.length)]); // trailing bytes after the question: ignored by dns-packet
  const over = Buffer.concat([q, Buffer.alloc(65_536 - q.length)]);
  const huge = file(Buffer.alloc(4 << 20));
  const before = stub.calls.length;
  for (const [flag, version] of VERSIONS) {
    const ok = await curl(flag, '--data-binary', `@${file(exact)}`, ...dnsMessage, url);
    t.equal(ok.status, 200, `HTTP/${version}: 65535 bytes are answered`);
    t.equal(decode(ok.body).id, 13);
    const cases: [string, string[]][] = [
      ['65536 bytes', ['--data-binary', `@${file(over)}`, ...dnsMessage, url]],
      ['4 MiB with content-length', ['--data-binary', `@${huge}`, ...dnsMessage, url]],
      ['4 MiB with content-length, no Expect', ['--data-binary', `@${huge}`, '-H', 'expect:', ...dnsMessage, url]],
      ['4 MiB without content-length', ['--data-binary', `@${huge}`, '-H', 'transfer-encoding: chunked', ...dnsMessage, url]],
    ];
    for (const [name, args] of cases) {
      const r = await curl(flag, ...args);
      t.equal(r.status, 413, `HTTP/${version} ${name}: 413 (${r.run.ms} ms, ${r.uploaded} bytes sent) ${r.run.stderr}`);
      t.match(r.body.toString(), /at most 65535 bytes/);
    }
  }
  const expectContinue = await curl('--http1.1', '--data-binary', `@${huge}`, ...dnsMessage, url);
  t.equal(expectContinue.uploaded, 0, 'HTTP/1.1 with Expect: 100-continue: refused before any of the body is sent');
  t.notMatch(expectContinue.run.stdout, /100 Continue/, 'and never invited to send it (no 100 Continue)');
  t.same(
    stub.calls.slice(before).map((c) => c.id),
    [13, 13],
    'the handler saw only the two 65535-byte queries',
  );
});

t.test('HTTP/1.1: a client still sending a refused body reads the 413 (lingering close), every time', async (t) => {
  const url = `https://127.0.0.1:${port}/dns-query`;
  const dnsMessage = ['-H', 'content-type: application/dns-message'];
  const huge = file(Buffer.alloc(4 << 20));
  // Without the lingering close about a quarter of these ended in "Send failure: Broken pipe" and no status.
  const forms: [string, string[]][] = [
    ['chunked', ['--data-binary', `@${huge}`, '-H', 'transfer-encoding: chunked', ...dnsMessage, url]],
    ['uploaded file, chunked', ['-T', huge, '-X', 'POST', '-H', 'transfer-encoding: chunked', ...dnsMessage, url]],
    ['uploaded file, content-length, no Expect', ['-T', huge, '-X', 'POST', '-H', 'expect:', ...dnsMessage, url]],
  ];
  for (const [name, args] of forms) {
    const statuses: number[] = [];
    for (let i = 0; i < 5; i++) statuses.push((await curl('--http1.1', ...args)).status);
    t.same(statuses, Array(5).fill(413), `curl, ${name}: 413 five times out of five`);
  }
});

t.test('HTTP/1.1 lingering close on a fake clock: half-closed after the 413 until LINGER_MS, then closed', async (t) => {
  // The mechanism, deterministically: a client that keeps sending after the 413 (and does not close its side)
  // finds the connection half-closed, still accepting its bytes, until LINGER_MS on the server's clock.
  const clock = new FakeClock();
  const s = await start({}, undefined, clock);
  t.teardown(() => s.close());
  const halfOpen = { allowHalfOpen: true } as tls.ConnectionOptions; // works at run time; @types/node omits it
  const socket = tls.connect({ host: '127.0.0.1', port: s.ports[0]!, ca: cert.tls.cert, servername: 'localhost', ALPNProtocols: ['http/1.1'], ...halfOpen });
  socket.on('error', () => {});
  let received = '';
  const refused = new Promise<void>((resolve) =>
    socket.on('data', (c: Buffer) => {
      received += c.toString('latin1');
      if (/ 413 /.test(received)) resolve();
    }),
  );
  let isClosed = false;
  const closed = new Promise<void>((resolve) => socket.on('close', () => resolve()));
  void closed.then(() => (isClosed = true));
  await new Promise((resolve) => socket.once('secureConnect', resolve));
  socket.write('POST /dns-query HTTP/1.1\r\nhost: x\r\ncontent-type: application/dns-message\r\ntransfer-encoding: chunked\r\n\r\n');
  const chunk = `10000\r\n${'a'.repeat(0x10000)}\r\n`; // 64 KiB chunks, every 20 ms
  const sending = setInterval(() => socket.writable && socket.write(chunk), 20);
  t.teardown(() => clearInterval(sending));
  await refused;
  t.match(received, /^HTTP\/1\.1 413 [^]*connection: close\r\n/i, '413 with connection: close');
  await clock.advance(LINGER_MS - 1);
  await sleep(50); // time for a close to reach the client, were there one
  t.equal(isClosed, false, 'still open (half-closed, reading) a millisecond before LINGER_MS, the client still sending');
  await clock.advance(1);
  // Within half of LINGER_MS of real time: the close comes of the fake clock, not of a real timer.
  await closesWithin(closed, LINGER_MS / 2);
  t.pass('closed at LINGER_MS');
});

t.test('a request body that does not arrive in time gets 408 (fake clock), and the stream or connection ends', async (t) => {
  // The request deadline is lexa's, on the fake clock; Node's own HTTP/1.1 request timeout (the same 10 s, real)
  // is not reached while the test runs.
  const clock = new FakeClock();
  const slow = await start({}, undefined, clock);
  t.teardown(() => slow.close());
  const p = slow.ports[0]!;
  const requestMs = DOH_LIMITS.requestTimeoutMs;
  const get = (session: http2.ClientHttp2Session, id: number) => h2request(session, { ':path': `/dns-query?dns=${b64url(query(id, 'web.test'))}` });
  // HTTP/2: headers and 10 of the 50 announced bytes, then nothing
  const session = await h2connect(p);
  const stream = session.request({ ':method': 'POST', ':path': '/dns-query', 'content-type': 'application/dns-message', 'content-length': '50' });
  stream.on('error', () => {});
  const streamClosed = new Promise((resolve) => stream.on('close', resolve));
  let status = 0;
  const responded = new Promise<void>((resolve) => stream.on('response', (h) => resolve(void (status = Number(h[':status'])))));
  stream.resume(); // read the 408's body, or the stream never ends
  stream.write(Buffer.alloc(10));
  // A later stream's reply comes after anything the server sent on this one: a barrier, not a wait.
  t.equal((await get(session, 14)).status, 200, 'HTTP/2: the server has the slow stream (a later one is answered)');
  await clock.advance(requestMs - 1);
  t.equal((await get(session, 15)).status, 200, 'HTTP/2: the session answers meanwhile');
  t.equal(status, 0, 'HTTP/2: no reply a millisecond before the request deadline');
  await clock.advance(1);
  await closesWithin(responded, 3000);
  t.equal(status, 408, 'HTTP/2: 408 at the request deadline');
  await closesWithin(streamClosed, 2000);
  t.pass('HTTP/2: the stream was closed');
  t.equal((await get(session, 16)).status, 200, 'HTTP/2: the session goes on');
  session.close();
  // HTTP/1.1: after the 408 the connection closes (lingering, on the same clock)
  const raw = rawTls(p);
  await raw.secure;
  raw.socket.write('POST /dns-query HTTP/1.1\r\nhost: localhost\r\ncontent-type: application/dns-message\r\ncontent-length: 50\r\n\r\n0123456789');
  await sleep(50); // the request's real way over loopback and TLS
  await clock.advance(requestMs - 1);
  await sleep(50); // time for a reply to reach the client, were there one
  t.equal(raw.received(), '', 'HTTP/1.1: no reply a millisecond before the request deadline');
  const replied = new Promise<void>((resolve) => raw.socket.on('data', () => / 408 /.test(raw.received()) && resolve()));
  await clock.advance(1);
  await closesWithin(replied, 3000);
  t.match(raw.received(), /^HTTP\/1\.1 408 [^]*connection: close\r\n/i, 'HTTP/1.1: 408 at the request deadline');
  await clock.advance(LINGER_MS);
  await closesWithin(raw.closed, 3000);
  t.pass('HTTP/1.1: the connection closed after lingering');
});

t.test('a client trickling HTTP/1.1 headers is disconnected', async (t) => {
  const slow = await start({ requestTimeoutMs: 300, idleTimeoutMs: 10_000 });
  t.teardown(() => slow.close());
  const raw = rawTls(slow.ports[0]!);
  await raw.secure;
  const started = Date.now();
  const line = 'GET /dns-query?dns=AAAA HTTP/1.1\r\nx-slow: ';
  for (let i = 0; !raw.socket.destroyed && Date.now() - started < 4000; i++) {
    raw.socket.write(i < line.length ? line[i]! : 'a'); // a byte every 50 ms: never idle, never finished
    await sleep(50);
  }
  await closesWithin(raw.closed, 100);
  t.ok(Date.now() - started < 2500, `closed after ${Date.now() - started} ms (request timeout 300 ms, checked every second)`);
});

t.test('idle connections are closed: HTTP/2 sessions that only ping, HTTP/1.1 keep-alive', async (t) => {
  const idle = await start({ idleTimeoutMs: 300 });
  t.teardown(() => idle.close());
  const p = idle.ports[0]!;
  const busy = await h2connect(p);
  for (let i = 0; i < 8; i++) {
    t.equal((await h2request(busy, { ':path': `/dns-query?dns=${b64url(query(i, 'web.test'))}` })).status, 200);
    await sleep(100);
  }
  t.equal(busy.closed || busy.destroyed, false, 'a session asking every 100 ms stays open past the idle timeout');
  busy.close();

  const pinger = await h2connect(p);
  pinger.on('error', () => {});
  const goaway = new Promise((resolve) => pinger.once('goaway', resolve));
  const started = Date.now();
  const pinging = setInterval(() => {
    if (!pinger.destroyed && !pinger.closed) pinger.ping(() => {});
  }, 50);
  t.teardown(() => clearInterval(pinging));
  await closesWithin(goaway, 3000);
  t.ok(Date.now() - started >= 250, `a session sending only PINGs got GOAWAY after ${Date.now() - started} ms`);
  await closesWithin(new Promise((resolve) => pinger.once('close', resolve)), 3000);
  clearInterval(pinging);

  const h1 = rawTls(p);
  await h1.secure;
  h1.socket.write(`GET /dns-query?dns=${b64url(query(15, 'web.test'))} HTTP/1.1\r\nhost: localhost\r\n\r\n`);
  const waited = await closesWithin(h1.closed, 3000);
  t.match(h1.received(), /^HTTP\/1\.1 200 /, 'HTTP/1.1: answered');
  t.ok(waited >= 250, `HTTP/1.1: the keep-alive connection was closed ${waited} ms later`);
});

t.test('a client that never starts the TLS handshake is dropped after the handshake timeout', async (t) => {
  const s = await start({ handshakeTimeoutMs: 300 });
  t.teardown(() => s.close());
  const raw = net.connect(s.ports[0]!, '127.0.0.1');
  raw.on('error', () => {});
  const closed = new Promise<void>((resolve) => raw.on('close', () => resolve()));
  await new Promise((resolve) => raw.once('connect', resolve));
  const waited = await closesWithin(closed, 3000);
  t.ok(waited >= 250, `dropped after ${waited} ms (timeout 300 ms)`);
});

t.test('connections beyond the cap are closed; streams per session are capped by SETTINGS', async (t) => {
  // One source holds at most maxConnections less the reserved quarter (servers/fairness.ts): 2 of 3.
  const s = await start({ maxConnections: 3, maxConcurrentStreams: 7 });
  t.teardown(() => s.close());
  const p = s.ports[0]!;
  const a = await h2connect(p);
  const b = await h2connect(p);
  t.equal(a.remoteSettings.maxConcurrentStreams, 7, 'SETTINGS_MAX_CONCURRENT_STREAMS as configured');
  await t.rejects(h2connect(p), 'a third session is refused');
  const c = await curl('--http1.1', `https://127.0.0.1:${p}/dns-query?dns=${b64url(query(16, 'web.test'))}`);
  t.equal(c.status, 0, 'so is an HTTP/1.1 connection');
  t.ok(log.lines.some((l) => String(l['msg']).includes('doh: connection refused')), 'the drop was logged');
  t.equal((await h2request(a, { ':path': `/dns-query?dns=${b64url(query(17, 'web.test'))}` })).status, 200, 'existing sessions work');
  a.destroy();
  await sleep(50);
  const d = await curl('--http2', `https://127.0.0.1:${p}/dns-query?dns=${b64url(query(18, 'web.test'))}`);
  t.equal(d.status, 200, 'a freed slot is usable again');
  b.destroy();
});

t.test('setTls: new connections get the new certificate, open sessions keep working', async (t) => {
  const s = await start();
  t.teardown(() => s.close());
  const p = s.ports[0]!;
  const before = await h2connect(p);
  t.equal((before.socket as tls.TLSSocket).getPeerX509Certificate()?.fingerprint256, cert.tls.fingerprint);
  s.setTls(other.tls);
  const after = await h2connect(p, other.tls.cert);
  t.equal((after.socket as tls.TLSSocket).getPeerX509Certificate()?.fingerprint256, other.tls.fingerprint, 'a new session sees the new certificate');
  t.equal((await h2request(before, { ':path': `/dns-query?dns=${b64url(query(19, 'web.test'))}` })).status, 200, 'the old session still answers');
  const url = `https://127.0.0.1:${p}/dns-query?dns=${b64url(query(20, 'web.test'))}`;
  t.equal((await run('curl', ['-sS', '-o', '/dev/null', '-w', '%{http_code}', '--cacert', other.caFile, url])).stdout, '200', 'curl trusting the new certificate');
  t.equal((await run('curl', ['-sS', '--cacert', cert.caFile, url])).code, 60, 'curl trusting only the old one fails');
  before.close();
  after.close();
});

t.test('protocol abuse does not hurt the server', async (t) => {
  const junkH2 = rawTls(port, ['h2']);
  await junkH2.secure;
  junkH2.socket.write('this is not an HTTP/2 connection preface\r\n\r\n');
  await closesWithin(junkH2.closed, 3000);
  t.pass('HTTP/2 junk: connection closed');
  const junkH1 = rawTls(port);
  await junkH1.secure;
  junkH1.socket.write('\x00\x01\x02 GARBAGE\r\n\r\n');
  await closesWithin(junkH1.closed, 3000);
  t.match(junkH1.received(), /^HTTP\/1\.1 400 /, 'HTTP/1.1 junk: 400, closed');
  const plain = net.connect(port, '127.0.0.1');
  plain.on('error', () => {});
  plain.write('GET /dns-query HTTP/1.1\r\nhost: x\r\n\r\n');
  await closesWithin(new Promise((resolve) => plain.on('close', resolve)), 3000);
  t.pass('plain HTTP on the TLS port: closed');
  const reset = await h2connect(port);
  const stream = reset.request({ ':method': 'POST', ':path': '/dns-query', 'content-type': 'application/dns-message' });
  stream.on('error', () => {});
  stream.write(Buffer.alloc(20));
  await sleep(20);
  stream.close(http2.constants.NGHTTP2_CANCEL); // the client gives up half-way through its body
  await sleep(20);
  reset.destroy(); // and drops the connection mid-session
  const gone = rawTls(port);
  await gone.secure;
  gone.socket.write('POST /dns-query HTTP/1.1\r\nhost: x\r\ncontent-type: application/dns-message\r\ncontent-length: 40\r\n\r\n0123');
  await sleep(20);
  gone.socket.destroy();
  await sleep(50);
  const r = await curl('--http2', `https://127.0.0.1:${port}/dns-query?dns=${b64url(query(21, 'web.test'))}`);
  t.equal(r.status, 200, 'the server still answers');
});

t.test('a custom path', async (t) => {
  const s = await start({}, '/q');
  t.teardown(() => s.close());
  const p = s.ports[0]!;
  const r = await dig(p, '+https=/q', `+tls-ca=${cert.caFile}`, 'web.test', 'A');
  t.match(r.stdout, A_LINE, 'dig +https=/q');
  const old = await curl('--http2', `https://127.0.0.1:${p}/dns-query?dns=${b64url(query(22, 'web.test'))}`);
  t.equal(old.status, 404, '/dns-query is not served there');
  t.match(old.body.toString(), /\/q/, 'the 404 names the path');
});

t.test('several binds with port 0; close() ends open sessions', async (t) => {
  requireIPv6Loopback();
  const s = await startDoh({
    binds: [
      { host: '127.0.0.1', port: 0 },
      { host: '::1', port: 0 },
    ],
    tls: cert.tls,
    handle: stub.handle,
    log,
    limits: DOH_LIMITS,
  });
  t.equal(s.ports.length, 2);
  const v6 = await run('curl', ['-sS', '-o', '/dev/null', '-w', '%{http_code}', '--cacert', cert.caFile, `https://[::1]:${s.ports[1]}/dns-query?dns=${b64url(query(23, 'web.test'))}`]);
  t.equal(v6.stdout, '200', 'curl over IPv6');
  const session = await h2connect(s.ports[0]!);
  session.on('error', () => {});
  const closed = new Promise((resolve) => session.once('close', resolve));
  const took = await closesWithin(s.close(), 1000);
  await closesWithin(closed, 1000);
  t.pass(`close() resolved in ${took} ms and closed the open session`);
  await s.close();
  t.pass('close() twice is fine');
});
