/**
 * Wake-up benchmark: W readers wait on lexa's REST API (blocking queries `GET /containers/?index=N&wait=60s`, or
 * server-sent event streams `GET /events`), then ONE change of the snapshot wakes them all. Measured: lexa's CPU
 * time (process.cpuUsage, this process only) and the wall time from the change until every reader has its answer
 * (blocking: every reply written; SSE: the client reports every stream got the new event).
 *
 * The REST app is lexa's own (servers/rest/app.ts) on a plain-HTTP loopback server, fed a SIMULATED snapshot of
 * 100 running containers (src/bench/synthetic.ts): TLS and LXD are not what this measures. The W connections come
 * from a child process (its CPU is not counted), pinned elsewhere by scripts/bench.sh. Needs 2 × W descriptors.
 *
 *   node --expose-gc dist/bench/wakeup.js [--watchers 10000] [--instances 100]
 */
import { spawn, type ChildProcess } from 'node:child_process';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { parseArgs } from 'node:util';
import { Subject } from 'rxjs';
import { restApp } from '../servers/rest/app.js';
import { Snapshot, type Instance } from '../streams/index.js';
import { recordRow } from './rows.js';
import { runningContainer } from './synthetic.js';

/** Connections the client opens per wave, a wave every 50 ms: within the listen backlog while lexa accepts. */
const CONNECT_WAVE = 250;
/** The listen backlog asked for (the kernel caps it at net.core.somaxconn). */
const BACKLOG = 4096;
/** A wake-up (or the set-up) that takes longer than this fails the run rather than hanging it. */
const GIVE_UP_MS = 120_000;

/**
 * The client, run as `node -e`: opens `count` connections to port, sends `path` on each, waits until each has
 * `ready` bytes (the waiting state: for SSE the first event, for blocking nothing), prints "ready", then waits for
 * `woken` on every connection and prints "woken <ms since the first byte of the change>" ... measured by the
 * server side; the client only says when it has them all.
 */
const CLIENT = `
const net = require('node:net');
const [port, count, path, readyMark, wokenMark, wave] = process.argv.slice(1);
const n = Number(count);
let ready = 0, woken = 0;
const socks = [];
function open(i) {
  const s = net.connect(Number(port), '127.0.0.1');
  let buf = '', isReady = readyMark === '', isWoken = false;
  s.setEncoding('latin1');
  s.on('connect', () => s.write('GET ' + path + ' HTTP/1.1\\r\\nHost: x\\r\\n\\r\\n'));
  s.on('data', (d) => {
    buf += d;
    if (!isReady && buf.includes(readyMark)) { isReady = true; buf = ''; if (++ready === n) console.log('ready'); }
    else if (isReady && !isWoken && buf.includes(wokenMark)) { isWoken = true; if (++woken === n) console.log('woken'); }
    if (buf.length > 1e6) buf = buf.slice(-1000);
  });
  s.on('error', (e) => { console.log('error ' + e.message); process.exit(1); });
  socks.push(s);
}
let opened = 0;
(function next() {
  const end = Math.min(n, opened + Number(wave));
  for (; opened < end; opened++) open(opened);
  if (opened < n) setTimeout(next, 50);
  else if (readyMark === '') console.log('sent');
})();
`;

interface Wake {
  readonly cpuMs: number;
  readonly wallMs: number;
}

function instances(n: number, generation: number): Instance[] {
  return Array.from({ length: n }, (_, i) => runningContainer(`sim-${String(i + 1).padStart(5, '0')}`, `10.${64 + generation}.${i >> 8}.${(i & 255) + 1}`, `fd42::${generation}:${i + 1}`, []));
}

async function measure(kind: 'blocking' | 'sse', watchers: number, n: number): Promise<Wake> {
  let current = Snapshot.empty().withList(instances(n, 0), [], false, Date.now());
  const updates = new Subject<void>();
  const app = restApp({ suffix: 'lexa', snapshot: () => current, updates });
  let arrived = 0;
  let finished = 0;
  let allFinished: () => void = () => undefined;
  const server = http.createServer((req, res) => {
    arrived++;
    res.on('finish', () => {
      if (++finished === watchers) allFinished();
    });
    app(req, res);
  });
  server.keepAliveTimeout = GIVE_UP_MS;
  server.headersTimeout = GIVE_UP_MS;
  server.requestTimeout = 0;
  await new Promise<void>((resolve) => server.listen({ port: 0, host: '127.0.0.1', backlog: BACKLOG }, resolve));
  const port = (server.address() as AddressInfo).port;
  const index = Number((await get(port, '/containers/')).headers['x-lexa-index']);
  const [path, readyMark, wokenMark] =
    kind === 'blocking' ? [`/containers/?index=${index}&wait=60s`, '', '\r\n\r\n'] : ['/events', 'event: snapshot', 'event: snapshot'];
  const cpu = process.env['BENCH_CLIENT_CPU'];
  const args = ['-e', CLIENT, String(port), String(watchers), path, readyMark, wokenMark, String(CONNECT_WAVE)];
  const client = cpu ? spawn('taskset', ['-c', cpu, process.execPath, ...args], { stdio: ['ignore', 'pipe', 'inherit'] }) : spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'inherit'] });
  try {
    const lines = lineReader(client);
    await lines(kind === 'blocking' ? 'sent' : 'ready');
    // Blocking: every request must be in lexa (waiting) before the change, not merely sent.
    await until(() => arrived >= watchers, 'every request to arrive');
    await new Promise((r) => setTimeout(r, 200));
    globalThis.gc?.();
    const done = kind === 'blocking' ? new Promise<void>((resolve) => (allFinished = resolve)) : lines('woken');
    const cpu0 = process.cpuUsage();
    const t0 = performance.now();
    current = current.withList(instances(n, 1), [], false, Date.now()); // a later version: what a fold publishes
    updates.next();
    await done;
    const wallMs = performance.now() - t0;
    const used = process.cpuUsage(cpu0);
    if (kind === 'sse') await lines('woken'); // already seen; keeps the reader's promise settled
    return { cpuMs: (used.user + used.system) / 1000, wallMs };
  } finally {
    client.kill('SIGKILL');
    server.closeAllConnections();
    await new Promise((r) => server.close(r));
  }
}

function get(port: number, path: string): Promise<http.IncomingMessage> {
  return new Promise((resolve, reject) => {
    http.get({ host: '127.0.0.1', port, path }, (res) => {
      res.resume();
      resolve(res);
    }).on('error', reject);
  });
}

/** Waits for a given line on the child's stdout (each line seen once, in order of asking). */
function lineReader(child: ChildProcess): (line: string) => Promise<void> {
  let out = '';
  const seen = new Set<string>();
  const waiting = new Map<string, () => void>();
  child.stdout!.on('data', (d: Buffer) => {
    out += d.toString();
    let cut;
    while ((cut = out.indexOf('\n')) >= 0) {
      const line = out.slice(0, cut);
      out = out.slice(cut + 1);
      if (line.startsWith('error')) console.error(`wakeup client: ${line}`);
      seen.add(line);
      waiting.get(line)?.();
    }
  });
  return (line) =>
    seen.has(line)
      ? Promise.resolve()
      : new Promise<void>((resolve, reject) => {
          const timer = setTimeout(() => reject(new Error(`wakeup: no "${line}" from the client within ${GIVE_UP_MS} ms`)), GIVE_UP_MS);
          waiting.set(line, () => {
            clearTimeout(timer);
            resolve();
          });
          child.once('exit', () => reject(new Error(`wakeup: the client exited before "${line}"`)));
        });
}

async function until(test: () => boolean, what: string): Promise<void> {
  const deadline = performance.now() + GIVE_UP_MS;
  while (!test()) {
    if (performance.now() > deadline) throw new Error(`wakeup: timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

async function main(): Promise<void> {
  const { values } = parseArgs({ options: { watchers: { type: 'string', default: '10000' }, instances: { type: 'string', default: '100' } } });
  const watchers = Number(values.watchers);
  const n = Number(values.instances);
  if (!Number.isInteger(watchers) || watchers < 1 || watchers > 50_000) throw new Error('--watchers: 1…50000');
  if (!Number.isInteger(n) || n < 1 || n > 10_000) throw new Error('--instances: 1…10000');
  console.log(`${watchers} readers wait on lexa's REST app (plain HTTP, loopback; a SIMULATED snapshot of ${n} containers); one change wakes them:`);
  console.log('');
  console.log('readers                         lexa CPU ms   µs per reader   wall ms');
  for (const kind of ['blocking', 'sse'] as const) {
    const w = await measure(kind, watchers, n);
    const label = kind === 'blocking' ? 'blocking queries (?index=&wait=)' : 'SSE streams (/events)';
    console.log(`${label.padEnd(32)}${w.cpuMs.toFixed(1).padStart(11)}${((w.cpuMs * 1000) / watchers).toFixed(1).padStart(16)}${w.wallMs.toFixed(0).padStart(10)}`);
    recordRow(`wake-${kind}`, `${watchers.toLocaleString('en')} ${kind === 'blocking' ? 'blocking queries' : 'SSE streams'} woken by one change (SIMULATED snapshot): CPU, wall`, `${w.cpuMs.toFixed(0)} ms CPU (${((w.cpuMs * 1000) / watchers).toFixed(1)} µs each), ${w.wallMs.toFixed(0)} ms wall`, '', undefined);
  }
}

void main().then(
  () => process.exit(0),
  (err: unknown) => {
    console.error(`wakeup: ${err instanceof Error ? err.message : String(err)}`);
    process.exit(1);
  },
);
