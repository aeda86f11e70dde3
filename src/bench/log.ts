/**
 * Logger benchmark: lines per second that `createLogger` takes for a fixed time, written to a file (default
 * /dev/null), with the RSS at the end and the lines dropped (the destination's queue is bounded), so the logger
 * can be compared with the one it replaced by running this same file against each build.
 *
 *   node dist/bench/log.js [--seconds 10] [--out /dev/null]
 *
 * Each line is a typical lexa line: a child logger's component, two fields, and one hidden secret that does not
 * occur. The loop yields to the event loop every BATCH lines, so an asynchronous destination drains as it would in
 * the daemon.
 */
import { parseArgs } from 'node:util';
import { createLogger } from '../log/index.js';

/** Lines logged between two turns of the event loop: a burst of work the daemon could plausibly log at once. */
const BATCH = 1_000;

const { values } = parseArgs({ options: { seconds: { type: 'string', default: '10' }, out: { type: 'string', default: '/dev/null' } } });
const seconds = Number(values.seconds);
const logger = createLogger({ out: values.out, level: 'info' });
logger.hide(['a-secret-that-never-occurs-0123456789']);
const child = logger.child({ component: 'dns/udp' });

let lines = 0;
const end = Date.now() + seconds * 1000;
while (Date.now() < end) {
  for (let i = 0; i < BATCH; i++) child.info('query refused', { client: '10.99.0.17', name: `c${i}.lxd.` });
  lines += BATCH;
  await new Promise((resolve) => setImmediate(resolve));
}
const rssMiB = Math.round((process.memoryUsage().rss / 2 ** 20) * 10) / 10;
process.stdout.write(`${JSON.stringify({ seconds, out: values.out, lines, linesPerSecond: Math.round(lines / seconds), dropped: logger.dropped, writtenPerSecond: Math.round((lines - logger.dropped) / seconds), rssMiB })}\n`);
