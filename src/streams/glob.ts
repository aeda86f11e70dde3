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
 * Compile a pattern once per query (`compileGlob`), then test each candidate name.
 */
export interface Glob {
  /** Literal text before the first `*`: every match starts with it (callers narrow a sorted list by it). */
  readonly prefix: string;
  /** Whether `name` matches the whole pattern. */
  matches(name: string): boolean;
}

/** The matcher for `pattern`. A pattern without `*` matches only itself. */
export function compileGlob(pattern: string): Glob {
  const parts = pattern.split('*');
  const prefix = parts[0]!;
  if (parts.length === 1) return { prefix, matches: (name) => name === pattern };
  const suffix = parts[parts.length - 1]!;
  // Empty runs (`**`, a leading or trailing `*`) constrain nothing.
  const middle = parts.slice(1, -1).filter((p) => p !== '');
  const literal = prefix.length + suffix.length + middle.reduce((n, p) => n + p.length, 0);
  return {
    prefix,
    matches(name: string): boolean {
      if (name.length < literal || !name.startsWith(prefix) || !name.endsWith(suffix)) return false;
      // The middle runs must fit, in order and without overlap, between the prefix and the suffix.
      const end = name.length - suffix.length;
      let at = prefix.length;
      for (const run of middle) {
        const found = name.indexOf(run, at);
        if (found < 0 || found + run.length > end) return false;
        at = found + run.length;
      }
      return true;
    },
  };
}
