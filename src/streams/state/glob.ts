/**
 * Host-name wildcards: `*` matches any run of characters (possibly empty); every other character matches
 * itself. No RegExp: a regular expression built from a pattern backtracks, and `*a*a*a*a*a*a*a*a*a*a*z` against a
 * name of 60 `a`s took it exponential time (one UDP query froze the whole daemon).
 *
 * The matcher is the classic greedy one: the literal text before the first `*` must start the name, the text
 * after the last `*` must end it, and each literal run between stars is found at its leftmost place after the
 * previous one. Leftmost is always safe with `*` as the only metacharacter (a later run can only start further
 * right, and the star before it absorbs whatever lies between), so nothing is ever retried: one pass, at most
 * O(len(name) × len(pattern)) character comparisons (each run is searched once, over the name at most once),
 * and in practice O(len(name)) through the engine's native substring search.
 *
 * Build one Glob per query, then test each candidate name with it. A pattern without `*` matches only itself.
 */
export class Glob {
  /** Literal text before the first `*`: every match starts with it (callers narrow a sorted list by it). */
  readonly prefix: string;
  /** Literal text after the last `*` (empty when the pattern has no `*`: `prefix` is then all of it). */
  readonly #suffix: string;
  /** The non-empty literal runs between stars, in order (`**`, a leading or trailing `*` add none). */
  readonly #middle: readonly string[];
  /** Characters the pattern's literal text needs: no shorter name can match. */
  readonly #literal: number;
  readonly #exact: boolean;

  constructor(pattern: string) {
    const parts = pattern.split('*');
    this.prefix = parts[0]!;
    this.#exact = parts.length === 1;
    this.#suffix = this.#exact ? '' : parts[parts.length - 1]!;
    this.#middle = parts.slice(1, -1).filter((p) => p !== '');
    this.#literal = this.#exact ? pattern.length : pattern.length - (parts.length - 1);
  }

  /** Whether `name` matches the whole pattern. */
  matches(name: string): boolean {
    if (this.#exact) return name === this.prefix;
    const end = name.length - this.#suffix.length;
    if (name.length < this.#literal || !hasAt(name, this.prefix, 0) || !hasAt(name, this.#suffix, end)) return false;
    // The middle runs must fit, in order and without overlap, between the prefix and the suffix.
    let at = this.prefix.length;
    for (const run of this.#middle) {
      const found = name.indexOf(run, at);
      if (found < 0 || found + run.length > end) return false;
      at = found + run.length;
    }
    return true;
  }
}

/** Whether `text` occurs in `name` at offset `at` (a comparison loop: no substring is made). */
function hasAt(name: string, text: string, at: number): boolean {
  for (let i = 0; i < text.length; i++) if (name.charCodeAt(at + i) !== text.charCodeAt(i)) return false;
  return true;
}
