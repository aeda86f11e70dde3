/**
 * Arrays a snapshot keeps for as long as an instance lives. V8 grows an array built by `push` or `filter` to
 * 17 slots for its first element, so a one-element result holds ~130 bytes it never uses (measured: 193 bytes per
 * one-element `filter` result kept, 65 for its `slice`); a snapshot of 10,000 instances kept three such arrays
 * per instance, ~4 MB (docs/performance.md, memory).
 */

const EMPTY: readonly never[] = Object.freeze([]);

/** `xs` in an array of exactly its length (one shared frozen array when empty). Never modifies `xs`. */
export function exact<T>(xs: readonly T[]): readonly T[] {
  return xs.length === 0 ? EMPTY : xs.slice();
}
