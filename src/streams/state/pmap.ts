/**
 * A persistent (immutable, structurally shared) map from strings to values: a hash array mapped trie (HAMT).
 * `set` and `delete` return a new map that shares every untouched branch with the old one, so changing one entry
 * of a map of N costs O(log32 N) new nodes (at most 7 levels for 2^32 hashes) instead of copying N entries; the
 * old map stays valid and unchanged. That is what lets the snapshot fold one LXD event in constant time however
 * many instances there are.
 *
 * Contract: a PersistentMap is never modified after it is returned (readers may hold it forever); it implements
 * ReadonlyMap, so readers cannot tell it from a Map. Iteration order is the trie's (by hash), not insertion order.
 *
 * Why not immutable's Map (the well-kept library that does this): measured in one run, `node dist/bench/pmap.js`
 * (src/bench/pmap.ts; pinned to one CPU of a shared 2-core machine, two runs, immutable 5.2.1, Node 20.20), as
 * immutable's figure over this map's, for 10 / 1,000 / 10,000 / 100,000 entries:
 *   get, present key (every DNS answer)   0.90–1.05 / 1.22–1.57 / 1.44–1.68 / 1.50–1.53
 *   get, absent key (NXDOMAIN)            1.18–1.41 / 0.94–1.09 / 1.08–1.31 / 1.07–1.17
 *   set, existing key (the fold)          0.86–0.98 / 1.05–1.41 / 1.18–1.35 / 1.35–1.83
 *   delete                                0.89      / 1.41–1.55 / 1.54–1.58 / 1.27–1.53
 *   heap per entry (this map: 112 / 135 / 114 / 139 bytes)  1.25 / 1.13 / 1.37 / 1.10
 *   iteration per entry                   0.18–0.20 / 0.22–0.23 / 0.31–0.34 / 0.37–0.49  (immutable 2–5x faster)
 * immutable is not within 1.5x on `get` of a present key from 10,000 entries up (the DNS path), nor on `delete`, and
 * holds 10–37% more heap; it wins only on iteration (REST listings, wildcards), which this trie's recursive
 * generators make slow. So this file stays, and `npm run bench` prints the comparison again on any machine.
 */

const BITS = 5;
const WIDTH = 1 << BITS; // 32 children per branch
const MASK = WIDTH - 1;

type Node<V> = Leaf<V> | Branch<V> | Collision<V>;

interface Leaf<V> {
  readonly kind: 0;
  readonly hash: number;
  readonly key: string;
  readonly value: V;
}

interface Branch<V> {
  readonly kind: 1;
  /** Bit i set: a child for hash fragment i, at index popcount(bitmap below i). */
  readonly bitmap: number;
  readonly children: readonly Node<V>[];
}

interface Collision<V> {
  readonly kind: 2;
  readonly hash: number;
  readonly leaves: readonly Leaf<V>[];
}

/** FNV-1a over UTF-16 code units: cheap, and spreads the short similar names instances have. */
function hashOf(key: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < key.length; i++) {
    h ^= key.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return h >>> 0;
}

function popcount(x: number): number {
  x -= (x >>> 1) & 0x55555555;
  x = (x & 0x33333333) + ((x >>> 2) & 0x33333333);
  x = (x + (x >>> 4)) & 0x0f0f0f0f;
  return Math.imul(x, 0x01010101) >>> 24;
}

const EMPTY_BRANCH: Branch<never> = Object.freeze({ kind: 1, bitmap: 0, children: Object.freeze([]) }) as Branch<never>;

export class PersistentMap<V> implements ReadonlyMap<string, V> {
  readonly #root: Branch<V>;
  readonly size: number;

  private constructor(root: Branch<V>, size: number) {
    this.#root = root;
    this.size = size;
  }

  static empty<V>(): PersistentMap<V> {
    return EMPTY as PersistentMap<V>;
  }

  /** A map of these entries (later duplicates win), built in one pass. */
  static of<V>(entries: Iterable<readonly [string, V]>): PersistentMap<V> {
    let m = PersistentMap.empty<V>();
    for (const [k, v] of entries) m = m.set(k, v);
    return m;
  }

  get(key: string): V | undefined {
    return this.#find(key)?.value;
  }

  has(key: string): boolean {
    return this.#find(key) !== undefined;
  }

  /** The same map with key set to value; `this` when the key already holds exactly that value. */
  set(key: string, value: V): PersistentMap<V> {
    const leaf: Leaf<V> = { kind: 0, hash: hashOf(key), key, value };
    const added = { grew: false };
    const root = insert(this.#root, leaf, 0, added) as Branch<V>;
    if (root === this.#root) return this;
    return new PersistentMap(root, this.size + (added.grew ? 1 : 0));
  }

  /** The same map without key; `this` when it is absent. */
  delete(key: string): PersistentMap<V> {
    const root = remove(this.#root, hashOf(key), key, 0);
    if (root === this.#root) return this;
    return new PersistentMap((root ?? EMPTY_BRANCH) as Branch<V>, this.size - 1);
  }

  *entries(): MapIterator<[string, V]> {
    for (const leaf of leaves(this.#root)) yield [leaf.key, leaf.value];
  }

  *keys(): MapIterator<string> {
    for (const leaf of leaves(this.#root)) yield leaf.key;
  }

  *values(): MapIterator<V> {
    for (const leaf of leaves(this.#root)) yield leaf.value;
  }

  [Symbol.iterator](): MapIterator<[string, V]> {
    return this.entries();
  }

  forEach(fn: (value: V, key: string, map: ReadonlyMap<string, V>) => void, thisArg?: unknown): void {
    for (const leaf of leaves(this.#root)) fn.call(thisArg, leaf.value, leaf.key, this);
  }

  #find(key: string): Leaf<V> | undefined {
    const hash = hashOf(key);
    let node: Node<V> = this.#root;
    for (let shift = 0; ; shift += BITS) {
      switch (node.kind) {
        case 0:
          return node.key === key ? node : undefined;
        case 2:
          return node.leaves.find((l) => l.key === key);
        case 1: {
          const bit = 1 << ((hash >>> shift) & MASK);
          if ((node.bitmap & bit) === 0) return undefined;
          node = node.children[popcount(node.bitmap & (bit - 1))]!;
        }
      }
    }
  }
}

const EMPTY = new (PersistentMap as unknown as new (root: Branch<never>, size: number) => PersistentMap<never>)(EMPTY_BRANCH, 0);

function* leaves<V>(node: Node<V>): Generator<Leaf<V>> {
  switch (node.kind) {
    case 0:
      yield node;
      return;
    case 2:
      yield* node.leaves;
      return;
    case 1:
      for (const child of node.children) yield* leaves(child);
  }
}

function insert<V>(node: Node<V>, leaf: Leaf<V>, shift: number, added: { grew: boolean }): Node<V> {
  switch (node.kind) {
    case 0: {
      if (node.key === leaf.key) return Object.is(node.value, leaf.value) ? node : leaf;
      added.grew = true;
      return merge(node, leaf, shift);
    }
    case 2: {
      if (node.hash !== leaf.hash) {
        added.grew = true;
        return merge(node, leaf, shift);
      }
      const i = node.leaves.findIndex((l) => l.key === leaf.key);
      if (i >= 0) {
        if (Object.is(node.leaves[i]!.value, leaf.value)) return node;
        const copy = [...node.leaves];
        copy[i] = leaf;
        return { kind: 2, hash: node.hash, leaves: copy };
      }
      added.grew = true;
      return { kind: 2, hash: node.hash, leaves: [...node.leaves, leaf] };
    }
    case 1: {
      const bit = 1 << ((leaf.hash >>> shift) & MASK);
      const at = popcount(node.bitmap & (bit - 1));
      if ((node.bitmap & bit) === 0) {
        added.grew = true;
        const children = [...node.children];
        children.splice(at, 0, leaf);
        return { kind: 1, bitmap: node.bitmap | bit, children };
      }
      const child = node.children[at]!;
      const next = insert(child, leaf, shift + BITS, added);
      if (next === child) return node;
      const children = [...node.children];
      children[at] = next;
      return { kind: 1, bitmap: node.bitmap, children };
    }
  }
}

/** A branch holding two nodes whose hashes agree on the bits above `shift` (or a collision node). */
function merge<V>(a: Leaf<V> | Collision<V>, b: Leaf<V>, shift: number): Node<V> {
  // Equal hashes cannot be told apart by any fragment: a collision node. Different hashes differ in some
  // fragment by the last (shift 30, the top 2 bits), so the recursion below ends.
  if (a.hash === b.hash) return { kind: 2, hash: a.hash, leaves: a.kind === 2 ? [...a.leaves, b] : [a, b] };
  const fa = (a.hash >>> shift) & MASK;
  const fb = (b.hash >>> shift) & MASK;
  if (fa === fb) return { kind: 1, bitmap: 1 << fa, children: [merge(a, b, shift + BITS)] };
  return { kind: 1, bitmap: (1 << fa) | (1 << fb), children: fa < fb ? [a, b] : [b, a] };
}

/** The node without key, `node` itself when absent, undefined when it becomes empty. */
function remove<V>(node: Node<V>, hash: number, key: string, shift: number): Node<V> | undefined {
  switch (node.kind) {
    case 0:
      return node.key === key ? undefined : node;
    case 2: {
      if (node.hash !== hash) return node;
      const rest = node.leaves.filter((l) => l.key !== key);
      if (rest.length === node.leaves.length) return node;
      return rest.length === 1 ? rest[0]! : { kind: 2, hash, leaves: rest };
    }
    case 1: {
      const bit = 1 << ((hash >>> shift) & MASK);
      if ((node.bitmap & bit) === 0) return node;
      const at = popcount(node.bitmap & (bit - 1));
      const child = node.children[at]!;
      const next = remove(child, hash, key, shift + BITS);
      if (next === child) return node;
      if (next === undefined) {
        if (node.children.length === 1) return shift === 0 ? EMPTY_BRANCH : undefined;
        const children = [...node.children];
        children.splice(at, 1);
        // A branch left with one leaf collapses into it (except the root), keeping paths short.
        if (children.length === 1 && children[0]!.kind !== 1 && shift > 0) return children[0];
        return { kind: 1, bitmap: node.bitmap & ~bit, children };
      }
      // A (non-root) branch whose only child became a leaf is replaced by that leaf, keeping paths short.
      if (node.children.length === 1 && next.kind !== 1 && shift > 0) return next;
      const children = [...node.children];
      children[at] = next;
      return { kind: 1, bitmap: node.bitmap, children };
    }
  }
}
