/**
 * Micro-benchmark of the DNS hot path: `handleQuery` (decode, resolve, encode, fit) on a SYNTHETIC snapshot of
 * hand-made instances (no LXD), at N = 100 and N = 10,000, beside the floor measured in the same run: plain
 * dns-packet decode + encode of the same query. Exact lookups are hash lookups, so their cost should not grow
 * with N; a bare `*` is a full scan and does.
 *
 *   node dist/bench/dns.js [--seconds 1]
 */
import { Buffer } from 'node:buffer';
import { parseArgs } from 'node:util';
import dnsPacket from 'dns-packet';
import { silentLogger } from '../log/index.js';
import { instrument, ListenerCounters } from '../metrics/index.js';
import { createHandler, datagramLimit, DEFAULT_MAX_UDP_REPLY, type HandleQuery } from '../dns/index.js';
import { Snapshot, type Instance } from '../streams/index.js';
import { configService, runningContainer } from './synthetic.js';

const SIZES = [100, 10_000] as const;
/**
 * Distinct names cycled through by the exact and NXDOMAIN cases, spread evenly over the N instances, so one hot
 * entry does not flatter them; the same count at every N, so only N changes between columns.
 */
const NAME_POOL = 100;
/** Warm-up before each measurement: this many queries or this long, whichever comes first. */
const WARMUP = 20_000;
const WARMUP_NS = 300_000_000n;
/** The plain UDP transport's limit with the default payload ceiling: what a query over UDP gets. */
const UDP = datagramLimit(DEFAULT_MAX_UDP_REPLY);

interface Case {
  readonly name: string;
  /** Queries to cycle through, and the rcode and minimum answer count each reply must have. */
  readonly queries: (n: number) => Buffer[];
  readonly rcode: number;
  readonly minAnswers: number;
}

/** Cases also measured through the metrics wrapper (instrument), for its before/after in one run. */
const COUNTED_CASES = new Set(['exact A', 'NXDOMAIN']);

const CASES: Case[] = [
  { name: 'exact A', queries: (n) => pool(n, (i) => `web-${pad(i)}.lexa`, 'A'), rcode: 0, minAnswers: 1 },
  { name: 'wildcard prefix A (10 match)', queries: () => [ask('web-0001*.lexa', 'A')], rcode: 0, minAnswers: 10 },
  { name: 'SRV (10 targets + additionals)', queries: () => [ask('_app-1._tcp.service.lexa', 'SRV')], rcode: 0, minAnswers: 10 },
  { name: 'NXDOMAIN', queries: (n) => pool(n, (i) => `nope-${pad(i)}.lexa`, 'A'), rcode: 3, minAnswers: 0 },
  // A random-subdomain flood's shape: two labels, so the name is also read as `<host>.<project>` on its way to NXDOMAIN.
  { name: 'NXDOMAIN, two labels', queries: (n) => pool(n, (i) => `nope-${pad(i)}.junk.lexa`, 'A'), rcode: 3, minAnswers: 0 },
  { name: 'bare * A (all N, UDP-truncated)', queries: () => [ask('*.lexa', 'A')], rcode: 0, minAnswers: 1 },
];

function main(): void {
  const { values } = parseArgs({ options: { seconds: { type: 'string', default: '1' } } });
  const seconds = Number(values.seconds);
  console.log('lexa DNS micro-benchmark: SYNTHETIC snapshots (hand-made instances, no LXD), one core, in-process;');
  console.log(`each case runs ~${seconds} s after ${WARMUP} warm-up queries (at most 0.3 s). Node ${process.version}.`);
  console.log('Queries carry EDNS(0) with a 1232-byte payload, as dig sends them; replies are fitted for UDP.');
console.log(`Exact and NXDOMAIN cases cycle through ${NAME_POOL} distinct names spread over the N instances.\n`);

  const results = new Map<string, Map<number, number>>();
  const record = (name: string, n: number, nsPerQuery: number) => {
    if (!results.has(name)) results.set(name, new Map());
    results.get(name)!.set(n, nsPerQuery);
  };
  for (const n of SIZES) {
    const started = process.hrtime.bigint();
    const snapshot = syntheticSnapshot(n);
    const buildMs = Number(process.hrtime.bigint() - started) / 1e6;
    console.log(`N=${n}: built the snapshot in ${buildMs.toFixed(1)} ms`);
    const resolver = { suffix: 'lexa', ttl: 0, soa: { minimum: 0 } };
    const handle = createHandler({ snapshot: () => snapshot, resolver, log: silentLogger });
    // The full path (decode, resolve, encode) without the per-snapshot answer cache: what a miss costs.
    const uncached = createHandler({ snapshot: () => snapshot, resolver, log: silentLogger, cache: false });
    const exact = pool(n, (i) => `web-${pad(i)}.lexa`, 'A');
    record('floor: dns-packet decode+encode', n, measure(exact, seconds, (q) => dnsPacket.encode(dnsPacket.decode(q))));
    // The metrics wrapper's own cost, apart from the resolver's: around a handler that returns a fixed reply.
    const fixed = handle(exact[0]!, UDP)!;
    const wrapped = instrument(() => fixed, new ListenerCounters('dns', 'udp', '127.0.0.1', 53));
    record('metrics wrapper alone (fixed reply)', n, measure(exact, seconds, (q) => wrapped(q, UDP)));
    // The handler as the daemon runs it: counted for /metrics (src/metrics/dns.ts).
    const counted = instrument(handle, new ListenerCounters('dns', 'udp', '127.0.0.1', 53));
    for (const c of CASES) {
      const queries = c.queries(n);
      for (const q of queries.slice(0, 3)) check(handle, q, c);
      record(c.name, n, measure(queries, seconds, (q) => handle(q, UDP)));
      record(`${c.name} (no cache: full path)`, n, measure(queries, seconds, (q) => uncached(q, UDP)));
      if (COUNTED_CASES.has(c.name)) record(`${c.name} + metrics`, n, measure(queries, seconds, (q) => counted(q, UDP)));
    }
  }
  print(results);
}

function syntheticSnapshot(n: number): Snapshot {
  const instances: Instance[] = [];
  for (let i = 0; i < n; i++) {
    const v4 = `10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}`;
    instances.push(runningContainer(`web-${pad(i)}`, v4, `fd42::${i.toString(16)}`, [configService(`app-${Math.floor(i / 10)}`, 443)]));
  }
  return Snapshot.empty().withList(instances, [], false, Date.now());
}

function measure(queries: readonly Buffer[], seconds: number, fn: (q: Buffer) => unknown): number {
  const m = queries.length;
  const warm = process.hrtime.bigint();
  for (let i = 0; i < WARMUP && (i % 100 !== 0 || process.hrtime.bigint() - warm < WARMUP_NS); i++) fn(queries[i % m]!);
  const budget = BigInt(Math.round(seconds * 1e9));
  const start = process.hrtime.bigint();
  let done = 0;
  let elapsed = 0n;
  do {
    for (let k = 0; k < 1000; k++) fn(queries[(done + k) % m]!);
    done += 1000;
    elapsed = process.hrtime.bigint() - start;
  } while (elapsed < budget);
  return Number(elapsed) / done;
}

function check(handle: HandleQuery, q: Buffer, c: Case): void {
  const reply = handle(q, UDP);
  if (reply === null) throw new Error(`${c.name}: no reply`);
  const rcode = reply[3]! & 0xf;
  const answers = (reply[6]! << 8) | reply[7]!;
  if (rcode !== c.rcode || answers < c.minAnswers) {
    throw new Error(`${c.name}: rcode ${rcode}, ${answers} answers; expected rcode ${c.rcode}, >= ${c.minAnswers}`);
  }
}

function print(results: Map<string, Map<number, number>>): void {
  const [small, large] = SIZES;
  const head = ['case', `q/s N=${small}`, `µs N=${small}`, `q/s N=${large}`, `µs N=${large}`, `µs ${large}/${small}`];
  const rows = [...results].map(([name, byN]) => {
    const a = byN.get(small)!;
    const b = byN.get(large)!;
    return [name, qps(a), us(a), qps(b), us(b), (b / a).toFixed(2)];
  });
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const line = (cells: string[]) => cells.map((c, i) => (i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join('  ');
  console.log(`\n${line(head)}\n${widths.map((w) => '-'.repeat(w)).join('  ')}`);
  for (const r of rows) console.log(line(r));
  console.log('\nq/s = queries per second on one core; µs = microseconds per query; last column: cost at N=10,000 over N=100.');
}

function qps(ns: number): string {
  return Math.round(1e9 / ns).toLocaleString('en-US');
}

function us(ns: number): string {
  return (ns / 1000).toFixed(2);
}

function pool(n: number, name: (i: number) => string, type: dnsPacket.RecordType): Buffer[] {
  const size = Math.min(n, NAME_POOL);
  const step = Math.max(1, Math.floor(n / size));
  return Array.from({ length: size }, (_, k) => ask(name(k * step), type, k));
}

function ask(name: string, type: dnsPacket.RecordType, id = 1): Buffer {
  return dnsPacket.encode({
    type: 'query',
    id,
    flags: dnsPacket.RECURSION_DESIRED,
    questions: [{ name, type, class: 'IN' }],
    additionals: [
      { name: '.', type: 'OPT', udpPayloadSize: 1232, extendedRcode: 0, ednsVersion: 0, flags: 0, flag_do: false, options: [] },
    ],
  });
}

function pad(i: number): string {
  return String(i).padStart(5, '0');
}

main();
