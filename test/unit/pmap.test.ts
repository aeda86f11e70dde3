import t, { type Test } from 'tap';
import { PersistentMap } from '../../src/streams/state/pmap.js';
import { seeded } from '../helpers/model.js';

// The persistent map against a plain Map as the model: random sets and deletes (keys from a small pool, so
// replacements and deletes of present keys are frequent), every old version kept and re-checked at the end.

function same<V>(t: Test, pm: PersistentMap<V>, model: Map<string, V>, what: string): void {
  t.equal(pm.size, model.size, `${what}: size`);
  const entries = [...pm.entries()].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  const expected = [...model.entries()].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  t.same(entries, expected, `${what}: entries`);
}


t.test('random sets and deletes agree with Map, and every old version stays as it was', async (t) => {
  const random = seeded(7);
  const pool = Array.from({ length: 3000 }, (_, i) => `host-${i}`);
  let pm = PersistentMap.empty<number>();
  const model = new Map<string, number>();
  const history: [PersistentMap<number>, Map<string, number>][] = [];
  let mismatches = 0;
  for (let step = 0; step < 30_000; step++) {
    const key = pool[Math.floor(random() * pool.length)]!;
    if (random() < 0.35) {
      pm = pm.delete(key);
      model.delete(key);
    } else {
      const v = Math.floor(random() * 5);
      pm = pm.set(key, v);
      model.set(key, v);
    }
    if (pm.get(key) !== model.get(key) || pm.has(key) !== model.has(key) || pm.size !== model.size) mismatches++;
    if (step % 3000 === 0) history.push([pm, new Map(model)]);
  }
  t.equal(mismatches, 0, 'get, has and size agree after every step');
  same(t, pm, model, 'final');
  for (const [i, [old, snapshot]] of history.entries()) same(t, old, snapshot, `version ${i} unchanged`);
  for (const key of pool) t.equal(pm.has(key), model.has(key));
});

t.test('unchanged operations return the same map; iteration and forEach', async (t) => {
  const a = PersistentMap.of([
    ['x', 1],
    ['y', 2],
  ]);
  t.equal(a.set('x', 1), a, 'setting the value already there');
  t.equal(a.delete('zzz'), a, 'deleting an absent key');
  t.not(a.set('x', 3), a);
  t.equal(a.get('x'), 1, 'the old map still has the old value');
  const seen: string[] = [];
  a.forEach((v, k) => seen.push(`${k}=${v}`));
  t.same(seen.sort(), ['x=1', 'y=2']);
  t.same([...a.keys()].sort(), ['x', 'y']);
  t.same([...a.values()].sort(), [1, 2]);
  t.same([...a].length, 2);
  const empty = a.delete('x').delete('y');
  t.equal(empty.size, 0);
  t.same([...empty], []);
  t.equal(empty.get('x'), undefined);
});

t.test('keys whose hashes collide fully are all kept', async (t) => {
  // Find two keys with the same 32-bit FNV-1a hash among seeded random strings (a birthday search: ~10 pairs
  // are expected among 300,000; short sequential names collide far less, FNV being nearly a bijection there).
  const random = seeded(11);
  const letters = 'abcdefghijklmnopqrstuvwxyz0123456789-';
  const byHash = new Map<number, string[]>();
  const fnv = (s: string) => {
    let h = 0x811c9dc5;
    for (let i = 0; i < s.length; i++) {
      h ^= s.charCodeAt(i);
      h = Math.imul(h, 0x01000193);
    }
    return h >>> 0;
  };
  let pair: string[] | undefined;
  for (let i = 0; i < 300_000 && pair === undefined; i++) {
    let k = '';
    for (let j = 0; j < 10; j++) k += letters[Math.floor(random() * letters.length)];
    const h = fnv(k);
    const list = byHash.get(h) ?? [];
    list.push(k);
    byHash.set(h, list);
    if (list.length === 2) pair = list;
  }
  t.ok(pair, `found colliding keys ${pair?.join(', ')}`);
  const [a, b] = pair!;
  let m = PersistentMap.empty<string>().set(a!, 'A').set(b!, 'B').set('other', 'O');
  t.equal(m.get(a!), 'A');
  t.equal(m.get(b!), 'B');
  t.equal(m.size, 3);
  m = m.set(a!, 'A2');
  t.equal(m.get(a!), 'A2');
  t.equal(m.get(b!), 'B');
  m = m.delete(a!);
  t.equal(m.get(a!), undefined);
  t.equal(m.has(a!), false);
  t.equal(m.get(b!), 'B');
  t.equal(m.size, 2);
});
