import http from 'node:http';
import https from 'node:https';
import net from 'node:net';
import t, { type Test } from 'tap';
import { probe, type CheckTarget } from '../../src/streams/index.js';
import { generateSelfSigned } from '../../src/tls/index.js';

// The probes against real sockets on loopback: what passes, what fails and with which output, and targets that
// misbehave (endless bodies, oversized headers, silence) cost a bounded amount and never throw.
const at = (port: number, url?: string): CheckTarget => ({ address: '127.0.0.1', port, target: url ?? `127.0.0.1:${port}` });
const run = (kind: 'tcp' | 'http' | 'https', target: CheckTarget, ms = 2_000) => probe(kind, target, AbortSignal.timeout(ms));

async function listening<T extends net.Server>(t: Test, server: T): Promise<number> {
  // A probe hangs up early on purpose: the server side's resets are expected.
  server.on('connection', (s: net.Socket) => s.on('error', () => undefined));
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.teardown(() => {
    (server as unknown as http.Server).closeAllConnections?.();
    server.close();
  });
  return (server.address() as net.AddressInfo).port;
}

/** A port nothing listens on: bound, then closed. */
async function closedPort(): Promise<number> {
  const s = net.createServer();
  await new Promise<void>((resolve) => s.listen(0, '127.0.0.1', resolve));
  const port = (s.address() as net.AddressInfo).port;
  await new Promise((resolve) => s.close(resolve));
  return port;
}

t.test('tcp: a listener passes; a closed port fails with its code', async (t) => {
  const port = await listening(t, net.createServer((s) => s.destroy()));
  t.same(await run('tcp', at(port)), { ok: true, output: `TCP connect 127.0.0.1:${port}: success` });
  const closed = await closedPort();
  t.same(await run('tcp', at(closed)), { ok: false, output: `TCP connect 127.0.0.1:${closed}: ECONNREFUSED`, code: 'ECONNREFUSED' });
});

t.test('http: 2xx and 3xx pass (redirects not followed), anything else fails; the path and user agent are sent', async (t) => {
  const seen: string[] = [];
  const port = await listening(
    t,
    http.createServer((req, res) => {
      seen.push(`${req.url} ${req.headers['user-agent']}`);
      const status = Number(req.url!.slice(1, 4));
      res.writeHead(status, status === 301 ? { location: 'http://192.0.2.9/' } : {}).end();
    }),
  );
  const url = (path: string) => at(port, `http://127.0.0.1:${port}${path}`);
  t.same(await run('http', url('/200')), { ok: true, output: `HTTP GET http://127.0.0.1:${port}/200: 200` });
  t.same(await run('http', url('/301')), { ok: true, output: `HTTP GET http://127.0.0.1:${port}/301: 301` });
  t.same(await run('http', url('/404')), { ok: false, output: `HTTP GET http://127.0.0.1:${port}/404: 404` });
  t.same(await run('http', url('/503?x=1')), { ok: false, output: `HTTP GET http://127.0.0.1:${port}/503?x=1: 503` });
  t.same(seen, ['/200 lexa-check', '/301 lexa-check', '/404 lexa-check', '/503?x=1 lexa-check'], 'one request each, the redirect not followed');
});

t.test('https: a self-signed certificate is not verified (tls_skip_verify)', async (t) => {
  const material = await generateSelfSigned('lexa-test', []);
  const port = await listening(t, https.createServer({ cert: material.cert, key: material.key }, (_req, res) => res.end('ok')));
  t.same(await run('https', at(port, `https://127.0.0.1:${port}/`)), { ok: true, output: `HTTP GET https://127.0.0.1:${port}/: 200` });
});

t.test('hostile targets: an endless body is not read, an oversized header fails, silence ends at the abort', async (t) => {
  let written = 0;
  const endless = await listening(
    t,
    http.createServer((_req, res) => {
      res.writeHead(200);
      const chunk = Buffer.alloc(64 * 1024, 120);
      const pump = () => {
        for (let more = true; more && !res.destroyed; written += chunk.length) more = res.write(chunk);
        if (!res.destroyed) res.once('drain', pump);
      };
      pump();
    }),
  );
  t.same(await run('http', at(endless, `http://127.0.0.1:${endless}/`)), { ok: true, output: `HTTP GET http://127.0.0.1:${endless}/: 200` });
  t.ok(written < 64 * 1024 * 1024, `the body was dropped, not read (${written} bytes written before it noticed)`);

  const huge = await listening(t, net.createServer((s) => s.end(`HTTP/1.1 200 OK\r\nx-big: ${'a'.repeat(100_000)}\r\n\r\n`)));
  const r = await run('http', at(huge, `http://127.0.0.1:${huge}/`));
  t.equal(r.ok, false, 'a header past the parser limit fails');
  t.ok(r.output.length < 200, `the output stays one short line: ${r.output}`);

  const silent = await listening(t, net.createServer(() => undefined));
  t.match(await run('http', at(silent, `http://127.0.0.1:${silent}/`), 200), { ok: false, output: /aborted/ }, 'a silent target settles once aborted');
});
