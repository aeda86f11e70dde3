/**
 * A DoH load generator (HTTP/2 POST, RFC 8484): Debian's dnsperf 2.10 completes only a query or two over DoH
 * against any server here (lexa and dnsdist alike), so `npm run bench` drives DoH with this instead, the same way
 * for every server: `--sessions` HTTP/2 connections, each keeping `--streams` queries in flight, for `--seconds`.
 * Certificates are not verified (the bench's own). Prints one JSON line: {"completed":…,"qps":…,"errors":…}.
 *
 *   node dist/bench/doh-load.js --url https://127.0.0.1:PORT/dns-query --queries FILE [--seconds 10]
 */
import http2 from 'node:http2';
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import dnsPacket from 'dns-packet';

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      url: { type: 'string' },
      queries: { type: 'string' },
      seconds: { type: 'string', default: '10' },
      sessions: { type: 'string', default: '10' },
      streams: { type: 'string', default: '10' },
    },
  });
  if (!values.url || !values.queries) throw new Error('--url and --queries are required');
  const url = new URL(values.url);
  const bodies = readFileSync(values.queries, 'utf8')
    .split('\n')
    .map((l) => l.trim().split(/\s+/))
    .filter((f) => f.length >= 2 && f[0] !== '')
    .map(([name, type]) => dnsPacket.encode({ type: 'query', id: 0, flags: dnsPacket.RECURSION_DESIRED, questions: [{ name: name!, type: type as dnsPacket.RecordType }] }));
  const until = performance.now() + Number(values.seconds) * 1000;
  let completed = 0;
  let errors = 0;
  let n = 0;
  const started = performance.now();
  const session = (): Promise<void> =>
    new Promise((done) => {
      const s = http2.connect(url.origin, { rejectUnauthorized: false });
      s.on('error', () => undefined);
      let inflight = 0;
      const one = (): void => {
        if (performance.now() > until) {
          if (inflight === 0) {
            s.close();
            done();
          }
          return;
        }
        inflight++;
        const body = bodies[n++ % bodies.length]!;
        const req = s.request({ ':method': 'POST', ':path': url.pathname, 'content-type': 'application/dns-message', 'content-length': body.length });
        req.on('response', (h) => {
          if (h[':status'] !== 200) errors++;
        });
        req.on('data', () => undefined);
        req.on('end', () => {
          completed++;
          inflight--;
          one();
        });
        req.on('error', () => {
          errors++;
          inflight--;
          one();
        });
        req.end(body);
      };
      for (let i = 0; i < Number(values.streams); i++) one();
    });
  await Promise.all(Array.from({ length: Number(values.sessions) }, session));
  const secs = (performance.now() - started) / 1000;
  console.log(JSON.stringify({ completed, qps: Math.round(completed / secs), errors }));
}

void main().catch((err: unknown) => {
  console.error(`doh-load: ${err instanceof Error ? err.message : String(err)}`);
  process.exit(1);
});
