/**
 * Cost of server-side checks: N checked services (1,000 by default) against SIMULATED targets, since a real LXD
 * cannot hold that many containers here. A child process listens on N loopback ports (one plain HTTP server each,
 * answering 200); this process holds a store of N running instances, each declaring one service on one of those
 * ports with `check = http:/` (or tcp), and runs the daemon's own Checker, probes, fold and snapshot on them.
 * Measured in this process only (the targets' CPU is the child's):
 *   - first interval: every check's first run (within its first second, at most 64 at once), each turning its
 *     service passing (N snapshots), then its second run at a random phase; and how long until all passed;
 *   - steady: checks passing, nothing published;
 *   - failing: the targets are killed, every run is refused and each service turns critical once;
 * for each: runs, CPU per run (process.cpuUsage, user + system), the most runs in flight and the turns skipped; and
 * RSS before the checker started and at the end.
 *
 *   node --expose-gc dist/bench/checks.js [--services 1000] [--interval 10] [--steady 10] [--failing 5] [--kind http|tcp]
 *                             [--targets-cpu N]   (the targets pinned to CPU N with taskset; pin this one apart)
 */
import { spawn } from 'node:child_process';
import http from 'node:http';
import { parseArgs } from 'node:util';
import { throttleTime } from 'rxjs';
import { Checker, SnapshotStore, type Instance } from '../streams/index.js';
import { NO_TRAEFIK_LABELS } from '../streams/model/traefik-labels.js';

/** How often the in-flight level is sampled for its maximum. */
const SAMPLE_MS = 5;
/** As the daemon: the checker re-reads the instances at most this often. */
const CHECK_SCAN_MS = 250;

interface Phase {
  name: string;
  runs: number;
  cpuMs: number;
  maxInFlight: number;
  skipped: number;
  snapshots: number;
}

async function main(): Promise<void> {
  if (process.argv[2] === '--targets') return targets(Number(process.argv[3]));
  const { values } = parseArgs({
    options: {
      services: { type: 'string', default: '1000' },
      interval: { type: 'string', default: '10' },
      steady: { type: 'string', default: '10' },
      failing: { type: 'string', default: '5' },
      kind: { type: 'string', default: 'http' },
      'targets-cpu': { type: 'string' },
    },
  });
  const n = Number(values.services);
  const intervalMs = Number(values.interval) * 1000;
  const kind = values.kind === 'tcp' ? 'tcp' : 'http';
  const self = [new URL(import.meta.url).pathname, '--targets', String(n)];
  const cpu = values['targets-cpu'];
  const child = cpu === undefined
    ? spawn(process.execPath, self, { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] })
    : spawn('taskset', ['-c', cpu, process.execPath, ...self], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  const ports = await new Promise<number[]>((resolve) => child.once('message', (m) => resolve(m as number[])));

  const store = new SnapshotStore();
  const instances = ports.map((port, i): Instance => ({
    key: `default/t${i}`,
    name: `t${i}`,
    project: 'default',
    type: 'container',
    status: 'Running',
    running: true,
    location: 'none',
    interfaces: [{ name: 'eth0', ipv4: ['127.0.0.1'], ipv6: [], trustedIpv4: ['127.0.0.1'], trustedIpv6: [] }],
    services: [{ name: 'web', port, proto: 'tcp', tags: [], interface: null, priority: 1, weight: 1, source: 'config',
      check: { kind, path: kind === 'http' ? '/' : null, intervalMs, timeoutMs: 2_000, failuresBeforeCritical: 1, successBeforePassing: 1 } }],
    traefik: NO_TRAEFIK_LABELS,
    configErrors: [],
    profiles: [],
  }));
  store.dispatch({ type: 'listed', instances, members: [], clustered: false, at: Date.now() });
  let snapshots = 0;
  store.snapshot$.subscribe(() => snapshots++);
  global.gc?.();
  const rssBefore = process.memoryUsage().rss;
  const heapBefore = process.memoryUsage().heapUsed;

  const checker = new Checker({ dispatch: (a) => store.dispatch(a) });
  const scan = store.snapshot$.pipe(throttleTime(CHECK_SCAN_MS, undefined, { leading: true, trailing: true })).subscribe((s) => checker.observe(s));
  let maxInFlight = 0;
  const started = Date.now();
  let allPassingMs: number | undefined;
  const sampler = setInterval(() => {
    maxInFlight = Math.max(maxInFlight, checker.counters.inFlight);
    if (allPassingMs === undefined && store.current.serviceEndpoints('web').length === n) allPassingMs = Date.now() - started;
  }, SAMPLE_MS);

  const phases: Phase[] = [];
  const measure = async (name: string, ms: number) => {
    const c0 = process.cpuUsage();
    const r0 = checker.counters.runs;
    const k0 = checker.counters.skipped;
    const s0 = snapshots;
    maxInFlight = 0;
    await new Promise((resolve) => setTimeout(resolve, ms));
    const cpu = process.cpuUsage(c0);
    phases.push({ name, runs: checker.counters.runs - r0, cpuMs: (cpu.user + cpu.system) / 1000, maxInFlight, skipped: checker.counters.skipped - k0, snapshots: snapshots - s0 });
  };
  await measure('first interval', intervalMs);
  const passing = store.current.serviceEndpoints('web').length;
  await measure('steady', Number(values.steady) * 1000);
  child.kill('SIGKILL');
  await measure('failing', Number(values.failing) * 1000);
  const critical = n - store.current.serviceEndpoints('web').length;
  global.gc?.();
  const rssAfter = process.memoryUsage().rss;
  const heapAfter = process.memoryUsage().heapUsed;
  clearInterval(sampler);
  scan.unsubscribe();
  checker.stop();

  console.log(`${n} services, check ${kind === 'http' ? 'http:/' : 'tcp'} every ${intervalMs / 1000} s against ${n} loopback listeners (a child process)`);
  console.log(`all ${n} passing ${allPassingMs ?? '(never)'} ms after the checker started; passing after the first interval: ${passing}/${n}; critical after the targets died: ${critical}/${n}`);
  console.log('phase            seconds   runs   CPU ms   µs/run   max in flight   skipped   snapshots');
  for (const p of phases) {
    const seconds = p.name === 'first interval' ? intervalMs / 1000 : p.name === 'steady' ? Number(values.steady) : Number(values.failing);
    console.log(
      `${p.name.padEnd(16)} ${String(seconds).padStart(7)} ${String(p.runs).padStart(6)} ${p.cpuMs.toFixed(0).padStart(8)} ${(p.runs ? (p.cpuMs * 1000) / p.runs : 0).toFixed(1).padStart(8)} ${String(p.maxInFlight).padStart(15)} ${String(p.skipped).padStart(9)} ${String(p.snapshots).padStart(11)}`,
    );
  }
  const mb = (bytes: number) => (bytes / 2 ** 20).toFixed(1);
  console.log(`RSS: ${mb(rssBefore)} MB with the ${n} instances, ${mb(rssAfter)} MB after the checks ran`);
  console.log(`heap used${global.gc ? ' after a full GC' : ' (run with --expose-gc for a full GC first)'}: ${mb(heapBefore)} MB before, ${mb(heapAfter)} MB after (${mb(heapAfter - heapBefore)} MB for ${n} checks and their states)`);
}

/** The simulated targets: `n` HTTP servers on 127.0.0.1, each answering 200 to anything; their ports go to the parent. */
async function targets(n: number): Promise<void> {
  const ports: number[] = [];
  for (let i = 0; i < n; i++) {
    const server = http.createServer((_req, res) => res.end('ok'));
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    ports.push((server.address() as { port: number }).port);
  }
  process.send!(ports);
}

await main();
