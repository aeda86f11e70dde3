// The figures behind test/doq/flood.test.ts (docs/performance.md, DoQ under a flood): a DoQ listener in this
// process, the flooder of test/helpers/udp-flood.ts in a child, and the Go DoQ client (300 queries on one
// connection, -latency) at another address. For each case it prints the client's p50/p99/largest query time, what
// it answered, and this process's CPU time (user + system) per flood datagram the kernel took.
//
//   node --import ./test/loader/register.mjs test/doq/flood-measure.ts [rounds] [dgram]
//
// The Go client is the one scripts/doq-client.sh builds (it needs its -latency flag); the client's own work in
// this process is 300 queries against ~500,000 flood datagrams, under 1% of the CPU figure.

import { execFile, execFileSync } from 'node:child_process';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { memoryLogger } from '../../src/log/index.js';
import { DOQ_LIMITS, startDoq } from '../../src/servers/doq/index.js';
import { flood, type FloodKind } from '../helpers/udp-flood.js';
import { localhostCert } from '../helpers/test-cert.js';
import { stubHandler } from '../helpers/transport-stub.js';

const RATE = 100_000;
const SECONDS = 5;
/** Long enough that a client the flood slows down is measured rather than cut off. */
const CLIENT_TIMEOUT = '5s';

const root = resolve(fileURLToPath(import.meta.url), '../../..');
const client = execFileSync('sh', [join(root, 'scripts/doq-client.sh')], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] }).trim();
const { tls } = localhostCert('lexa-doq-flood-measure-');
const rounds = Number(process.argv[2] ?? 3);
const batch = process.argv[3] !== 'dgram';

function query(port: number): Promise<string> {
  return new Promise((done) =>
    execFile(client, ['-server', `127.0.0.1:${port}`, '-insecure', '-q', '-latency', '-name', 'web.test', '-timeout', CLIENT_TIMEOUT, '-count', '300'], (_e, out) =>
      done(
        out
          .split('\n')
          .filter((l) => l.startsWith(';; latency') || l.startsWith('queries='))
          .join(' ')
          .replace(';; latency ms ', ''),
      ),
    ),
  );
}

async function measure(kind: FloodKind | 'none'): Promise<string> {
  const listeners = await startDoq({ binds: [{ host: '127.0.0.1', port: 0 }], tls, handle: stubHandler().handle, log: memoryLogger(), limits: { ...DOQ_LIMITS, batch } });
  const port = listeners.ports[0]!;
  try {
    if (kind === 'none') return `none: ${await query(port)}`;
    const flooding = flood({ kind, port, rate: RATE, seconds: SECONDS });
    await flooding.started;
    const cpu = process.cpuUsage();
    const answered = await query(port);
    const { sent } = await flooding.done;
    const used = process.cpuUsage(cpu);
    return `${kind}: ${answered}; ${sent} sent, ${((used.user + used.system) / sent).toFixed(2)} µs CPU per flood datagram`;
  } finally {
    await listeners.close();
  }
}

console.log(`DoQ under a flood from 127.0.0.2 (${RATE}/s for ${SECONDS} s), the Go client at 127.0.0.1; ${batch ? 'batched socket' : 'dgram'}`);
for (let r = 1; r <= rounds; r++) for (const kind of ['none', 'junk', 'initial'] as const) console.log(`round ${r} ${await measure(kind)}`);
