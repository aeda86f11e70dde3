import { PersistentMap } from '../../src/streams/state/pmap.js';
import { Glob } from '../../src/streams/state/glob.js';
import { Snapshot } from '../../src/streams/state/snapshot.js';

/** What a synchronous piece of code iterated while it ran. */
export interface Scans {
  /**
   * Size of every Map or PersistentMap (the snapshot's tables) whose iteration began (keys, values, entries,
   * forEach, for-of, spread, `new Map(map)`).
   */
  readonly maps: number[];
  /** Calls of `Snapshot.running()`, the iterator over every running instance. */
  running: number;
  /**
   * Calls of `String.prototype.startsWith` and `Glob.prototype.matches`: how many names a wildcard lookup
   * checked against its pattern's literal prefix, and how many it then matched against the whole pattern.
   */
  prefixChecks: number;
  patternTests: number;
}

/**
 * Runs `fn` with the iteration methods of Map, `Snapshot.prototype.running`, `String.prototype.startsWith` and
 * `Glob.prototype.matches` wrapped
 * to count their use, and returns the counts. The wrappers sit on the prototypes, so they see the snapshot's
 * private indexes too (a `#hosts.values()` inside a lookup counts). Restored before returning, even on a throw.
 * `fn` must be synchronous: anything else running meanwhile would be counted too.
 */
export function scans(fn: () => void): Scans {
  const seen: Scans = { maps: [], running: 0, prefixChecks: 0, patternTests: 0 };
  const restore: (() => void)[] = [];
  const wrap = <T extends object>(proto: T, key: PropertyKey, count: (self: unknown) => void) => {
    const original = Reflect.get(proto, key) as (...args: unknown[]) => unknown;
    Reflect.defineProperty(proto, key, {
      configurable: true,
      writable: true,
      value: function (this: unknown, ...args: unknown[]) {
        count(this);
        return original.apply(this, args);
      },
    });
    restore.push(() => Reflect.defineProperty(proto, key, { configurable: true, writable: true, value: original }));
  };
  for (const key of ['keys', 'values', 'entries', 'forEach', Symbol.iterator]) {
    wrap(Map.prototype, key, (self) => seen.maps.push((self as Map<unknown, unknown>).size));
    wrap(PersistentMap.prototype, key, (self) => seen.maps.push((self as PersistentMap<unknown>).size));
  }
  wrap(Snapshot.prototype, 'running', () => seen.running++);
  wrap(String.prototype, 'startsWith', () => seen.prefixChecks++);
  wrap(Glob.prototype, 'matches', () => seen.patternTests++);
  try {
    fn();
  } finally {
    for (const undo of restore.reverse()) undo();
  }
  return seen;
}
