/**
 * Churn under load, on the REAL LXD of scripts/testbed.sh: dnsperf drives lexa at a fixed rate over UDP while real
 * containers are started and stopped, and a recorder (recorder.ts) asks every container's A and AAAA at a lower
 * rate and keeps each reply with its send and receipt instants. Afterwards every recorded reply is judged against
 * LXD's timeline (churn-judge.ts: what "correct" means while an instance starts or stops), and dnsperf's summary
 * must show no lost query and no rcode but NOERROR and NXDOMAIN.
 *
 *   node dist/bench/churn.js [--seconds 60] [--containers 20] [--qps 20000] [--recorder-qps 1000]
 *                            [--stop-bound-ms 1000] [--start-bound-ms 5000] [--operators 4] [--seed 1]
 *   (npm run churn)
 *
 * lexa runs as a child process pinned to one CPU and dnsperf to the other (--lexa-cpu 0, --client-cpu 1); LXD, the
 * containers and the lxc commands are not pinned. Exits 1 when any check fails.
 */
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { judge, type Answer, type Step, type Verdict } from './churn-judge.js';
import { runDnsperf, type DnsperfSummary } from './dnsperf.js';
import { startLexaChild } from './lexa-child.js';
import { record } from './recorder.js';

/** The zone lexa answers in (its default suffix). */
const SUFFIX = 'lexa';
/** How long a launched container may take to get its IPv4 and global IPv6 (SLAAC: 1–2 s idle). */
const ADDRESSES_TIMEOUT_MS = 60_000;
/** `lxc` commands run at most this long; a hung LXD fails the run instead of hanging it. */
const LXC_TIMEOUT_MS = 120_000;
/** Containers launched or deleted at once: each `lxc` is a process, and the machine has two cores. */
const SETUP_PARALLEL = 4;
/** Rcodes a churn may answer: NXDOMAIN for a stopped instance, NOERROR otherwise. */
const ALLOWED_RCODES = new Set(['NOERROR', 'NXDOMAIN']);

export interface ChurnOptions {
  readonly containers: number;
  readonly seconds: number;
  readonly qps: number;
  readonly recorderQps: number;
  readonly stopBoundMs: number;
  readonly startBoundMs: number;
  /** Start/stop commands in flight at once. */
  readonly operators: number;
  /** Each operator pauses between commands a random time in [pauseMinMs, pauseMaxMs]. */
  readonly pauseMinMs: number;
  readonly pauseMaxMs: number;
  readonly seed: number;
  /** Container names are `<prefix><n>`. */
  readonly prefix: string;
  readonly image: string;
  readonly lexaCpu?: number;
  readonly clientCpu?: number;
}

export const CHURN_DEFAULTS: ChurnOptions = {
  containers: 20,
  seconds: 60,
  qps: 20_000,
  recorderQps: 1_000,
  // lexa learns a stop from LXD's lifecycle event, which arrives within milliseconds of `lxc stop` returning; 1 s
  // leaves room for a busy machine while still catching a missed event (the next full re-list is 5 minutes away).
  stopBoundMs: 1_000,
  // An address appears ~0.1 s (IPv4) and 1–2 s (SLAAC IPv6) after start on an idle machine, later under load.
  startBoundMs: 5_000,
  operators: 4,
  pauseMinMs: 200,
  pauseMaxMs: 1_500,
  seed: 1,
  prefix: 'load-c',
  image: 'lexa-busybox',
};

export interface ChurnReport {
  readonly options: ChurnOptions;
  readonly dnsperf: DnsperfSummary;
  readonly verdict: Verdict;
  readonly steps: readonly Step[];
  /** lexa's CPU time (utime + stime) over the loaded window, seconds. */
  readonly lexaCpuSeconds: number;
  /** Every failed check, in words; empty when the run passed. */
  readonly failures: readonly string[];
}

function lxc(...args: string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = execFile('lxc', args, { timeout: LXC_TIMEOUT_MS, maxBuffer: 64 * 1024 * 1024 }, (err, out, errOut) =>
      err ? reject(new Error(`lxc ${args.join(' ')}: ${errOut || err.message}`)) : resolve(out),
    );
    child.stdin?.end(); // lxc reads YAML from a stdin that is not a terminal
  });
}

/** mulberry32: a seeded PRNG, so a run's schedule can be repeated. */
function random(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

async function inParallel<T>(items: readonly T[], width: number, fn: (item: T) => Promise<void>): Promise<void> {
  const queue = [...items];
  const worker = async () => {
    for (let x = queue.shift(); x !== undefined; x = queue.shift()) await fn(x);
  };
  await Promise.all(Array.from({ length: Math.min(width, queue.length) }, worker));
}

interface LxdInstance {
  name: string;
  status: string;
  state: { network: Record<string, { addresses: { family: string; address: string; scope: string }[] }> | null } | null;
}

/** Global addresses of each running instance named `<prefix>…`, as LXD reports them now. */
async function lxdAddresses(prefix: string): Promise<Map<string, Set<string>>> {
  const list = JSON.parse(await lxc('query', '/1.0/instances?recursion=2')) as LxdInstance[];
  const out = new Map<string, Set<string>>();
  for (const i of list) {
    if (!i.name.startsWith(prefix)) continue;
    const set = new Set<string>();
    for (const [nic, n] of Object.entries(i.state?.network ?? {}))
      if (nic !== 'lo') for (const a of n.addresses) if (a.scope === 'global') set.add(a.address);
    out.set(i.name, set);
  }
  return out;
}

/** Deletes every instance named `<prefix>…` (a previous run's leftovers, or this run's at the end). */
export async function deleteContainers(prefix: string): Promise<void> {
  const names = (await lxc('list', '-c', 'n', '-f', 'csv')).split('\n').filter((n) => n.startsWith(prefix));
  await inParallel(names, SETUP_PARALLEL, async (n) => void (await lxc('delete', '--force', n)));
}

/** utime + stime of process `pid` and all its threads, seconds (/proc/<pid>/stat, fields 14 and 15). */
export async function cpuSeconds(pid: number): Promise<number> {
  const stat = await readFile(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  const ticks = Number(fields[11]) + Number(fields[12]);
  return ticks / 100; // CLK_TCK is 100 on Linux x86-64 and arm64
}

/** Starts and stops containers until `until`; every command's issue and return instants go to `steps`. */
async function churn(names: readonly string[], running: Set<string>, o: ChurnOptions, until: number, steps: Step[]): Promise<void> {
  const rand = random(o.seed);
  const busy = new Set<string>();
  let cycle = 0;
  const operator = async () => {
    while (performance.now() < until) {
      const idle = names.filter((n) => !busy.has(n));
      const name = idle[Math.floor(rand() * idle.length)];
      if (name === undefined) break;
      busy.add(name);
      const op = running.has(name) ? 'stop' : 'start';
      // Stops alternate between clean (instance-shutdown) and forced (instance-stopped): LXD emits different events.
      const args = op === 'start' ? ['start', name] : cycle++ % 2 === 0 ? ['stop', name] : ['stop', '--force', name];
      const issuedAt = performance.now();
      await lxc(...args);
      steps.push({ name, op, issuedAt, returnedAt: performance.now() });
      if (op === 'start') running.add(name);
      else running.delete(name);
      busy.delete(name);
      await sleep(o.pauseMinMs + rand() * (o.pauseMaxMs - o.pauseMinMs));
    }
  };
  await Promise.all(Array.from({ length: Math.min(o.operators, names.length) }, operator));
}

/** Runs one churn under load; the containers are created first and deleted at the end, whatever happens. */
export async function runChurn(o: ChurnOptions, progress: (line: string) => void = () => undefined): Promise<ChurnReport> {
  const names = Array.from({ length: o.containers }, (_, i) => `${o.prefix}${String(i).padStart(2, '0')}`);
  const dir = mkdtempSync(join(tmpdir(), 'lexa-churn-'));
  const steps: Step[] = [];
  await deleteContainers(o.prefix);
  try {
    progress(`launching ${names.length} containers`);
    await inParallel(names, SETUP_PARALLEL, async (n) => {
      const issuedAt = performance.now();
      await lxc('launch', o.image, n, '--quiet');
      steps.push({ name: n, op: 'start', issuedAt, returnedAt: performance.now() });
    });
    const deadline = Date.now() + ADDRESSES_TIMEOUT_MS;
    let known = await lxdAddresses(o.prefix);
    // Each needs an IPv4 and an IPv6 before the run, so the known addresses are complete.
    while ([...known.values()].some((s) => s.size < 2) || known.size < names.length) {
      if (Date.now() > deadline) throw new Error(`containers without both addresses after ${ADDRESSES_TIMEOUT_MS} ms`);
      await sleep(200);
      known = await lxdAddresses(o.prefix);
    }
    const queryFile = join(dir, 'queries');
    writeFileSync(queryFile, names.flatMap((n) => [`${n}.${SUFFIX} A`, `${n}.${SUFFIX} AAAA`]).join('\n') + '\n');

    const lexa = await startLexaChild('  tls {\n    enabled = false\n  }\n  dns {\n    bind {\n      host = "127.0.0.1"\n      port = 0\n    }\n  }', ['dns/udp'], o.lexaCpu);
    try {
      const port = lexa.port('dns/udp');
      progress(`lexa pid ${lexa.pid} on UDP ${port}; ${o.seconds} s at ${o.qps} QPS, ${o.operators} operators`);
      const cpu0 = await cpuSeconds(lexa.pid);
      const running = new Set(names);
      const until = performance.now() + o.seconds * 1000;
      const [dnsperf, answers] = await Promise.all([
        runDnsperf({ port, queryFile, qps: o.qps, seconds: o.seconds, timeoutSeconds: 2, clients: 4, outstanding: 500, ...(o.clientCpu === undefined ? {} : { cpu: o.clientCpu }) }),
        record({ port, names, suffix: SUFFIX, qps: o.recorderQps, seconds: o.seconds, timeoutMs: 2_000 }),
        churn(names, running, o, until, steps),
      ]);
      const lexaCpuSeconds = (await cpuSeconds(lexa.pid)) - cpu0;
      // Addresses LXD reported at any time: the set before the run, and after it for the ones running now.
      for (const [n, set] of await lxdAddresses(o.prefix)) for (const a of set) known.get(n)?.add(a);
      const verdict = judge(steps, answers as Answer[], known, o);
      const failures: string[] = [];
      if (dnsperf.lost > 0) failures.push(`dnsperf lost ${dnsperf.lost} of ${dnsperf.sent} queries`);
      for (const [rcode, n] of Object.entries(dnsperf.rcodes)) if (!ALLOWED_RCODES.has(rcode)) failures.push(`dnsperf: ${n} × ${rcode}`);
      const byFault = new Map<string, number>();
      for (const v of verdict.violations) byFault.set(v.fault, (byFault.get(v.fault) ?? 0) + 1);
      for (const [fault, n] of byFault) {
        const first = verdict.violations.find((v) => v.fault === fault)!;
        failures.push(`recorder: ${n} × ${fault}, e.g. ${JSON.stringify(first)}`);
      }
      return { options: o, dnsperf, verdict, steps, lexaCpuSeconds, failures };
    } finally {
      await lexa.stop();
    }
  } finally {
    await deleteContainers(o.prefix);
    rmSync(dir, { recursive: true, force: true });
  }
}

const quantile = (xs: readonly number[], q: number) => (xs.length === 0 ? 0 : [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor(q * xs.length))]!);

/** The report as the lines `npm run churn` prints (and docs/reliability.md quotes). */
export function describeChurn(r: ChurnReport): string[] {
  const { dnsperf: d, verdict: v, options: o } = r;
  const stops = r.steps.filter((s) => s.op === 'stop').length;
  const starts = r.steps.length - stops - o.containers;
  const named = v.stopLagsMs.filter((x) => x > 0);
  return [
    `churn: ${o.containers} containers, ${o.seconds} s, dnsperf at ${o.qps} QPS (UDP), recorder at ${o.recorderQps} QPS (A and AAAA)`,
    `  lxc: ${stops} stops and ${starts} starts during the load`,
    `  dnsperf: sent ${d.sent}, completed ${d.completed}, lost ${d.lost}, ${d.qps.toFixed(0)} QPS; rcodes ${JSON.stringify(d.rcodes)}`,
    `  recorder: ${v.answers} replies judged, ${v.violations.length} violations (stop bound ${o.stopBoundMs} ms, start bound ${o.startBoundMs} ms)`,
    `  after \`lxc stop\` returned, the last reply naming the instance: ${named.length} of ${stops} stops had one; max ${quantile(named, 1).toFixed(0)} ms`,
    `  after \`lxc start\` returned, the first A reply naming it: median ${quantile(v.startLagsMs, 0.5).toFixed(0)} ms, max ${quantile(v.startLagsMs, 1).toFixed(0)} ms (${v.startLagsMs.length} starts)`,
    `  lexa CPU: ${r.lexaCpuSeconds.toFixed(1)} s over ${o.seconds} s (${((r.lexaCpuSeconds * 1e6) / Math.max(1, d.completed + v.answers)).toFixed(1)} µs per query)`,
    ...(r.failures.length === 0 ? ['  PASS'] : r.failures.map((f) => `  FAIL ${f}`)),
  ];
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      seconds: { type: 'string' },
      containers: { type: 'string' },
      qps: { type: 'string' },
      'recorder-qps': { type: 'string' },
      'stop-bound-ms': { type: 'string' },
      'start-bound-ms': { type: 'string' },
      operators: { type: 'string' },
      seed: { type: 'string' },
      'lexa-cpu': { type: 'string', default: '0' },
      'client-cpu': { type: 'string', default: '1' },
    },
  });
  const n = (v: string | undefined, d: number) => {
    if (v === undefined) return d;
    const x = Number(v);
    if (!Number.isFinite(x) || x < 0) throw new Error(`not a non-negative number: ${v}`);
    return x;
  };
  const d = CHURN_DEFAULTS;
  const o: ChurnOptions = {
    ...d,
    seconds: n(values.seconds, d.seconds),
    containers: n(values.containers, d.containers),
    qps: n(values.qps, d.qps),
    recorderQps: n(values['recorder-qps'], d.recorderQps),
    stopBoundMs: n(values['stop-bound-ms'], d.stopBoundMs),
    startBoundMs: n(values['start-bound-ms'], d.startBoundMs),
    operators: n(values.operators, d.operators),
    seed: n(values.seed, d.seed),
    lexaCpu: n(values['lexa-cpu'], 0),
    clientCpu: n(values['client-cpu'], 1),
  };
  const report = await runChurn(o, (l) => console.log(`churn: ${l}`));
  for (const line of describeChurn(report)) console.log(line);
  process.exitCode = report.failures.length === 0 ? 0 : 1;
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  main().catch((err: unknown) => {
    console.error(`churn: ${err instanceof Error ? err.message : String(err)}`);
    process.exit(1);
  });
}
