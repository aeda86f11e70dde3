import http from 'node:http';
import net from 'node:net';
import { restApp } from '../../../src/servers/rest/index.js';
import { SnapshotStore } from '../../../src/streams/index.js';
import { clustered } from '../../helpers/dns-fixture.js';
import { check, Finding, type Target } from '../harness.js';
import { mutateText } from '../mutate.js';
import type { Rng } from '../random.js';

/** A request's reply must start within this; a blocking query (`?index=`) may hold it (that is its job). */
const REPLY_DEADLINE_MS = 5_000;
/** A reply larger than this is read no further (the biggest document here is a few KB). */
const MAX_READ_BYTES = 1 << 20;

const PATHS = [
  '/containers/', '/containers', '/containers/web-1', '/containers/web-1.lexa', '/containers/nope', '/services/https', '/services/mysql',
  '/traefik', '/prometheus', '/prometheus?service=https', '/prometheus?health=any', '/healthz', '/readyz', '/metrics', '/events',
  '/v1/agent/self', '/v1/status/leader', '/v1/catalog/datacenters', '/v1/catalog/services', '/v1/catalog/nodes', '/v1/catalog/service/https',
  '/v1/health/service/https', '/v1/catalog/node/node-1', '/v1/kv/x', '/v1/health/service/https?passing', '/v1/catalog/service/https?tag=app',
];
const FILTERS = [
  'Service == "https"', '"app" in ServiceTags', 'ServiceTags contains app and not (Node == "node-2")', 'Node.Meta.project is not empty',
  'Service.Tags is empty or Checks.Status == passing', '(((((((((((a == b)))))))))))', 'not not not not x == y', 'ServiceMeta.k != `raw`',
  'Node matches "n.*"', '"project" in Node.Meta',
];
const QUERIES = ['index=1', 'index=0', 'index=18446744073709551616', 'index=-1', 'wait=10ms', 'wait=1h', 'wait=abc', 'dc=lexa', 'dc=nope', 'tag=app', 'passing', 'passing=false', 'stale', 'pretty', 'near=_agent'];
const METHODS = ['GET', 'GET', 'GET', 'GET', 'HEAD', 'POST', 'PUT', 'DELETE', 'OPTIONS', 'PATCH', 'TRACE', 'CONNECT', 'G T', 'get', 'PROPFIND'];
const HEADERS = [
  'Accept: application/json', 'X-Consul-Token: x', 'Content-Type: application/json', 'Accept-Encoding: gzip, br', 'Range: bytes=0-1',
  'If-None-Match: "x"', 'Expect: 100-continue', `X-Long: ${'a'.repeat(9000)}`, 'Transfer-Encoding: chunked', 'Content-Length: 5', 'Content-Length: -1',
  'Host:', 'Connection: keep-alive', 'Cookie: a=b', 'Origin: http://evil',
];

export function requestText(rng: Rng): { raw: Buffer; target: string; blocking: boolean; events: boolean; head: boolean } {
  let target = rng.pick(PATHS);
  const params: string[] = [];
  for (let n = rng.int(3); n > 0; n--) params.push(rng.pick(QUERIES));
  if (target.startsWith('/v1/') && rng.chance(0.4)) params.push(`filter=${encodeURIComponent(rng.pick(FILTERS))}`);
  if (params.length > 0) target += (target.includes('?') ? '&' : '?') + params.join('&');
  if (rng.chance(0.4)) target = mutateText(rng, target, PATHS);
  const method = rng.pick(METHODS);
  const headers = Array.from({ length: rng.int(3) }, () => rng.pick(HEADERS));
  const body = rng.chance(0.2) ? rng.bytes(rng.int(100)).toString('latin1') : '';
  if (body !== '' && rng.chance(0.8)) headers.push(`Content-Length: ${body.length}`);
  const text = `${method} ${target.replace(/[\r\n]/g, '')} HTTP/1.1\r\nHost: 127.0.0.1\r\n${headers.map((h) => `${h}\r\n`).join('')}Connection: close\r\n\r\n${body}`;
  const raw = Buffer.from(rng.chance(0.05) ? mutateText(rng, text, [text]) : text, 'latin1');
  return { raw, target, blocking: /index=/.test(target), events: target.startsWith('/events'), head: method === 'HEAD' };
}

/**
 * Sends one raw request on the socket `connect` opens and reads the reply head and (up to a bound) body; resolves
 * when the server closes.
 */
export function exchange(connect: () => net.Socket, raw: Buffer, allowHold: boolean): Promise<{ status: number; headers: string; body: Buffer } | 'held' | 'closed'> {
  return new Promise((resolve, reject) => {
    const s = connect();
    const parts: Buffer[] = [];
    let size = 0;
    const done = (v: Awaited<ReturnType<typeof exchange>>) => {
      clearTimeout(timer);
      s.destroy();
      resolve(v);
    };
    const timer = setTimeout(() => {
      if (allowHold) return done('held');
      s.destroy();
      reject(new Finding(`hang: no complete reply within ${REPLY_DEADLINE_MS} ms (${size} bytes so far)`));
    }, REPLY_DEADLINE_MS);
    s.on('error', () => undefined);
    s.on('data', (d) => {
      parts.push(d);
      size += d.length;
      if (size > MAX_READ_BYTES) s.destroy();
    });
    s.on('close', () => {
      let all = Buffer.concat(parts);
      // Interim replies (100 Continue, for `Expect: 100-continue`) come before the reply.
      while (/^HTTP\/1\.1 1\d\d /.test(all.subarray(0, 13).toString('latin1')) && all.includes('\r\n\r\n')) all = all.subarray(all.indexOf('\r\n\r\n') + 4);
      const cut = all.indexOf('\r\n\r\n');
      if (all.length === 0) return done('closed');
      const head = all.subarray(0, cut < 0 ? all.length : cut).toString('latin1');
      const m = /^HTTP\/1\.1 (\d{3}) /.exec(head);
      if (!m) {
        clearTimeout(timer);
        return reject(new Finding(`a reply that is not HTTP/1.1: ${JSON.stringify(head.slice(0, 80))}`));
      }
      // A body the client sent without a length is read by the server as a second request: keep the first reply.
      const length = /\r\ncontent-length: (\d+)/i.exec(head);
      const body = cut < 0 ? Buffer.alloc(0) : all.subarray(cut + 4);
      done({ status: Number(m[1]), headers: head, body: length ? body.subarray(0, Number(length[1])) : body });
    });
    s.end(raw);
  });
}

/** The REST oracle (see restTarget). */
export function checkRestReply(req: ReturnType<typeof requestText>, reply: Awaited<ReturnType<typeof exchange>>): void {
  if (reply === 'held' || reply === 'closed') return;
  // The one 5xx by design: Consul answers an unknown `?dc=` with 500 "No path to datacenter", and so does /v1.
  const noSuchDc = reply.status === 500 && /[?&]dc=/.test(req.target) && (req.head || reply.body.toString('utf8') === 'No path to datacenter');
  check((reply.status >= 200 && reply.status < 500) || noSuchDc, `status ${reply.status}: ${reply.body.toString('utf8').slice(0, 200)}`);
  if (/content-type: application\/json/i.test(reply.headers) && !req.head && !/transfer-encoding: chunked/i.test(reply.headers)) {
    try {
      JSON.parse(reply.body.toString('utf8'));
    } catch {
      throw new Finding(`a JSON reply that does not parse: ${reply.body.toString('utf8').slice(0, 120)}`);
    }
  }
}

/**
 * The REST API (servers/rest: lexa's documents, /traefik, /prometheus, /events, the Consul /v1 API with its filter
 * grammar and blocking queries) as an Express app over the hand-built cluster snapshot, on a real loopback HTTP
 * server: raw HTTP/1.1 requests with mutated methods, paths, query strings, headers and bodies. Oracle: an HTTP
 * reply with a 2xx, 3xx or 4xx status (never a 5xx: the snapshot is synced; but Consul's own 500 for an unknown
 * `?dc=`), a JSON body wherever the reply says
 * JSON, and no reply slower than REPLY_DEADLINE_MS unless it is a blocking query or the event stream (both hold
 * by design; they are cut there).
 */
export const restTarget: Target = {
  name: 'rest',
  weight: 3,
  covers: 'src/servers/rest (app, documents, traefik, prometheus-sd, events, blocking, consul/api, filter, render) over a loopback HTTP server',
  async open(ctx) {
    const store = new SnapshotStore(clustered());
    const abort = new AbortController();
    const app = restApp({ suffix: 'lexa', snapshot: () => store.current, log: ctx.log, updates: store.snapshot$, shutdown: abort.signal, nodeName: 'fz', watching: () => ({ target: 'fake', member: 'node-1' }) });
    const server = http.createServer(app);
    server.headersTimeout = REPLY_DEADLINE_MS;
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const port = (server.address() as net.AddressInfo).port;
    const connect = () => net.connect(port, '127.0.0.1');
    return {
      async run(rng) {
        const req = requestText(rng);
        ctx.note(req.raw.toString('latin1'));
        const reply = await exchange(connect, req.raw, req.blocking || req.events);
        checkRestReply(req, reply);
      },
      async alive() {
        const r = await exchange(connect, Buffer.from('GET /containers/web-1 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n'), false);
        check(typeof r === 'object' && r.status === 200, 'GET /containers/web-1 is not 200 after the cases');
      },
      async close() {
        abort.abort();
        server.closeAllConnections();
        await new Promise<void>((r) => server.close(() => r()));
      },
    };
  },
};
