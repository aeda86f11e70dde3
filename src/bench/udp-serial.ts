/**
 * Plain DNS over UDP with one query in flight: send, wait for the reply, send the next. `npm run bench` measures
 * the server's CPU per query under this load beside DoQ's "1 in flight" row, the same shape (the Go DoQ client asks
 * one query after another): with one query in flight every query pays a wake-up of the server and of the client,
 * which dnsperf's batched load (10 clients × 100 in flight) shares among many queries. dnsperf -q 1 stalls here
 * (a few hundred queries in seconds), so this client does it.
 *
 * Bounded: stops after --count replies or --seconds, whichever comes first; a reply not back within REPLY_TIMEOUT_MS
 * counts as lost and the next query goes out. Prints one JSON line: {"completed":…,"lost":…}.
 *
 *   node dist/bench/udp-serial.js --port PORT --name bench-1.lexa [--count 20000] [--seconds 20]
 */
import { createSocket } from 'node:dgram';
import { parseArgs } from 'node:util';
import dnsPacket from 'dns-packet';

/** Loopback answers in microseconds; a second means the reply is lost (the server dropped or refused it). */
const REPLY_TIMEOUT_MS = 1000;

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      port: { type: 'string' },
      name: { type: 'string' },
      count: { type: 'string', default: '20000' },
      seconds: { type: 'string', default: '20' },
    },
  });
  if (!values.port || !values.name) throw new Error('--port and --name are required');
  const port = Number(values.port);
  const count = Number(values.count);
  const until = performance.now() + Number(values.seconds) * 1000;
  const query = dnsPacket.encode({ type: 'query', id: 1, questions: [{ name: values.name, type: 'A' }] });
  const socket = createSocket('udp4');
  let completed = 0;
  let lost = 0;
  await new Promise<void>((done) => {
    let timer: NodeJS.Timeout | undefined;
    /** A query is out and its reply not yet in: a late reply to a query counted lost is ignored. */
    let waiting = false;
    const next = () => {
      clearTimeout(timer);
      waiting = false;
      if (completed + lost >= count || performance.now() >= until) return done();
      timer = setTimeout(() => {
        lost++;
        next();
      }, REPLY_TIMEOUT_MS);
      waiting = true;
      socket.send(query, port, '127.0.0.1');
    };
    socket.on('message', () => {
      if (!waiting) return;
      completed++;
      next();
    });
    next();
  });
  socket.close();
  console.log(JSON.stringify({ completed, lost }));
}

main().catch((error: unknown) => {
  console.error(error);
  process.exit(1);
});
