/**
 * Persistent-map benchmark: lexa's hand-written HAMT (streams/state/pmap.ts) beside immutable's Map, in one run, on
 * the operations the snapshot performs: `get` (every DNS answer: hosts, services, addresses), `set` of an existing
 * key and `delete` (the fold, once per LXD event), full iteration (REST listings, wildcards, re-indexing) and `size`,
 * at 10 / 1,000 / 10,000 / 100,000 entries; plus the heap each map retains per entry.
 *
 *   node dist/bench/pmap.js [--sizes 10,1000,10000,100000] [--ms 15] [--rounds 15]
 *
 * Keys look like the snapshot's (`default/web-123`); values are small objects made before the map, so the memory
 * figure is the map's own structure, not its values. Each figure is the best of `rounds` timed runs of about `ms`,
 * the two maps interleaved (pmap, immutable, pmap, ...), so both see the same machine state: many short runs, so that
 * on a shared machine at least one of each is likely to run undisturbed. The last column is
 * immutable's figure over pmap's: above 1 means immutable is slower or larger.
 */
import { createRequire } from 'node:module';
import { parseArgs } from 'node:util';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { Map as IMap } from 'immutable';
import { PersistentMap } from '../streams/state/pmap.js';

/** The operations both maps offer, as the snapshot uses them: persistent set/delete return a new map. */
interface Persistent<V> {
  get(key: string): V | undefined;
  set(key: string, value: V): Persistent<V>;
  delete(key: string): Persistent<V>;
  readonly size: number;
  [Symbol.iterator](): Iterator<[string, V]>;
}

interface Contender {
  name: string;
  build(entries: readonly (readonly [string, Value])[]): Persistent<Value>;
}

interface Value {
  id: number;
}

const CONTENDERS: readonly Contender[] = [
  { name: 'pmap', build: (entries) => PersistentMap.of(entries) },
  // Built by repeated set, as PersistentMap.of is, so both pay for the same thing.
  { name: 'immutable', build: (entries) => entries.reduce<IMap<string, Value>>((m, [k, v]) => m.set(k, v), IMap()) },
];

/** Enough entries across all maps of one memory measurement that a few stray bytes of heap do not matter. */
const MEMORY_ENTRIES = 200_000;

const IMMUTABLE_VERSION = (createRequire(import.meta.url)('immutable/package.json') as { version: string }).version;

/** Where every timed result goes, so the JIT cannot drop a loop whose result is unused. */
let sink = 0;

/** Nanoseconds per call of `op(i)`, the best of `rounds` runs of about `ms` each; `op` is called with i = 0, 1, ... */
function timePerOp(op: (i: number) => void, ms: number): number {
  // Calibrate: double the batch until one batch takes a tenth of the budget (one call may already: a whole
  // iteration of 100,000 entries takes tens of milliseconds).
  let batch = 1;
  for (;;) {
    const t0 = process.hrtime.bigint();
    for (let i = 0; i < batch; i++) op(i);
    if (Number(process.hrtime.bigint() - t0) > (ms * 1e6) / 10 || batch > 1 << 26) break;
    batch *= 2;
  }
  let n = 0;
  const t0 = process.hrtime.bigint();
  const end = t0 + BigInt(ms * 1e6);
  let now = t0;
  while (now < end) {
    for (let i = 0; i < batch; i++) op(n + i);
    n += batch;
    now = process.hrtime.bigint();
  }
  return Number(now - t0) / n;
}

function shuffled<T>(items: readonly T[], seed: number): T[] {
  const out = [...items];
  let s = seed;
  for (let i = out.length - 1; i > 0; i--) {
    s = (Math.imul(s, 1103515245) + 12345) >>> 0;
    const j = s % (i + 1);
    [out[i], out[j]] = [out[j]!, out[i]!];
  }
  return out;
}

/** The operations timed on a map of N, as [name, op(i)] pairs; each op indexes the shuffled keys modulo N. */
function operations(map: Persistent<Value>, keys: readonly string[], values: readonly Value[]): [string, (i: number) => void][] {
  const n = keys.length;
  // Same length as the present keys: immutable caches the hash of strings longer than 16 characters only.
  const absent = keys.map((k) => k.replace('web', 'gap'));
  let chained = map;
  return [
    ['get (hit)', (i) => (sink += map.get(keys[i % n]!)!.id)],
    ['get (miss)', (i) => (sink += map.get(absent[i % n]!) === undefined ? 1 : 0)],
    // The fold's update: the same key, a new value, the new map kept (as the snapshot keeps it).
    ['set (replace)', (i) => (chained = chained.set(keys[i % n]!, values[(i + 1) % n]!))],
    ['delete', (i) => (sink += map.delete(keys[i % n]!).size)],
    [
      'iterate (per entry)',
      () => {
        for (const [, v] of map) sink += v.id;
      },
    ],
    ['size', () => (sink += map.size)],
  ];
}

/** Bytes of heap each entry costs: many maps of N built from the same keys and values, measured after full GCs. */
function bytesPerEntry(contender: Contender, entries: readonly (readonly [string, Value])[], gc: () => void): number {
  const copies = Math.max(1, Math.ceil(MEMORY_ENTRIES / entries.length));
  const kept: Persistent<Value>[] = [];
  gc();
  const before = process.memoryUsage().heapUsed;
  for (let c = 0; c < copies; c++) kept.push(contender.build(entries));
  gc();
  const after = process.memoryUsage().heapUsed;
  sink += kept.length;
  return (after - before) / (copies * entries.length);
}

function main(): void {
  const { values: args } = parseArgs({
    options: {
      sizes: { type: 'string', default: '10,1000,10000,100000' },
      ms: { type: 'string', default: '15' },
      rounds: { type: 'string', default: '15' },
    },
  });
  const sizes = args.sizes.split(',').map(Number);
  const ms = Number(args.ms);
  const rounds = Number(args.rounds);
  setFlagsFromString('--expose-gc');
  const gc = runInNewContext('gc') as () => void;

  console.log(`Persistent maps: lexa's pmap (src/streams/state/pmap.ts) vs immutable ${IMMUTABLE_VERSION} Map; Node ${process.version}.`);
  console.log(`ns per operation (best of ${rounds} runs of ~${ms} ms, interleaved); bytes of heap per entry (maps of N, after GC).\n`);
  console.log(`${'N'.padStart(7)}  ${'operation'.padEnd(20)} ${'pmap'.padStart(10)} ${'immutable'.padStart(10)} ${'imm/pmap'.padStart(9)}`);
  for (const n of sizes) {
    const keys = Array.from({ length: n }, (_, i) => `default/web-${i}`);
    const values = keys.map((_, i) => ({ id: i }));
    const entries = keys.map((k, i) => [k, values[i]!] as const);
    const probe = shuffled(keys, n);
    const built = CONTENDERS.map((c) => c.build(entries));
    const table = built.map((map) => operations(map, probe, values));
    for (const [row, [name]] of table[0]!.entries()) {
      const best = CONTENDERS.map(() => Infinity);
      for (let r = 0; r < rounds; r++) {
        for (const [c] of CONTENDERS.entries()) best[c] = Math.min(best[c]!, timePerOp(table[c]![row]![1], ms));
      }
      // Iteration is timed per whole map; reported per entry.
      const per = name.startsWith('iterate') ? best.map((b) => b / n) : best;
      line(n, name, per[0]!, per[1]!);
    }
    const memory = CONTENDERS.map((c) => bytesPerEntry(c, entries, gc));
    line(n, 'memory (bytes/entry)', memory[0]!, memory[1]!);
  }
}

function line(n: number, what: string, pmap: number, immutable: number): void {
  const fmt = (x: number) => (x >= 100 ? x.toFixed(0) : x.toFixed(1)).padStart(10);
  console.log(`${String(n).padStart(7)}  ${what.padEnd(20)} ${fmt(pmap)} ${fmt(immutable)} ${(immutable / pmap).toFixed(2).padStart(9)}`);
}

main();
