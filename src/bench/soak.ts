/**
 * The soak, on the REAL LXD of scripts/testbed.sh: lexa (the built CLI, a child process) under moderate mixed load
 * and steady churn (soak-load.ts) for `--minutes`, its resources sampled every `--sample-seconds` from its own
 * /metrics (prom-client's default metrics: resident memory, V8 heap used, open file descriptors, active handles,
 * and active timers, `nodejs_active_resources{type="Timeout"}`; and the event loop's longest delay between two
 * samples, which says whether a client's timeout met a stalled lexa). Prints each series' first, last and peak and
 * its least-squares slope per hour; then, once the load has ended and lexa has settled, the counts against the
 * ones before the load.
 *
 *   node dist/bench/soak.js [--minutes 60] [--sample-seconds 10] [--containers 4]     (npm run soak)
 *
 * Each sample is one scrape over a new connection (closed after), so every sample counts that one connection.
 */
import http from 'node:http';
import { mkdtempSync, readdirSync, readFileSync, readlinkSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { execFile } from 'node:child_process';
import { startLexaChild, type LexaChild } from './lexa-child.js';
import { loadPhase, SOAK_RATES, type PhaseResult, type Ports, type SoakRates } from './soak-load.js';

/** The series sampled, each from lexa's /metrics. */
export const SERIES = ['rss', 'heap', 'fds', 'handles', 'timers', 'loopDelayMax', 'runQueueWait'] as const;
export type Series = (typeof SERIES)[number];
export type Sample = Readonly<Record<Series, number>> & { readonly at: number };

/** Settled: this many consecutive samples, SETTLE_EVERY_MS apart, with equal fds, handles and timers. */
const SETTLE_SAMPLES = 4;
const SETTLE_EVERY_MS = 1_000;
/**
 * Settling may take this long: lexa's idle deadlines are 5 s (REST keep-alive) and 10 s (DNS over TCP and DoT),
 * and a started instance is re-read for a few seconds until its addresses are complete.
 */
const SETTLE_TIMEOUT_MS = 45_000;
/** How long a launched container may take to get its addresses. */
const ADDRESSES_TIMEOUT_MS = 60_000;
const LXC_TIMEOUT_MS = 120_000;
const SCRAPE_TIMEOUT_MS = 10_000;
/** The first sample under load is taken once every generator has connected. */
const SAMPLE_WARMUP_MS = 2_000;

const bind = '    bind {\n      host = "127.0.0.1"\n      port = 0\n    }';
/** Every listener the load reaches, plus the plain-HTTP metrics listener the sampler scrapes. */
const CONFIG = `  tls {\n${bind}\n  }\n  dns {\n${bind}\n    dot {\n  ${bind}\n    }\n    doh {\n  ${bind}\n    }\n  }\n  metrics {\n${bind}\n  }`;

function lxc(...args: string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = execFile('lxc', args, { timeout: LXC_TIMEOUT_MS, maxBuffer: 64 * 1024 * 1024 }, (err, out, errOut) =>
      err ? reject(new Error(`lxc ${args.join(' ')}: ${errOut || err.message}`)) : resolve(out),
    );
    child.stdin?.end();
  });
}

/** One scrape of `port`'s /metrics, on a connection of its own. */
function scrape(port: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const req = http.get({ host: '127.0.0.1', port, path: '/metrics', agent: false, timeout: SCRAPE_TIMEOUT_MS }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => (body += d));
      res.on('end', () => resolve(body));
    });
    req.on('timeout', () => req.destroy(new Error('scrape timed out')));
    req.on('error', reject);
  });
}

/** The sum of every sample of metric `name` (all label sets) whose labels contain `labels`, from exposition text. */
export function metric(text: string, name: string, labels = ''): number {
  let sum = 0;
  let seen = false;
  for (const line of text.split('\n')) {
    if (!line.startsWith(name) || !(line[name.length] === ' ' || line[name.length] === '{') || !line.includes(labels)) continue;
    sum += Number(line.slice(line.lastIndexOf(' ') + 1));
    seen = true;
  }
  if (!seen) throw new Error(`no ${name}${labels} in /metrics`);
  return sum;
}

/** How long process `pid`'s threads have waited for a CPU while runnable, ms (/proc/<pid>/schedstat). */
function runQueueWaitMs(pid: number): number {
  let total = 0;
  for (const task of readdirSync(`/proc/${pid}/task`)) {
    try {
      total += Number(readFileSync(`/proc/${pid}/task/${task}/schedstat`, 'utf8').split(' ')[1]) / 1e6;
    } catch {
      // the thread ended between the listing and the read
    }
  }
  return total;
}

/** One sample of lexa (`pid`) from its /metrics on `metricsPort`; `runQueueWait` is cumulative since it started. */
export async function sample(metricsPort: number, pid: number): Promise<Sample> {
  const text = await scrape(metricsPort);
  return {
    at: performance.now(),
    rss: metric(text, 'process_resident_memory_bytes'),
    heap: metric(text, 'nodejs_heap_size_used_bytes'),
    fds: metric(text, 'process_open_fds'),
    handles: metric(text, 'nodejs_active_handles'),
    timers: metric(text, 'nodejs_active_resources', 'type="Timeout"'),
    // The longest the event loop waited since the previous scrape (prom-client resets it each scrape), ms: not a
    // leak series, but what a client that timed out would have met.
    loopDelayMax: metric(text, 'nodejs_eventloop_lag_max_seconds') * 1000,
    // Time lexa was runnable but off the CPU (the machine's doing, not lexa's): set against loopDelayMax.
    runQueueWait: runQueueWaitMs(pid),
  };
}

/**
 * What process `pid`'s open descriptors are, by kind ("socket", "pipe", "anon_inode:inotify", a file's path),
 * sorted: two moments compare by kind, which says what a difference in the count is.
 */
export function fdKinds(pid: number): string[] {
  const kinds: string[] = [];
  for (const fd of readdirSync(`/proc/${pid}/fd`)) {
    try {
      kinds.push(readlinkSync(`/proc/${pid}/fd/${fd}`).replace(/^(socket|pipe):\[\d+\]$/, '$1'));
    } catch {
      // closed between the listing and the read
    }
  }
  return kinds.sort();
}

/** The kinds in `b` beyond those in `a` (a multiset difference), e.g. ["anon_inode:inotify"]. */
export function addedKinds(a: readonly string[], b: readonly string[]): string[] {
  const left = [...a];
  const added: string[] = [];
  for (const k of b) {
    const i = left.indexOf(k);
    if (i >= 0) left.splice(i, 1);
    else added.push(k);
  }
  return added;
}

/** Least-squares slope of `ys` over `hours`, per hour (0 with fewer than two distinct instants). */
export function slopePerHour(hours: readonly number[], ys: readonly number[]): number {
  const n = hours.length;
  if (n < 2) return 0;
  const mt = hours.reduce((a, b) => a + b, 0) / n;
  const my = ys.reduce((a, b) => a + b, 0) / n;
  let num = 0;
  let den = 0;
  for (let i = 0; i < n; i++) {
    num += (hours[i]! - mt) * (ys[i]! - my);
    den += (hours[i]! - mt) ** 2;
  }
  return den === 0 ? 0 : num / den;
}

/** A running soak: lexa, its containers and its ports; `close` stops lexa and deletes the containers. */
export interface SoakBed {
  readonly lexa: LexaChild;
  readonly ports: Ports & { readonly metrics: number };
  readonly names: readonly string[];
  readonly queryFile: string;
  sample(): Promise<Sample>;
  /** Samples until fds, handles and timers hold still (SETTLE_SAMPLES equal samples); resolves with the last. */
  settle(): Promise<Sample>;
  close(): Promise<void>;
}

async function deleteByPrefix(prefix: string): Promise<void> {
  for (const n of (await lxc('list', '-c', 'n', '-f', 'csv')).split('\n').filter((x) => x.startsWith(prefix))) await lxc('delete', '--force', n);
}

/** Launches `containers` containers named `<prefix>NN`, waits for their IPv4, then starts lexa on `cpu`. */
export async function startSoakBed(containers: number, prefix: string, cpu?: number): Promise<SoakBed> {
  const dir = mkdtempSync(join(tmpdir(), 'lexa-soak-'));
  const names = Array.from({ length: containers }, (_, i) => `${prefix}${String(i).padStart(2, '0')}`);
  await deleteByPrefix(prefix);
  for (const n of names) await lxc('launch', 'lexa-busybox', n, '--quiet');
  const deadline = Date.now() + ADDRESSES_TIMEOUT_MS;
  for (;;) {
    const list = JSON.parse(await lxc('query', '/1.0/instances?recursion=2')) as { name: string; state: { network: Record<string, { addresses: { family: string; scope: string }[] }> | null } | null }[];
    const ready = list.filter((i) => names.includes(i.name) && Object.values(i.state?.network ?? {}).some((n) => n.addresses.some((a) => a.family === 'inet' && a.scope === 'global')));
    if (ready.length === names.length) break;
    if (Date.now() > deadline) throw new Error(`containers without an IPv4 after ${ADDRESSES_TIMEOUT_MS} ms`);
    await sleep(200);
  }
  const queryFile = join(dir, 'queries');
  writeFileSync(queryFile, names.flatMap((n) => [`${n}.lexa A`, `${n}.lexa AAAA`]).join('\n') + '\nlexa SOA\n');
  const lexa = await startLexaChild(CONFIG, ['dns/udp', 'dot', 'doh', 'rest', 'metrics'], cpu);
  const ports = { dns: lexa.port('dns/udp'), dot: lexa.port('dot'), doh: lexa.port('doh'), rest: lexa.port('rest'), metrics: lexa.port('metrics') };
  const take = () => sample(ports.metrics, lexa.pid);
  return {
    lexa,
    ports,
    names,
    queryFile,
    sample: take,
    settle: async () => {
      const until = Date.now() + SETTLE_TIMEOUT_MS;
      const seen: Sample[] = [];
      for (;;) {
        seen.push(await take());
        const last = seen.slice(-SETTLE_SAMPLES);
        if (last.length === SETTLE_SAMPLES && last.every((s) => s.fds === last[0]!.fds && s.handles === last[0]!.handles && s.timers === last[0]!.timers)) return seen.at(-1)!;
        if (Date.now() > until) return seen.at(-1)!;
        await sleep(SETTLE_EVERY_MS);
      }
    },
    close: async () => {
      await lexa.stop();
      await deleteByPrefix(prefix);
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** Every failure a phase's clients saw, in words (none expected: the load is moderate). */
export function phaseFailures(p: PhaseResult): string[] {
  const out: string[] = [];
  for (const [mode, s] of [['udp', p.udp], ['tcp', p.tcp], ['dot', p.dot]] as const) {
    if (s.lost > 0) out.push(`${mode}: dnsperf lost ${s.lost} of ${s.sent}`);
    for (const [rcode, n] of Object.entries(s.rcodes)) if (rcode !== 'NOERROR' && rcode !== 'NXDOMAIN') out.push(`${mode}: ${n} × ${rcode}`);
  }
  if (p.http.failed > 0) out.push(`DoH/REST/blocking/SSE: ${p.http.failed} failed of ${p.http.ok + p.http.failed}`);
  return out;
}

const UNITS: Record<Series, [string, number]> = {
  rss: ['MiB', 1 << 20],
  heap: ['MiB', 1 << 20],
  fds: ['', 1],
  handles: ['', 1],
  timers: ['', 1],
  loopDelayMax: ['ms', 1],
  runQueueWait: ['ms', 1],
};

/**
 * The table `npm run soak` prints: per series first, last and peak, and the least-squares slope per hour over every
 * sample and over the second half (after the warm-up: V8's heap and the allocator grow to their working size first).
 */
export function describeSamples(samples: readonly Sample[]): string[] {
  if (samples.length === 0) return ['  no samples (a run shorter than the warm-up)'];
  const t0 = samples[0]!.at;
  const hours = samples.map((s) => (s.at - t0) / 3_600_000);
  const half = Math.floor(samples.length / 2);
  const lines = ['| series | first | last | peak | slope per hour, whole run | slope per hour, second half |', '|---|---|---|---|---|---|'];
  for (const k of SERIES) {
    const [unit, div] = UNITS[k];
    const ys = samples.map((s) => s[k] / div);
    const f = (x: number) => `${x.toFixed(div === 1 ? 0 : 1)}${unit ? ` ${unit}` : ''}`;
    const slope = (from: number) => `${slopePerHour(hours.slice(from), ys.slice(from)).toFixed(2)}${unit ? ` ${unit}` : ''}/h`;
    lines.push(`| ${k} | ${f(ys[0]!)} | ${f(ys.at(-1)!)} | ${f(Math.max(...ys))} | ${slope(0)} | ${slope(half)} |`);
  }
  return lines;
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      minutes: { type: 'string', default: '60' },
      'sample-seconds': { type: 'string', default: '10' },
      containers: { type: 'string', default: '4' },
      'lexa-cpu': { type: 'string', default: '0' },
      'client-cpu': { type: 'string', default: '1' },
    },
  });
  const minutes = Number(values.minutes);
  const every = Number(values['sample-seconds']);
  const containers = Number(values.containers);
  if (!(minutes > 0) || !(every > 0) || !(containers >= 1 && containers <= 50)) throw new Error('--minutes and --sample-seconds must be positive, --containers 1..50');
  const rates: SoakRates = SOAK_RATES;
  const bed = await startSoakBed(containers, 'load-soak-', Number(values['lexa-cpu']));
  try {
    const before = await bed.settle();
    const kindsBefore = fdKinds(bed.lexa.pid);
    console.log(`soak: ${minutes} min; UDP ${rates.udpQps}, TCP ${rates.tcpQps}, DoT ${rates.dotQps}, DoH ${rates.dohQps} QPS, REST ${rates.restPerSecond}/s,`);
    console.log(`  ${rates.blocking} blocking queries, ${rates.sse} SSE readers, one start/stop of ${containers} containers every ${rates.churnEveryMs / 1000} s; sampled every ${every} s`);
    // The series cover the load only; `before` (idle, settled) is compared with the settled state after it.
    const samples: Sample[] = [];
    let running = true;
    const sampler = (async () => {
      await sleep(SAMPLE_WARMUP_MS);
      await bed.sample().then((s) => samples.push(s), (err: Error) => console.log(`  sample failed: ${err.message}`));
      while (running) {
        await sleep(every * 1000);
        // A failed scrape is reported and the run goes on: the series just has a gap.
        if (running) await bed.sample().then((s) => samples.push(s), (err: Error) => console.log(`  sample failed: ${err.message}`));
      }
    })();
    const phase = await loadPhase(bed.ports, bed.names, bed.queryFile, minutes * 60, rates, Number(values['client-cpu']));
    running = false;
    await sampler;
    const after = await bed.settle();
    console.log(`  queries: UDP ${phase.udp.completed}, TCP ${phase.tcp.completed}, DoT ${phase.dot.completed}; HTTP requests ${phase.http.ok}; ${phase.churned} starts and stops`);
    for (const line of describeSamples(samples)) console.log(line);
    const waits = samples.slice(1).map((s, i) => s.runQueueWait - samples[i]!.runQueueWait);
    if (samples.length > 1) {
      console.log(`  lexa runnable but off the CPU: ${((samples.at(-1)!.runQueueWait - samples[0]!.runQueueWait) / 1000).toFixed(1)} s in all; at most ${Math.max(0, ...waits).toFixed(0)} ms in one ${every} s interval`);
      const worst = waits.reduce((w, _, i) => (samples[i + 1]!.loopDelayMax > samples[w + 1]!.loopDelayMax ? i : w), 0);
      console.log(`  the longest event-loop delay, ${samples[worst + 1]!.loopDelayMax.toFixed(0)} ms, was in an interval where lexa waited ${waits[worst]!.toFixed(0)} ms for a CPU`);
    }
    const kindsAfter = fdKinds(bed.lexa.pid);
    console.log(`  settled after the load: fds ${before.fds} → ${after.fds}, handles ${before.handles} → ${after.handles}, timers ${before.timers} → ${after.timers}`);
    console.log(`  descriptors opened and kept: ${JSON.stringify(addedKinds(kindsBefore, kindsAfter))}, closed: ${JSON.stringify(addedKinds(kindsAfter, kindsBefore))}`);
    const failures = phaseFailures(phase);
    for (const f of failures) console.log(`  FAIL ${f}`);
    process.exitCode = failures.length === 0 ? 0 : 1;
  } finally {
    const { exitCode, signalCode } = bed.lexa.child;
    // lexa ending during the run is the finding itself: say how, with the end of its log.
    if (exitCode !== null || signalCode !== null) console.log(`  lexa exited during the run (code ${exitCode}, signal ${signalCode}); its log ends:\n${bed.lexa.log().split('\n').slice(-30).join('\n')}`);
    await bed.close();
  }
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  main().catch((err: unknown) => {
    console.error(`soak: ${err instanceof Error ? err.message : String(err)}`);
    process.exit(1);
  });
}
