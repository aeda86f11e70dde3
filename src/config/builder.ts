/**
 * A small typed schema builder for lexa's HCL (in the spirit of zod, hand-written): each key is declared once, with
 * its type, range and what it is when absent, and both the checked values and their TypeScript type come from that
 * one declaration. Reading never throws: every problem names its key path (e.g. `server.dns.bind.port`).
 *
 * A scalar starts as a `Draft` (`int(0, 65535)`, `text()`, ...), may be narrowed (`refine`) or normalized (`map`),
 * and becomes a `Key` only by saying what it is when absent: `.default(v)`, `.optional()` (null) or `.required(why)`.
 * So a block cannot hold a key whose absence is undecided. A `block` is absent-safe by itself (its keys' defaults).
 */

/** What a read collects: problems (each `key.path: ...`) and the paths the file actually gave. */
export interface ReadContext {
  readonly problems: string[];
  readonly given: Set<string>;
}

export type Kind = 'string' | 'int' | 'bool' | 'duration' | 'enum' | 'block' | 'list';

/** A declared key: how to check a value the file gives for it, and its value when the file does not. */
export class Key<T> {
  constructor(
    readonly kind: Kind,
    /** Checks a given value; on a problem, reports it against `path` and returns undefined. */
    readonly read: (value: unknown, path: string, cx: ReadContext) => T | undefined,
    /** The value when the file does not give the key (a required key reports a problem and returns undefined). */
    readonly absent: (path: string, cx: ReadContext) => T | undefined,
    /** The keys inside a block, or inside each block of a list; empty for scalars. */
    readonly fields: Fields = {},
    /** A secret (a token, a key): every printer shows REDACTED in its place, and problems never quote it. */
    readonly isSecret = false,
  ) {}
}

export type Fields = { readonly [name: string]: Key<unknown> };
/** The checked, defaulted value of a key. */
export type Infer<K> = K extends Key<infer T> ? T : never;
export type Values<F extends Fields> = { readonly [N in keyof F]: Infer<F[N]> };

/** A key whose absence is not decided yet: only `default`, `optional` and `required` make it a Key. */
export class Draft<T> {
  constructor(
    readonly kind: Kind,
    readonly read: (value: unknown, path: string, cx: ReadContext) => T | undefined,
    readonly fields: Fields = {},
    readonly isSecret = false,
  ) {}

  /**
   * Marks the key a secret: `lexa check-config` prints REDACTED for it, and no problem found in its value (by this
   * Draft's own checks or any `refine`, before or after this call) quotes the value.
   */
  secret(): Draft<T> {
    return new Draft(this.kind, this.read, this.fields, true);
  }

  /** The read a Key made from this Draft uses: for a secret, problems with the value taken out. */
  #keyRead(): (value: unknown, path: string, cx: ReadContext) => T | undefined {
    if (!this.isSecret) return this.read;
    return (value, path, cx) => {
      const first = cx.problems.length;
      const v = this.read(value, path, cx);
      for (let i = first; i < cx.problems.length; i++) cx.problems[i] = withoutValue(cx.problems[i]!, value);
      return v;
    };
  }

  /** Further checks on a well-typed value: return the problem(s), or undefined when the value is fine. */
  refine(problem: (value: T) => string | readonly string[] | undefined): Draft<T> {
    return new Draft(
      this.kind,
      (value, path, cx) => {
        const v = this.read(value, path, cx);
        if (v === undefined) return undefined;
        const found = problem(v);
        if (found === undefined || found.length === 0) return v;
        for (const p of typeof found === 'string' ? [found] : found) cx.problems.push(`${path}: ${p}`);
        return undefined;
      },
      this.fields,
      this.isSecret,
    );
  }

  /** Normalizes a checked value (e.g. lower-cases a name). Defaults are not mapped: declare them normalized. */
  map<U>(f: (value: T) => U): Draft<U> {
    return new Draft(this.kind, (value, path, cx) => {
      const v = this.read(value, path, cx);
      return v === undefined ? undefined : f(v);
    }, this.fields, this.isSecret);
  }

  default(value: T): Key<T> {
    return new Key(this.kind, this.#keyRead(), () => value, this.fields, this.isSecret);
  }

  /** Absent means null: the key's absence means something the consumer decides (e.g. "generate a certificate"). */
  optional(): Key<T | null> {
    return new Key<T | null>(this.kind, this.#keyRead(), () => null, this.fields, this.isSecret);
  }

  /** Absent is a problem: `<path>: required <why>`. */
  required(why: string): Key<T> {
    return new Key(this.kind, this.#keyRead(), (path, cx) => void cx.problems.push(`${path}: required ${why}`), this.fields, this.isSecret);
  }
}

export function text(pattern?: RegExp, hint?: string): Draft<string> {
  return new Draft('string', (value, path, cx) => {
    if (typeof value !== 'string') return wrong(cx, path, 'a string', value);
    if (pattern && !pattern.test(value))
      return void cx.problems.push(`${path}: ${JSON.stringify(value)} is not ${hint ?? 'valid here'}`);
    return value;
  });
}

export function int(min: number, max: number): Draft<number> {
  return new Draft('int', (value, path, cx) => {
    if (typeof value !== 'number' || !Number.isInteger(value)) return wrong(cx, path, 'a whole number', value);
    if (value < min || value > max) return void cx.problems.push(`${path}: ${value} is out of range ${min}..${max}`);
    return value;
  });
}

export function bool(): Draft<boolean> {
  return new Draft('bool', (value, path, cx) =>
    typeof value === 'boolean' ? value : wrong(cx, path, 'true or false', value),
  );
}

/** A duration in the file ("30s", "1m30s", or seconds as a number); the value is milliseconds. */
export function duration(): Draft<number> {
  return new Draft('duration', (value, path, cx) => {
    const ms = parseDuration(value);
    return ms ?? wrong(cx, path, 'a duration such as "30s", "5m" or a number of seconds', value);
  });
}

export function oneOf<const V extends readonly string[]>(values: V): Draft<V[number]> {
  return new Draft('enum', (value, path, cx) =>
    typeof value === 'string' && values.includes(value)
      ? (value as V[number])
      : wrong(cx, path, `one of ${values.map((v) => JSON.stringify(v)).join(', ')}`, value),
  );
}

/**
 * A repeatable block (`bind { ... }` any number of times, or from `min` to `max` times); the value is the list in
 * file order. `min` matters for an attribute written as an empty list (`lxd = []`), which HCL allows where a
 * block is expected.
 */
export function list<T>(item: Key<T>, max = Infinity, min = 0): Draft<readonly T[]> {
  return new Draft(
    'list',
    (value, path, cx) => {
      // HCL2 → JSON gives a repeated block as an array of bodies.
      const items = Array.isArray(value) ? value : [value];
      if (items.length > max) return void cx.problems.push(`${path}: ${items.length} items; at most ${max}`);
      if (items.length < min) return void cx.problems.push(`${path}: ${items.length} items; at least ${min}`);
      const out: T[] = [];
      let ok = true;
      for (const body of items) {
        const v = item.read(body, path, cx);
        if (v === undefined) ok = false;
        else out.push(v);
      }
      return ok ? out : undefined;
    },
    item.fields,
  );
}

/** A block declared at most once. Absent, it is its keys' defaults (see `optional` and `whenAbsent` for others). */
export class Block<F extends Fields> extends Key<Values<F>> {
  constructor(fields: F) {
    super(
      'block',
      (value, path, cx) => readBody(fields, value, path, cx),
      (path, cx) => absentBody(fields, path, cx),
      fields,
    );
  }

  /** Absent means null: the block's presence is itself the setting (e.g. `lxd { bind { ... } }` selects HTTPS). */
  optional(): Key<Values<F> | null> {
    return new Key<Values<F> | null>('block', this.read, () => null, this.fields);
  }

  /** Absent, the block is its keys' defaults with these overrides (e.g. a transport that is on once declared). */
  whenAbsent(overrides: Partial<Values<F>>): Key<Values<F>> {
    return new Key('block', this.read, (path, cx) => {
      const v = this.absent(path, cx);
      return v === undefined ? undefined : { ...v, ...overrides };
    }, this.fields);
  }
}

export function block<F extends Fields>(fields: F): Block<F> {
  return new Block(fields);
}

function readBody<F extends Fields>(fields: F, value: unknown, path: string, cx: ReadContext): Values<F> | undefined {
  // HCL2 → JSON gives every block as an array of bodies; the top level is a bare body.
  const bodies = Array.isArray(value) ? value : [value];
  if (bodies.length === 0) return absentBody(fields, path, cx);
  if (bodies.length > 1)
    return void cx.problems.push(`${path}: block is declared ${bodies.length} times; declare it once`);
  const body: unknown = bodies[0];
  if (typeof body !== 'object' || body === null || Array.isArray(body))
    return void cx.problems.push(`${path}: must be a block (${path.split('.').pop()} { ... }), not ${describe(body)}`);
  const given = body as Record<string, unknown>;
  let ok = true;
  for (const key of Object.keys(given)) {
    if (Object.hasOwn(fields, key)) continue;
    cx.problems.push(`${join(path, key)}: unknown key (known here: ${Object.keys(fields).join(', ')})`);
    ok = false;
  }
  const out: Record<string, unknown> = {};
  for (const [key, field] of Object.entries(fields)) {
    const keyPath = join(path, key);
    const has = Object.hasOwn(given, key);
    if (has) cx.given.add(keyPath);
    const v = has ? field.read(given[key], keyPath, cx) : field.absent(keyPath, cx);
    if (v === undefined) ok = false;
    out[key] = v;
  }
  // Every key was read by its own declaration above, so `out` has exactly the declared keys and types.
  return ok ? (out as Values<F>) : undefined;
}

function absentBody<F extends Fields>(fields: F, path: string, cx: ReadContext): Values<F> | undefined {
  const out: Record<string, unknown> = {};
  let ok = true;
  for (const [key, field] of Object.entries(fields)) {
    const v = field.absent(join(path, key), cx);
    if (v === undefined) ok = false;
    out[key] = v;
  }
  return ok ? (out as Values<F>) : undefined;
}

/** What every printer shows in place of a secret's value. */
export const REDACTED = '(redacted)';

/** The dotted paths of the keys declared `.secret()` under `key`: the one list every printer redacts by. */
export function secretPaths(key: Key<unknown>, path = ''): string[] {
  if (key.isSecret) return [path];
  return Object.entries(key.fields).flatMap(([name, sub]) => secretPaths(sub, join(path, name)));
}

/** `problem` with every spelling of a secret `value` (quoted as JSON, or bare) replaced by REDACTED. */
function withoutValue(problem: string, value: unknown): string {
  if (typeof value !== 'string' || value.length === 0) return problem;
  return problem.replaceAll(JSON.stringify(value), JSON.stringify(REDACTED)).replaceAll(value, REDACTED);
}

/** Every scalar key under `key`, as dotted paths (a list's keys appear under the list's own name). */
export function leafPaths(key: Key<unknown>, path = ''): string[] {
  const names = Object.entries(key.fields);
  if (names.length === 0) return [path];
  return names.flatMap(([name, sub]) => leafPaths(sub, join(path, name)));
}

const join = (path: string, key: string): string => (path ? `${path}.${key}` : key);

function wrong(cx: ReadContext, path: string, expected: string, got: unknown): undefined {
  cx.problems.push(`${path}: expected ${expected}, got ${describe(got)}`);
  return undefined;
}

function describe(v: unknown): string {
  if (Array.isArray(v)) return 'a block or list';
  if (v === null) return 'null';
  if (typeof v === 'object') return 'a block';
  return `${typeof v} ${JSON.stringify(v)}`;
}

const UNIT_MS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 };

/** "250ms", "30s", "5m", "1h", "1m30s", or a plain number of seconds. Returns ms, or undefined if invalid. */
export function parseDuration(v: unknown): number | undefined {
  if (typeof v === 'number') return Number.isFinite(v) && v >= 0 ? Math.round(v * 1000) : undefined;
  if (typeof v !== 'string' || !/^(\d+(\.\d+)?(ms|s|m|h))+$/.test(v.trim())) return undefined;
  let total = 0;
  for (const m of v.trim().matchAll(/(\d+(?:\.\d+)?)(ms|s|m|h)/g)) total += Number(m[1]) * UNIT_MS[m[2]!]!;
  return Math.round(total);
}
