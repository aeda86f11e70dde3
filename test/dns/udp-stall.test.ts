import { readFileSync } from 'node:fs';
import { Worker } from 'node:worker_threads';
import t from 'tap';
import { memoryLogger } from '../../src/log/index.js';
import { createHandler } from '../../src/dns/index.js';
import { startUdp } from '../../src/servers/dns/index.js';
import { clustered, OPTS } from '../helpers/dns-fixture.js';

// A DNS server on a busy host is taken off the CPU for tens or hundreds of milliseconds (up to ~165 ms measured
// on the shared 2-core test machine under a 20k QPS churn run); every query arriving meanwhile must wait in the
// socket's receive queue, or it is lost. Linux's default queue (208 KiB) holds 256 small queries: 13 ms at 20k
// QPS. Here lexa's thread is blocked (Atomics.wait: off the CPU, as a descheduled process is) while a worker thread
// sends QUERIES queries from its own sockets; once every one is sent the thread resumes, and every query must be
// answered. The queries are spread over several client sockets so the replies (sent back in a burst) fit the
// clients' default queues: what is measured is lexa's queue.

const log = memoryLogger();
const handle = createHandler({ snapshot: clustered, resolver: OPTS, log });
/** Far above the 256 a default queue holds, well below the ~10,000 that 4 MiB (8 MiB granted) holds. */
const QUERIES = 3_000;
/** Client sockets: QUERIES / CLIENTS replies each, below the 256 a client's default queue holds. */
const CLIENTS = 20;
/** The server's SO_RCVBUF (the config default, server.dns.udp_receive_buffer). */
const RECEIVE_BUFFER = 4 * 1024 * 1024;
/** The longest the worker may take to send every query, and then to collect every reply. */
const WORKER_TIMEOUT_MS = 20_000;
/** Replies are counted this often; none more for QUIET_MS means the rest were lost. */
const POLL_MS = 50;
const QUIET_MS = 1_000;

// The worker: binds CLIENTS sockets, sends QUERIES `lexa SOA` queries round-robin, sets flag[0] = 1 once all are
// handed to the kernel (and wakes the blocked main thread), then counts replies, telling the count when asked.
const WORKER = `
const { workerData, parentPort } = require('node:worker_threads');
const dgram = require('node:dgram');
const { port, queries, clients, flag } = workerData;
const query = (id) => {
  const b = Buffer.from([0, 0, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0, 4, 108, 101, 120, 97, 0, 0, 6, 0, 1]);
  b.writeUInt16BE(id & 0xffff, 0);
  return b;
};
let answered = 0;
const sockets = [];
let bound = 0;
for (let c = 0; c < clients; c++) {
  const s = dgram.createSocket('udp4');
  s.on('message', () => answered++);
  s.bind(0, '127.0.0.1', () => { if (++bound === clients) send(); });
  sockets.push(s);
}
let sent = 0;
function send() {
  for (let i = 0; i < queries; i++) sockets[i % clients].send(query(i), port, '127.0.0.1', () => {
    if (++sent === queries) { Atomics.store(flag, 0, 1); Atomics.notify(flag, 0); }
  });
}
parentPort.on('message', () => parentPort.postMessage({ answered }));
`;

/** Blocks this thread until the worker has sent every query; resolves with how many were answered after. */
async function stalled(port: number): Promise<{ sent: boolean; answered: number }> {
  const flag = new Int32Array(new SharedArrayBuffer(4));
  const worker = new Worker(WORKER, { eval: true, workerData: { port, queries: QUERIES, clients: CLIENTS, flag } });
  // The server's thread is off the CPU from here until every query sits in its socket's queue (or is dropped).
  const sent = Atomics.wait(flag, 0, 0, WORKER_TIMEOUT_MS) !== 'timed-out';
  // Replies come in a burst once the thread resumes; done when all came, or none more for QUIET_MS.
  let answered = -1;
  const deadline = Date.now() + WORKER_TIMEOUT_MS;
  for (let last = -1, quietSince = Date.now(); answered < QUERIES && Date.now() < deadline; ) {
    await new Promise((r) => setTimeout(r, POLL_MS));
    answered = await new Promise<number>((resolve) => {
      worker.once('message', (m: { answered: number }) => resolve(m.answered));
      worker.postMessage('count');
    });
    if (answered !== last) [last, quietSince] = [answered, Date.now()];
    else if (Date.now() - quietSince > QUIET_MS) break;
  }
  await worker.terminate();
  return { sent, answered };
}

/** The queue the kernel granted, as lexa logged it for `port`. */
const granted = (port: number) => log.lines.filter((l) => l['msg'] === 'dns/udp: listening' && l['port'] === port).at(-1)?.['receiveBuffer'];

t.test('batched UDP: every query that arrives while lexa is off the CPU waits in the queue and is answered', async (t) => {
  const server = await startUdp({ binds: [{ host: '127.0.0.1', port: 0 }], handle, log, limits: { maxReply: 4096, receiveBuffer: RECEIVE_BUFFER } });
  t.teardown(() => server.close());
  const port = server.ports[0]!;
  t.equal(granted(port), 2 * RECEIVE_BUFFER, 'SO_RCVBUF as configured (Linux reports twice the size set), logged');
  const r = await stalled(port);
  t.ok(r.sent, 'the worker sent every query while lexa was blocked');
  t.equal(r.answered, QUERIES, `all ${QUERIES} queries answered after the stall`);
});

t.test("dgram (the fallback): SO_RCVBUF as configured, up to the kernel's cap, which it logs", async (t) => {
  const server = await startUdp({ binds: [{ host: '127.0.0.1', port: 0 }], handle, log, limits: { maxReply: 4096, batch: false, receiveBuffer: RECEIVE_BUFFER } });
  t.teardown(() => server.close());
  const port = server.ports[0]!;
  // dgram has no SO_RCVBUFFORCE: the kernel caps the size at net.core.rmem_max.
  const cap = Number(readFileSync('/proc/sys/net/core/rmem_max', 'utf8'));
  t.equal(granted(port), 2 * Math.min(RECEIVE_BUFFER, cap), 'granted size logged');
  const capped = log.lines.some((l) => String(l['msg']).startsWith('dns/udp: receive buffer capped') && l['host'] === '127.0.0.1');
  t.equal(capped, cap * 2 < RECEIVE_BUFFER, 'a warning exactly when the kernel granted less than asked');
});

t.test('receive buffer 0 keeps the kernel default: the same stall then loses queries (what the setting is for)', async (t) => {
  const server = await startUdp({ binds: [{ host: '127.0.0.1', port: 0 }], handle, log, limits: { maxReply: 4096, receiveBuffer: 0 } });
  t.teardown(() => server.close());
  const r = await stalled(server.ports[0]!);
  t.ok(r.sent, 'the worker sent every query while lexa was blocked');
  t.ok(r.answered < QUERIES, `the default queue lost some: ${r.answered} of ${QUERIES} answered`);
});
