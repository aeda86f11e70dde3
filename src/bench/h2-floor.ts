/**
 * The floor under lexa's DoH: a bare node:http2 server on the stream API that reads each POST body and answers a
 * fixed DNS-sized body with DoH's 200 headers, and does nothing else (no DNS, no routing, no limits, no deadline).
 * `npm run bench` drives it with the same h2load as lexa's DoH, so the difference between the two rows is what
 * lexa adds to node:http2's own cost per request (docs/performance.md, "DoH").
 *
 *   node dist/bench/h2-floor.js [--port 0]     prints "ready pid=… port=…", stops on SIGTERM or SIGINT
 */
import { Buffer } from 'node:buffer';
import http2 from 'node:http2';
import { parseArgs } from 'node:util';
import { generateSelfSigned } from '../tls/index.js';

/** The size of an A reply to the bench's query (header, question, one A record). */
const REPLY_BYTES = 60;

async function main(): Promise<void> {
  const { values } = parseArgs({ options: { port: { type: 'string', default: '0' } } });
  const port = Number(values.port);
  if (!Number.isInteger(port) || port < 0 || port > 65535) throw new Error('--port: 0…65535');
  const tls = await generateSelfSigned('localhost', [{ host: '127.0.0.1', port }]);
  const body = Buffer.alloc(REPLY_BYTES);
  const headers = { 'content-type': 'application/dns-message', 'cache-control': 'max-age=0', 'content-length': REPLY_BYTES };
  const server = http2.createSecureServer({ cert: tls.cert, key: tls.key });
  server.on('stream', (stream) => {
    stream.on('error', () => undefined);
    stream.on('data', () => undefined);
    stream.on('end', () => {
      if (stream.destroyed || stream.closed) return;
      stream.respond(headers);
      // As lexa does (h2-stream.ts, AFTER_WRITE): the floor is node:http2 at its best.
      stream.write(body, (err) => err ?? stream.end());
    });
  });
  await new Promise<void>((resolve) => server.listen(port, '127.0.0.1', resolve));
  const stop = () => server.close(() => process.exit(0));
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
  const address = server.address();
  console.log(`ready pid=${process.pid} port=${typeof address === 'object' && address !== null ? address.port : port}`);
}

main().catch((err: unknown) => {
  console.error(`h2-floor: ${err instanceof Error ? err.message : String(err)}`);
  process.exit(1);
});
